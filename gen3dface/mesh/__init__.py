"""Crop -> face mesh in the canonical head frame (paper Sec. 3.2, face geometry prior): ``estimate`` (the entry
point, backend dispatch), ``facemesh`` (the result, mediapipe's mesh and template), ``align`` (similarity fits,
pose), ``flame`` (FLAME model and fit), ``deca`` (DECA's encoder), ``surface`` (closest points, ground-truth
snapping), ``synthetic_eval`` (the estimator measured on procedural heads)."""

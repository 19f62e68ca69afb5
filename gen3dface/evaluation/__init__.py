"""Evaluation (paper Sec. 4): image metrics, FID, identity, CLIP, the protocols, the paper's tables and the ablation."""

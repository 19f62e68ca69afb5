"""Crop -> face mesh in the canonical head frame: mediapipe's landmarks, FLAME, DECA, mesh surfaces (paper Sec. 3.2, face geometry prior)."""

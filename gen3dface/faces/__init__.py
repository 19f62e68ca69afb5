"""Photo -> face: detection, landmarks, the aligned input crop, and the face backends (mediapipe, dlib, ArcFace-class)."""

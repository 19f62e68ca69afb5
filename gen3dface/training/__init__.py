"""Training: data pairs on disk, the training loop (Eq. 4) with exact resume, checkpoint export."""

"""Training: losses, clip datasets and the Ray Train loop helpers."""

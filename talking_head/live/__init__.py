"""Live mode: a webcam drives the photo frame by frame (tracking, One Euro smoothing, warp + G)."""

"""Photos and video files: reading, probing and writing them (RGB uint8 at the boundary)."""

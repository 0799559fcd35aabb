"""Synthetic test images for the landmark and tracking tests, made from examples/astronaut.png."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from talking_head.media.images import load_image

ASTRONAUT = Path(__file__).resolve().parent.parent / "examples" / "astronaut.png"
# The astronaut's face with some margin (x0, y0, x1, y1); landmarks lie in about x 179-272, y 87-178.
FACE_CROP = (130, 30, 320, 230)
BACKGROUND = 128


def astronaut() -> np.ndarray:
    """The example photo, RGB uint8 (512, 512, 3)."""
    return load_image(ASTRONAUT)


def face_crop() -> np.ndarray:
    """The astronaut's face region, RGB uint8 (200, 190, 3)."""
    x0, y0, x1, y1 = FACE_CROP
    return astronaut()[y0:y1, x0:x1].copy()


def paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int, scale: float) -> tuple[float, float, float]:
    """Paste ``patch`` resized by ``scale`` at (x, y) into ``canvas`` in place.

    Returns the similarity (scale, dx, dy) mapping patch pixel coordinates to canvas ones.
    """
    height, width = patch.shape[:2]
    size = (round(width * scale), round(height * scale))
    resized = cv2.resize(patch, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas[y : y + size[1], x : x + size[0]] = resized
    # Pixel centres: canvas = (patch + 0.5) * s - 0.5 + offset, with the exact per-axis scale used.
    actual = size[0] / width
    return actual, x + 0.5 * actual - 0.5, y + 0.5 * actual - 0.5


def blank_frame(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), BACKGROUND, dtype=np.uint8)


def moving_face_clip(
    pattern: str, height: int = 320, width: int = 360
) -> tuple[list[np.ndarray], list[tuple[float, float, float] | None]]:
    """Frames where the face crop drifts and zooms; ``pattern`` has 'F' (face) or '.' (blank) per frame.

    Returns the frames and, per frame, the similarity (scale, dx, dy) from crop to frame (None if blank).
    """
    patch = face_crop()
    frames, transforms = [], []
    count = len(pattern)
    for index, kind in enumerate(pattern):
        frame = blank_frame(height, width)
        transform = None
        if kind == "F":
            t = index / max(1, count - 1)
            scale = 1.0 + 0.25 * t  # grows slowly, like a head moving towards the camera
            transform = paste(frame, patch, x=int(10 + 90 * t), y=int(5 + 40 * t * (1 - t)), scale=scale)
        frames.append(frame)
        transforms.append(transform)
    return frames, transforms

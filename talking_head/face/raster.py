"""Landmark rasterization: the image y that E, G and D see (DESIGN §2).

A black canvas with one coloured polyline per face part of the 68-point iBUG
layout. Drawn with OpenCV (``cv2.polylines``, anti-aliased, sub-pixel
coordinates): a pure, deterministic function that takes well under a
millisecond per 256×256 image (see ``scripts`` / the final report for numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "LandmarkPart",
    "LANDMARK_PARTS",
    "rasterize_landmarks",
    "rasterize_landmarks_batch",
    "line_width_for",
]


@dataclass(frozen=True)
class LandmarkPart:
    """One polyline of the rasterized face."""

    name: str  # part name; left/right are the subject's own (iBUG convention)
    indices: tuple[int, ...]  # iBUG 68-point indices, in drawing order
    closed: bool  # whether the last point joins the first
    color: tuple[int, int, int]  # RGB, one distinct colour per part


def _part(name: str, first: int, last: int, closed: bool, color: tuple[int, int, int]) -> LandmarkPart:
    return LandmarkPart(name, tuple(range(first, last + 1)), closed, color)


# Drawn in this order; later parts cover earlier ones where lines cross.
LANDMARK_PARTS: tuple[LandmarkPart, ...] = (
    _part("jaw", 0, 16, False, (255, 255, 0)),
    _part("right_brow", 17, 21, False, (255, 0, 0)),
    _part("left_brow", 22, 26, False, (255, 0, 255)),
    _part("nose_bridge", 27, 30, False, (0, 0, 255)),
    _part("lower_nose", 31, 35, False, (0, 255, 255)),
    _part("right_eye", 36, 41, True, (0, 255, 0)),
    _part("left_eye", 42, 47, True, (255, 128, 0)),
    _part("outer_lips", 48, 59, True, (128, 0, 255)),
    _part("inner_lips", 60, 67, True, (255, 255, 255)),
)

# Sub-pixel precision of the drawn coordinates: 2**4 = 1/16 px steps.
_SHIFT = 4
# Points further than this many canvas sizes off the canvas are clamped (keeps the
# fixed-point coordinates far from int32 overflow; such lines are invisible anyway).
_MAX_OFFSET = 4


def line_width_for(height: int, width: int) -> int:
    """Default line width: ~1 px per 128 px of the shorter side (2 px at 256, 4 at 512), at least 1."""
    return max(1, int(round(min(height, width) / 128)))


def _canvas_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        height = width = int(size)
    else:
        height, width = (int(value) for value in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"canvas size must be positive, got {size}")
    return height, width


def _check_points(points: np.ndarray, leading: tuple[int, ...]) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (*leading, 68, 2):
        raise ValueError(f"expected landmarks of shape {(*leading, 68, 2)}, got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks contain NaN or inf; fill missing frames before rasterizing")
    return points


def _draw(canvas: np.ndarray, points: np.ndarray, line_width: int) -> None:
    """Draw all parts of one face onto ``canvas`` (H, W, 3) in place."""
    height, width = canvas.shape[:2]
    limit = _MAX_OFFSET * max(height, width)
    fixed = np.round(np.clip(points, -limit, limit) * (1 << _SHIFT)).astype(np.int32)  # (68, 2)
    for part in LANDMARK_PARTS:
        polyline = fixed[list(part.indices)].reshape(-1, 1, 2)
        cv2.polylines(canvas, [polyline], part.closed, part.color, line_width, cv2.LINE_AA, _SHIFT)


def rasterize_landmarks(
    points: np.ndarray, size: int | tuple[int, int], line_width: int | None = None
) -> np.ndarray:
    """Render one face's landmarks as coloured polylines on a black canvas.

    Args:
        points: ``(68, 2)`` iBUG landmarks ``(x, y)`` in the canvas's pixel coordinates.
        size: canvas side (square) or ``(H, W)``.
        line_width: line thickness in pixels; default :func:`line_width_for`.

    Returns:
        ``(H, W, 3)`` RGB ``uint8`` image; parts coloured as in :data:`LANDMARK_PARTS`.
    """
    height, width = _canvas_shape(size)
    points = _check_points(points, ())
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    _draw(canvas, points, line_width or line_width_for(height, width))
    return canvas


def rasterize_landmarks_batch(
    points: np.ndarray, size: int | tuple[int, int], line_width: int | None = None
) -> np.ndarray:
    """Render a track ``(T, 68, 2)`` into ``(T, H, W, 3)`` uint8 images (same rules as one face)."""
    height, width = _canvas_shape(size)
    points = np.asarray(points)
    points = _check_points(points, (points.shape[0],) if points.ndim == 3 else (-1,))
    canvases = np.zeros((points.shape[0], height, width, 3), dtype=np.uint8)
    width_px = line_width or line_width_for(height, width)
    for canvas, face in zip(canvases, points, strict=True):
        _draw(canvas, face, width_px)
    return canvases

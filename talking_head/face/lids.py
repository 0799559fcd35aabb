"""Closed lids painted from the photo's own lid skin: what G does not paint when an edit closes an eye.

G was trained on talking clips with few blinks: given landmarks of a closed
eye it leaves dark blobs of the iris in a slit (the warp squeezes the eye's
opening to the lid line, and G does not cover it). :func:`paint_closed_lids`
replaces each closing eye of a rendered crop with the photo's skin around
that eye, remapped column by column along the eye: in the eye's frame
(x from the inner to the outer corner of the photo, y across it, in eye
widths), the band between ``TOP`` and the target's upper lid samples the
band between ``TOP`` and the photo's upper lid (the lid skin stretched down
over the eye), and the band from the target's lower lid to ``BOTTOM`` samples
the photo's lower lid skin; the opening between the target's lids samples the
photo's opening, so a fully closed eye keeps none of it but a lash line.
Pure numpy and OpenCV on uint8 crops and ``(68, 2)`` landmarks in crop pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

# Corner, upper lid, lower lid, corner of each eye (iBUG 68; "left" as seen in the image).
EYE_POINTS: dict[str, tuple[int, list[int], list[int], int]] = {
    "left": (36, [37, 38], [41, 40], 39),
    "right": (42, [43, 44], [47, 46], 45),
}
TOP, BOTTOM = -0.7, 0.5  # the remapped band above and below the corner line, in eye widths
MARGIN = 0.2  # beyond each corner, in eye widths (the map is the identity there)
CLOSING = 0.95  # an eye is painted when its target lid gap is below this share of the photo's


def _eye_frame(points: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(origin (2,), axes (2, 2): along the eye and across it, each one eye width long) of one eye."""
    first, _, _, last = EYE_POINTS[side]
    origin = points[first].astype(np.float64)
    along = points[last].astype(np.float64) - origin
    across = np.array([-along[1], along[0]])  # down the face for an upright eye (image y points down)
    return origin, np.stack([along, across])


def _to_eye(pixels: np.ndarray, frame: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    origin, axes = frame
    return (pixels - origin) @ np.linalg.inv(axes)  # (..., 2): x along, y across, eye widths


def _lid(points: np.ndarray, side: str, which: int, frame: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The upper (``which`` 1) or lower (2) lid's y at eye positions ``x``; 0 beyond the corners."""
    first, upper, lower, last = EYE_POINTS[side]
    curve = _to_eye(points[[first, *(upper if which == 1 else lower), last]].astype(np.float64), frame)
    order = np.argsort(curve[:, 0])
    inside = (x >= 0) & (x <= 1)
    return np.interp(np.clip(x, 0, 1), curve[order, 0], curve[order, 1]) * inside


def lid_gap(points: np.ndarray, side: str) -> float:
    """Mean distance between one eye's facing lid points, pixels."""
    _, upper, lower, _ = EYE_POINTS[side]
    return float(np.linalg.norm(points[lower] - points[upper], axis=1).mean())


def lid_source_map(target: np.ndarray, photo: np.ndarray, side: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each crop pixel samples the photo's crop to close one eye, and the blend mask.

    ``target``: the edited landmarks, ``photo``: the photo's, ``(68, 2)`` crop
    pixels each. Returns ``(map (S, S, 2) float32 for cv2.remap, mask (S, S)
    float32 in [0, 1])``: the mask is 1 over the eye and fades out before the
    band's ends.
    """
    target_frame, photo_frame = _eye_frame(target, side), _eye_frame(photo, side)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    local = _to_eye(np.stack([cols, rows], axis=-1), target_frame)  # (S, S, 2)
    x, y = local[..., 0], local[..., 1]
    upper_t, lower_t = _lid(target, side, 1, target_frame, x), _lid(target, side, 2, target_frame, x)
    upper_p, lower_p = _lid(photo, side, 1, photo_frame, x), _lid(photo, side, 2, photo_frame, x)
    # Piecewise linear across the eye: knots (TOP, upper, lower, BOTTOM), target's to photo's.
    above = TOP + (y - TOP) * (upper_p - TOP) / np.maximum(upper_t - TOP, 1e-6)
    between = upper_p + (y - upper_t) * (lower_p - upper_p) / np.maximum(lower_t - upper_t, 1e-6)
    below = lower_p + (y - lower_t) * (BOTTOM - lower_p) / np.maximum(BOTTOM - lower_t, 1e-6)
    mapped = np.where(y < upper_t, above, np.where(y < lower_t, between, below))
    inside = (x > -MARGIN) & (x < 1 + MARGIN) & (y > TOP) & (y < BOTTOM)
    mapped = np.where(inside, mapped, y)
    origin, axes = photo_frame
    source = origin + np.stack([x, mapped], axis=-1) @ axes  # (S, S, 2) photo crop pixels
    core = (x > -MARGIN / 2) & (x < 1 + MARGIN / 2) & (y > 0.7 * TOP) & (y < 0.7 * BOTTOM)
    width = max(3, int(np.linalg.norm(axes[0]) * 0.25) | 1)  # a quarter eye width of feathering, odd
    mask = cv2.GaussianBlur(core.astype(np.float32), (width, width), 0)
    return source.astype(np.float32), mask


def paint_closed_lids(
    rendered: np.ndarray, photo_crop: np.ndarray, target: np.ndarray, photo: np.ndarray
) -> np.ndarray:
    """``rendered`` ``(S, S, 3)`` uint8 with each eye that ``target`` closes (beyond the photo's) painted over.

    ``photo_crop``: the photo in the same crop ``(S, S, 3)`` uint8; ``target``
    and ``photo``: the landmarks the crop was rendered for and the photo's,
    ``(68, 2)`` crop pixels. An eye that stays open or opens wider is left as G rendered it.
    """
    out = rendered.astype(np.float32)
    size = rendered.shape[0]
    for side in EYE_POINTS:
        if lid_gap(target, side) >= CLOSING * lid_gap(photo, side):
            continue
        source, mask = lid_source_map(target, photo, side, size)
        painted = cv2.remap(photo_crop, source[..., 0], source[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out += (painted.astype(np.float32) - out) * mask[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)

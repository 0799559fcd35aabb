"""Face framing: the ONE square crop used for training frames, source photos and driving clips.

The model only ever sees faces framed by :func:`crop_box_from_landmarks`, so
training and inference framing cannot drift apart (a known failure of earlier
re-implementations). Boxes of a clip are smoothed over time with
:func:`smooth_crop_boxes`; :func:`paste_back` inverts the crop so a generated
face can be put back into the original photo.

Geometry: a :class:`CropBox` is a square ``[x0, x0 + size) × [y0, y0 + size)``
in the pixel coordinates of the image (pixel centres at integers, the same
convention as the landmarks). Cropping to ``out_size`` pixels is the affine map
``crop = (image - (x0, y0)) * out_size / size``; images and points use exactly
this map, so landmarks stay on the face they describe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "CropBox",
    "FRAME_SCALE",
    "FRAME_SHIFT_UP",
    "crop_box_from_landmarks",
    "smooth_crop_boxes",
    "crop_image",
    "points_to_crop",
    "points_from_crop",
    "paste_back",
]

# Box side = FRAME_SCALE × the larger side of the landmarks' bounding box. The 68
# points span brows to chin, about two thirds of the head height (the forehead
# above the brows is roughly half the brow–chin distance); 1.8 leaves room for
# forehead, some hair, ears and the neck, like VoxCeleb's face-track crops, where
# the landmark box covers a bit over half the frame.
FRAME_SCALE = 1.8
# The box centre sits this fraction of the landmark-box height above the landmark-box
# centre: the points have no forehead, so an unshifted box would cut it and show
# too much neck. With 1.8 and 0.15 the box spans 0.55 h above the brows and
# 0.25 h below the chin (h = brow–chin height).
FRAME_SHIFT_UP = 0.15


@dataclass(frozen=True)
class CropBox:
    """A square crop in image pixel coordinates; may extend past the image."""

    x0: float  # left edge (x of the crop's first column)
    y0: float  # top edge (y of the crop's first row)
    size: float  # side length in image pixels

    def as_array(self) -> np.ndarray:
        """``float32 (3,)`` array ``(x0, y0, size)``."""
        return np.array([self.x0, self.y0, self.size], dtype=np.float32)

    def as_xyxy(self) -> np.ndarray:
        """``float32 (4,)`` array ``(x0, y0, x1, y1)`` (the project's box convention)."""
        return np.array([self.x0, self.y0, self.x0 + self.size, self.y0 + self.size], dtype=np.float32)

    @classmethod
    def from_array(cls, values: Sequence[float] | np.ndarray) -> CropBox:
        """Inverse of :meth:`as_array`."""
        x0, y0, size = (float(value) for value in values)
        return cls(x0, y0, size)

    @property
    def center(self) -> tuple[float, float]:
        """``(cx, cy)`` in image pixels."""
        return (self.x0 + self.size / 2, self.y0 + self.size / 2)


def crop_box_from_landmarks(points: np.ndarray) -> CropBox:
    """Square, VoxCeleb-like box around one face's ``(68, 2)`` landmarks (see FRAME_SCALE/FRAME_SHIFT_UP)."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected landmarks of shape (68, 2), got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks contain NaN or inf")
    low, high = points.min(axis=0), points.max(axis=0)
    width, height = high - low
    size = FRAME_SCALE * max(width, height)
    if size <= 0:
        raise ValueError("landmarks are all at one point; cannot frame a face")
    center_x = (low[0] + high[0]) / 2
    center_y = (low[1] + high[1]) / 2 - FRAME_SHIFT_UP * height
    return CropBox(float(center_x - size / 2), float(center_y - size / 2), float(size))


def _gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0 of ``(T, C)``, repeating the end values beyond both ends."""
    radius = max(1, int(math.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, ((radius, radius), (0, 0)), mode="edge")
    # (T + 2r, C) → (T, C, 2r + 1) windows, weighted by the kernel.
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(kernel), axis=0)
    return windows @ kernel


def smooth_crop_boxes(boxes: Sequence[CropBox] | np.ndarray, strength: float) -> list[CropBox]:
    """Smooth a clip's crop boxes over time so the framing does not jitter.

    Args:
        boxes: one box per frame, as :class:`CropBox` objects or a ``(T, 3)``
            array of ``(x0, y0, size)``.
        strength: standard deviation, in frames, of the Gaussian applied to
            the box centre and to log(size). 0 returns the boxes unchanged;
            2–3 suits 25–30 fps clips (detector jitter gone, head motion kept).

    Returns:
        ``T`` smoothed boxes.
    """
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    array = np.array(
        [box.as_array() for box in boxes] if not isinstance(boxes, np.ndarray) else boxes, dtype=np.float64
    ).reshape(-1, 3)
    if len(array) == 0 or strength == 0:
        return [CropBox.from_array(row) for row in array]
    if (array[:, 2] <= 0).any() or not np.isfinite(array).all():
        raise ValueError("boxes must be finite with positive size")
    size = array[:, 2]
    # Centre and log-size: a box grows/shrinks about its centre, and sizes average geometrically.
    features = np.stack([array[:, 0] + size / 2, array[:, 1] + size / 2, np.log(size)], axis=1)
    smoothed = _gaussian_smooth(features, strength)
    new_size = np.exp(smoothed[:, 2])
    return [
        CropBox(float(cx - s / 2), float(cy - s / 2), float(s))
        for cx, cy, s in zip(smoothed[:, 0], smoothed[:, 1], new_size, strict=True)
    ]


def _crop_matrix(box: CropBox, out_size: int) -> np.ndarray:
    """2×3 affine from image pixels to crop pixels."""
    scale = out_size / box.size
    return np.array([[scale, 0.0, -box.x0 * scale], [0.0, scale, -box.y0 * scale]], dtype=np.float64)


def points_to_crop(points: np.ndarray, box: CropBox, out_size: int) -> np.ndarray:
    """Map ``(..., 2)`` image-pixel points into the pixels of ``crop_image(image, box, out_size)``."""
    scale = out_size / box.size
    return ((np.asarray(points, dtype=np.float64) - (box.x0, box.y0)) * scale).astype(np.float32)


def points_from_crop(points: np.ndarray, box: CropBox, out_size: int) -> np.ndarray:
    """Inverse of :func:`points_to_crop`: crop pixels back to image pixels."""
    scale = box.size / out_size
    return (np.asarray(points, dtype=np.float64) * scale + (box.x0, box.y0)).astype(np.float32)


def _antialias_sigma(shrink: float) -> float:
    """Blur before sampling ``shrink`` source pixels per output pixel (skimage's rule), 0 if enlarging."""
    return max(0.0, (shrink - 1.0) / 2.0)


def _region(
    image: np.ndarray, x_start: int, y_start: int, width: int, height: int, border: str
) -> np.ndarray:
    """``image[y_start:y_start+height, x_start:x_start+width]``, filled outside the image."""
    image_h, image_w = image.shape[:2]
    top, left = max(0, -y_start), max(0, -x_start)
    bottom = max(0, y_start + height - image_h)
    right = max(0, x_start + width - image_w)
    if top + bottom < height and left + right < width:
        # Usual case: the region overlaps the image; slice it and let OpenCV fill the rest.
        inside = image[y_start + top : y_start + height - bottom, x_start + left : x_start + width - right]
        mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
        return cv2.copyMakeBorder(inside, top, bottom, left, right, mode, value=(0, 0, 0))
    # No overlap at all: index with clamped coordinates (nearest edge pixels).
    rows = np.arange(y_start, y_start + height)
    cols = np.arange(x_start, x_start + width)
    region = image[np.clip(rows, 0, image.shape[0] - 1)][:, np.clip(cols, 0, image.shape[1] - 1)]
    if border == "black":
        inside = ((rows >= 0) & (rows < image.shape[0]))[:, None] & ((cols >= 0) & (cols < image.shape[1]))[
            None
        ]
        region[~inside] = 0
    return region


def crop_image(image: np.ndarray, box: CropBox, out_size: int, border: str = "replicate") -> np.ndarray:
    """Cut ``box`` out of ``image`` and resize it to ``(out_size, out_size, 3)`` uint8.

    Shrinking blurs first (Gaussian, sigma = (shrink − 1) / 2) so fine detail
    does not alias; enlarging uses bicubic interpolation. Parts of the box
    outside the image repeat the image's edge pixels (``border="replicate"``,
    the default: no hard black bars for the networks to learn as content) or
    are black (``border="black"``).
    """
    if border not in ("replicate", "black"):
        raise ValueError(f"border must be 'replicate' or 'black', got {border!r}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    shrink = box.size / out_size
    sigma = _antialias_sigma(shrink)
    # Work on the box's pixels plus a margin for the blur and interpolation kernels only.
    margin = int(math.ceil(3 * sigma)) + 3
    x_start, y_start = int(math.floor(box.x0)) - margin, int(math.floor(box.y0)) - margin
    side = int(math.ceil(box.size)) + 2 * margin + 1
    region = _region(image, x_start, y_start, side, side, border)
    if sigma > 0:
        region = cv2.GaussianBlur(region, (0, 0), sigmaX=sigma, sigmaY=sigma)
    shifted = CropBox(box.x0 - x_start, box.y0 - y_start, box.size)
    interpolation = cv2.INTER_LINEAR if shrink >= 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(
        region,
        _crop_matrix(shifted, out_size),
        (out_size, out_size),
        flags=interpolation,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _feather_mask(out_size: int, feather: float) -> np.ndarray:
    """``(S, S)`` float32 alpha: 0 at the crop's edge rising linearly to 1 at ``feather × S`` inside."""
    if feather <= 0:
        return np.ones((out_size, out_size), dtype=np.float32)
    index = np.arange(out_size, dtype=np.float32)
    distance = np.minimum(index + 0.5, out_size - 0.5 - index)  # to the nearest edge
    ramp = np.clip(distance / (feather * out_size), 0.0, 1.0)
    return np.minimum.outer(ramp, ramp)


def paste_back(image: np.ndarray, crop: np.ndarray, box: CropBox, feather: float = 0.1) -> np.ndarray:
    """Put a (generated) ``crop`` back where ``box`` was cut from ``image``; returns a new image.

    The crop is warped back to the box's size and position and blended with
    an alpha that ramps from 0 at the crop's border to 1 at ``feather`` × the
    crop side inside (0 = hard edge), so seams do not show. Pixels outside
    the box are unchanged.
    """
    image = np.asarray(image)
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.shape[2] != 3:
        raise ValueError(f"expected a square RGB crop (S, S, 3), got {crop.shape}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or crop.dtype != np.uint8:
        raise ValueError(f"expected RGB uint8 image and crop, got {image.dtype} {image.shape}, {crop.dtype}")
    out_size = crop.shape[0]
    height, width = image.shape[:2]
    # Image rows/columns the box touches (interpolation reaches one pixel beyond the box).
    x_start, y_start = max(0, int(math.floor(box.x0))), max(0, int(math.floor(box.y0)))
    x_end = min(width, int(math.ceil(box.x0 + box.size)) + 1)
    y_end = min(height, int(math.ceil(box.y0 + box.size)) + 1)
    result = image.copy()
    if x_end <= x_start or y_end <= y_start:
        return result  # the box lies entirely outside the image

    sigma = _antialias_sigma(out_size / box.size)
    source = cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, sigmaY=sigma) if sigma > 0 else crop
    # Region pixels → crop pixels is the crop map shifted to the region's origin; invert it for warpAffine.
    to_crop = _crop_matrix(CropBox(box.x0 - x_start, box.y0 - y_start, box.size), out_size)
    size = (x_end - x_start, y_end - y_start)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(source, to_crop, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(
        _feather_mask(out_size, feather),
        to_crop,
        size,
        flags=flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    original = np.ascontiguousarray(result[y_start:y_end, x_start:x_end])
    # alpha · warped + (1 − alpha) · original, in one OpenCV pass (several times faster than numpy here).
    result[y_start:y_end, x_start:x_end] = cv2.blendLinear(warped, original, alpha, 1.0 - alpha)
    return result

"""Native-resolution compositing: the photo's own pixels warped at the output's resolution (DESIGN §7, §9).

G renders a 256² crop, but the warp it starts from is resolution-free: the
thin-plate spline is a function of position, so the photo itself can be
warped at the output's resolution, and only what G changes needs upsampling.
Per frame, with ``q`` an output pixel's position in crop pixels:

- the TPS field of the first shot to the frame's landmarks
  (:func:`talking_head.nets.warp.sampling_grid` at crop resolution, a smooth
  field) is interpolated to each output pixel, scaled by the head mask ``m``,
  and the photo is sampled there with Lanczos-4 over the face (1.3 × its
  box; DESIGN §9: 0.81–1.07 of the photo's sharpness; on a 930-px portrait
  bicubic kept 0.75 of the face's sharpness and Lanczos-4 0.86,
  ``scripts/measure_native.py``) and bicubic around it (hair, the fade; a
  fifth of Lanczos-4's cost; 0.68–1.04);
- G's correction ``c = result − warp₂₅₆`` (``(1 − α)·Δ`` of the warp-guided G,
  zero where G keeps the warp), blurred by :data:`CORRECTION_SIGMA`, is
  upsampled smoothly (bilinear of the blurred field) and added, times ``m``;
- outside the head mask the output *is* the photo (resampled only for a crop
  output): the background, the shoulders and the frame stay still.

The mask (:func:`head_mask`) is the hull of the jaw and of the brows raised
into the forehead, widened and feathered, and held to within 1.9× the
landmarks' box. Motion fades out by scaling the *displacement*, not by
cross-fading two images: a cross-fade of a moved and an unmoved image shows
both, a translucent second outline of the hair and cheek (docs/WARP.md).
And the photo is sampled over its whole area, so a head that moves
towards the crop's edge takes real pixels from past it instead of repeating
the crop's border row (the vertical streaks).

Outputs (:data:`OUTPUTS`): ``photo``, the whole photo at its own size up to
``limit`` on the longer side (larger photos are downscaled first; the
compositor's ``notice`` says so), or ``crop-256`` / ``crop-512`` /
``crop-1024``, the face crop at that side.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from talking_head.face.framing import CropBox
from talking_head.nets.warp_field import displacement_fields, field_positions

__all__ = ["OUTPUTS", "DEFAULT_LIMIT", "NativeCompositor", "head_mask", "check_output", "crop_side"]

OUTPUTS = ("photo", "crop-256", "crop-512", "crop-1024")
DEFAULT_LIMIT = 1024  # longer side of the whole-photo output, pixels; larger photos are downscaled
FOREHEAD = 0.3  # the brows are raised by this × (chin − brows) into the forehead and hair
MARGIN = 0.06  # the hull is widened by this × the face's size ...
FEATHER = 0.22  # ... and the motion fades out over this × the face's size beyond it
# G's correction is blurred by this (crop pixels) before it is upsampled: what G adds finer than
# that is noise at 4× (it raised the face's sharpness above the photo's, up to 1.37×).
CORRECTION_SIGMA = 1.0
DETAIL_BOX = 1.3  # the photo is sampled with Lanczos-4 in this × the face's box, bicubic around it
REACH = 1.9  # the mask is zero outside this × the landmarks' box (about its centre)
_JAW, _BROWS = slice(0, 17), slice(17, 27)
Item = TypeVar("Item")


def check_output(output: str) -> str:
    """``output`` when it is one of :data:`OUTPUTS`, else ``ValueError`` naming them."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return output


def crop_side(output: str) -> int | None:
    """The side of a ``crop-N`` output, ``None`` for ``photo``."""
    check_output(output)
    return None if output == "photo" else int(output.split("-")[1])


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _reach_window(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """1 well inside :data:`REACH` × the points' box, 0 outside it, smooth in between: ``(H, W)``."""
    low, high = points.min(0), points.max(0)
    centre, half = (low + high) / 2, np.maximum(high - low, 1.0) / 2 * REACH
    axes = []
    for axis, count in ((0, shape[1]), (1, shape[0])):
        distance = np.abs(np.arange(count, dtype=np.float32) - centre[axis])
        axes.append(_smoothstep((half[axis] - distance) / (0.15 * half[axis])))
    return np.outer(axes[1], axes[0]).astype(np.float32)


def head_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Where the head moves: ``(H, W)`` float32 in [0, 1] from 68 landmarks ``(68, 2)`` in those pixels.

    The convex hull of the jaw and of the brows raised by :data:`FOREHEAD` ×
    the chin-to-brow height, widened by :data:`MARGIN` and fading to 0 over
    :data:`FEATHER` × the face's size (a smoothstep of the distance), within
    :data:`REACH` × the landmarks' box.
    """
    points = np.asarray(points, dtype=np.float32)
    brows = points[_BROWS]
    height = max(1.0, float(points[8, 1] - brows[:, 1].mean()))
    size = float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1]), 1.0))
    raised = brows - (0.0, FOREHEAD * height)
    hull = cv2.convexHull(np.concatenate([points[_JAW], brows, raised]).astype(np.float32))
    inside = np.full(shape, 255, np.uint8)
    cv2.fillConvexPoly(inside, np.round(hull[:, 0] * 16).astype(np.int32), 0, cv2.LINE_AA, shift=4)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)  # 0 inside the hull
    mask = _smoothstep(1.0 - (distance - MARGIN * size) / (FEATHER * size))
    return (mask * _reach_window(points, shape)).astype(np.float32)


@dataclass(frozen=True)
class _Canvas:
    """The output's pixel grid over the (possibly downscaled) photo: photo x = ``x0 + step · u``."""

    photo: np.ndarray  # the photo the output samples, (H, W, 3) uint8
    box: CropBox  # the person's crop box in that photo's pixels
    x0: float
    y0: float
    step: float  # photo pixels per output pixel
    width: int
    height: int


def _scaled(photo: np.ndarray, box: CropBox, scale: float) -> tuple[np.ndarray, CropBox]:
    if scale >= 1.0:
        return photo, box
    size = (max(2, round(photo.shape[1] * scale)), max(2, round(photo.shape[0] * scale)))
    fx, fy = size[0] / photo.shape[1], size[1] / photo.shape[0]
    small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    # INTER_AREA maps pixel centres by x' = (x + 0.5)·f − 0.5.
    return small, CropBox((box.x0 + 0.5) * fx - 0.5, (box.y0 + 0.5) * fy - 0.5, box.size * (fx + fy) / 2)


def _canvas(photo: np.ndarray, box: CropBox, output: str, limit: int) -> _Canvas:
    side = crop_side(output)
    if side is None:
        small, small_box = _scaled(photo, box, limit / max(photo.shape[:2]))
        return _Canvas(small, small_box, 0.0, 0.0, 1.0, small.shape[1], small.shape[0])
    small, small_box = _scaled(photo, box, side / box.size)  # never sample more than 1 pixel per output pixel
    return _Canvas(small, small_box, small_box.x0, small_box.y0, small_box.size / side, side, side)


class NativeCompositor:
    """Frames at the output's resolution from G's crops and their landmarks (see the module's text).

    ``photo`` ``(H, W, 3)`` uint8 and ``box``: the person's first usable photo
    and its crop box; ``shot`` ``(S, S, 3)`` uint8 and ``shot_points``
    ``(68, 2)``: its crop and landmarks in crop pixels. Call it with G's
    result ``(S, S, 3)`` uint8 and the landmarks it was rendered for.
    """

    def __init__(
        self,
        photo: np.ndarray,
        box: CropBox,
        shot: np.ndarray,
        shot_points: np.ndarray,
        output: str = "photo",
        limit: int = DEFAULT_LIMIT,
        interpolation: int = cv2.INTER_LANCZOS4,
    ) -> None:
        self.output, self.interpolation = check_output(output), interpolation
        self.crop_size = shot.shape[0]
        canvas = _canvas(np.ascontiguousarray(photo), box, output, limit)
        self.canvas = canvas
        downscaled = canvas.photo.shape[:2] != photo.shape[:2]
        self.notice = (
            f"The photo ({photo.shape[1]}×{photo.shape[0]}) was downscaled to "
            f"{canvas.photo.shape[1]}×{canvas.photo.shape[0]} (longer side at most {limit} px)."
            if downscaled and output == "photo"
            else None
        )
        self._shot = np.asarray(shot, np.float32)
        self._shot_points = np.asarray(shot_points, np.float32)
        identity = np.arange(self.crop_size, dtype=np.float32)
        self._spacing = float(field_positions(self.crop_size)[1])  # crop pixels between field samples
        self._crop_identity = np.meshgrid(identity, identity, indexing="xy")
        self._crop_grid = [axis / self._spacing for axis in self._crop_identity]
        self._setup_region(np.asarray(shot_points, np.float32))

    def _to_output(self, crop_points: np.ndarray) -> np.ndarray:
        """Crop pixels → output pixels."""
        c = self.canvas
        photo_points = crop_points * (c.box.size / self.crop_size) + (c.box.x0, c.box.y0)
        return ((photo_points - (c.x0, c.y0)) / c.step).astype(np.float32)

    def _setup_region(self, shot_points: np.ndarray) -> None:
        """The still frame, the mask and, over the mask's box, the output pixels' photo and crop positions."""
        c = self.canvas
        mask = head_mask(self._to_output(shot_points), (c.height, c.width))
        if c.step == 1.0 and c.x0 == 0.0 and c.y0 == 0.0:
            self.still = c.photo
        else:
            matrix = np.array([[c.step, 0.0, c.x0], [0.0, c.step, c.y0]])
            flags = self.interpolation | cv2.WARP_INVERSE_MAP
            self.still = cv2.warpAffine(c.photo, matrix, (c.width, c.height), flags=flags, borderMode=cv2.BORDER_REFLECT101)
        rows, cols = np.nonzero(mask > 0)
        if len(rows) == 0:
            self.region = (0, 0, 0, 0)
            return
        y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        self.region = (int(y0), int(y1), int(x0), int(x1))
        self.mask = mask[y0:y1, x0:x1]
        face = self._to_output(shot_points) - (x0, y0)  # the face's box (widened) in region pixels
        low, high = face.min(0), face.max(0)
        centre, half = (low + high) / 2, (high - low) / 2 * DETAIL_BOX
        fx0, fy0 = np.maximum(0, np.floor(centre - half)).astype(int)
        fx1, fy1 = np.minimum((x1 - x0, y1 - y0), np.ceil(centre + half)).astype(int)
        self.detail = (slice(fy0, max(fy0, fy1)), slice(fx0, max(fx0, fx1)))
        px = (c.x0 + c.step * np.arange(x0, x1, dtype=np.float32))[None].repeat(y1 - y0, 0)
        py = (c.y0 + c.step * np.arange(y0, y1, dtype=np.float32))[:, None].repeat(x1 - x0, 1)
        self.photo_x, self.photo_y = px.astype(np.float32), py.astype(np.float32)
        # Region pixel (u, v) → crop pixel: crop = scale · (u, v) + offset; the field's grid is that / spacing.
        to_crop = self.crop_size / c.box.size
        scale = c.step * to_crop
        offset = ((c.x0 + c.step * x0 - c.box.x0) * to_crop, (c.y0 + c.step * y0 - c.box.y0) * to_crop)
        self.to_crop = np.array([[scale, 0.0, offset[0]], [0.0, scale, offset[1]]])
        self.to_field = self.to_crop / self._spacing
        self.motion_mask = (self.mask * (c.box.size / self.crop_size))[..., None]  # crop px → photo px, faded
        self.mask3 = np.ascontiguousarray(np.repeat(self.mask[..., None], 3, axis=2))

    def fields(self, points: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per frame of landmarks ``(B, 68, 2)``: the field's displacement on its coarse grid ``(n, n, 2)``
        (crop pixels, :func:`~talking_head.nets.warp_field.displacement_fields`) and the shot warped by it
        at crop resolution ``(S, S, 3)`` float; all B in one spline call."""
        coarse = displacement_fields(points, self._shot_points, self.crop_size)  # (B, n, n, 2)
        warps = []
        for field in coarse:
            moved = cv2.remap(field, self._crop_grid[0], self._crop_grid[1], cv2.INTER_LINEAR)
            map_x, map_y = self._crop_identity[0] + moved[..., 0], self._crop_identity[1] + moved[..., 1]
            warps.append(cv2.remap(self._shot, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        return list(zip(coarse, warps))

    def __call__(
        self, result: np.ndarray, points: np.ndarray, field: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """The output frame ``(H, W, 3)`` uint8 for G's ``result`` rendered for ``points`` ``(68, 2)``
        (``field``: its entry of :meth:`fields`, made here when not given)."""
        if result.shape[:2] != (self.crop_size, self.crop_size):
            raise ValueError(f"expected a {self.crop_size}² result, got {result.shape}")
        out = self.still.copy()
        y0, y1, x0, x1 = self.region
        if y1 <= y0:
            return out
        displacement, warp = field if field is not None else self.fields(points[None])[0]
        correction = np.asarray(result, np.float32) - warp  # (1 − α)·Δ: zero where G keeps the warp
        if CORRECTION_SIGMA > 0:
            correction = cv2.GaussianBlur(correction, (0, 0), CORRECTION_SIGMA)
        size = (x1 - x0, y1 - y0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        # Outside the crop the field is the identity (the border anchors) and G changes nothing: zeros.
        moved = cv2.warpAffine(displacement, self.to_field, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        moved *= self.motion_mask
        map_x, map_y = cv2.add(self.photo_x, moved[..., 0]), cv2.add(self.photo_y, moved[..., 1])
        photo, border = self.canvas.photo, cv2.BORDER_REFLECT101
        # The face with ``interpolation`` (Lanczos-4: the detail that matters), the rest of the head bicubic.
        sampled = cv2.remap(photo, map_x, map_y, cv2.INTER_CUBIC, borderMode=border)
        if self.interpolation != cv2.INTER_CUBIC:
            rows, cols = self.detail
            face_x, face_y = np.ascontiguousarray(map_x[rows, cols]), np.ascontiguousarray(map_y[rows, cols])
            sampled[rows, cols] = cv2.remap(photo, face_x, face_y, self.interpolation, borderMode=border)
        delta = cv2.warpAffine(correction, self.to_crop, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        out[y0:y1, x0:x1] = cv2.add(sampled, cv2.multiply(delta, self.mask3), dtype=cv2.CV_8U)
        return out

    def composite(self, results: np.ndarray, points: np.ndarray) -> Iterator[np.ndarray]:
        """Output frames for a batch of G's ``results`` ``(B, S, S, 3)`` and their ``points`` ``(B, 68, 2)``."""
        for result, frame_points, field in zip(results, points, self.fields(points)):
            yield self(result, frame_points, field)

    def frames(self, frames: Iterable[Item], batch_size: int = 8) -> Iterator[tuple[Item, np.ndarray]]:
        """Each :class:`~talking_head.animation.pipeline.AnimationFrame` (``.result``, ``.landmarks``) with
        its output frame, ``batch_size`` at a time (one TPS call a batch); streamed."""
        batch: list = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == batch_size:
                yield from self._batch(batch)
                batch = []
        yield from self._batch(batch)

    def _batch(self, batch: list) -> Iterator[tuple[Item, np.ndarray]]:
        if not batch:
            return
        points = np.stack([frame.landmarks for frame in batch])
        results = np.stack([frame.result for frame in batch])
        yield from zip(batch, self.composite(results, points))

    @classmethod
    def for_person(cls, person, output: str = "photo", limit: int = DEFAULT_LIMIT) -> NativeCompositor:
        """The compositor of a :class:`~talking_head.animation.person.Person` (its first usable photo)."""
        return cls(person.source_image, person.source_box, person.shots[0], person.shot_landmarks[0], output, limit)

"""Native-resolution compositing: the photo's own pixels warped at the output's resolution (DESIGN §7, §9).

G renders a 256² crop, but the warp it starts from is resolution-free: the
thin-plate spline is a function of position, so the photo itself can be
warped at the output's resolution, and only what G changes needs upsampling.
Per frame, with ``q`` an output pixel's position in crop pixels:

- the TPS field of the first shot to the frame's landmarks
  (:func:`talking_head.nets.warp.sampling_grid` at crop resolution, a smooth
  field), scaled by the head mask ``m``, is made on a grid
  :data:`MOTION_STEP` output pixels apart and resized to each output pixel
  (exact for the unmoved positions, which are linear), and the photo is
  sampled there: bicubic from a layer of the photo upsampled
  :data:`FINE` × once with Lanczos-4, whose every other pixel is the photo's
  own (a pixel that does not move comes back exactly). That keeps
  Lanczos-4's sharpness (bicubic of the photo itself loses a fifth of it on
  half-pixel moves, ``tests/test_compositing.py``) at a third of the cost of
  Lanczos-4 everywhere (16 taps a pixel against 64: 11.6 against 33 ms CPU a
  frame for a 512-px face at 1024, shared 2-core AMD EPYC Zen 5);
- G's correction ``c = result − warp₂₅₆`` (``(1 − α)·Δ`` of the warp-guided G,
  zero where G keeps the warp), blurred by :data:`CORRECTION_SIGMA`, is
  multiplied by ``m`` at crop resolution, upsampled smoothly (bilinear of
  the blurred field) and added;
- all of it band by band (32 rows, each cut to where ``m`` > 0), so each
  band's positions, samples and correction stay in the cache;
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
FINE = 2  # the photo around the head is upsampled this × once (Lanczos-4) and sampled bicubic from there
MOTION_REACH = 0.3  # ... over the head's region widened by this × the crop box (how far a pixel may move)
MOTION_STEP = 4  # the head's displacement is made on a grid this many output pixels apart, then resized
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


def _support_bands(mask: np.ndarray, height: int = 32) -> list[tuple[slice, slice]]:
    """Bands of ``height`` rows of ``mask`` ``(h, w)``, each cut to the columns where the mask is above 0."""
    bands = []
    for top in range(0, mask.shape[0], height):
        columns = np.nonzero((mask[top : top + height] > 0).any(0))[0]
        if len(columns):
            bands.append((slice(top, top + height), slice(int(columns[0]), int(columns[-1]) + 1)))
    return bands


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
    ``fine`` and ``interpolation``: how the photo is sampled (upsampled
    ``fine`` × once with Lanczos-4, then sampled with ``interpolation``).
    """

    def __init__(
        self,
        photo: np.ndarray,
        box: CropBox,
        shot: np.ndarray,
        shot_points: np.ndarray,
        output: str = "photo",
        limit: int = DEFAULT_LIMIT,
        interpolation: int = cv2.INTER_CUBIC,
        fine: int = FINE,
    ) -> None:
        self.output, self.interpolation, self.fine = check_output(output), interpolation, max(1, int(fine))
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
        # The frames' own ``warp`` (G's input) is this shot warped by the same spline: :meth:`frames` uses it.
        self.given_warps = False
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
        """The still frame, the mask, and the per-photo work of :meth:`__call__` over the mask's box."""
        c = self.canvas
        mask = head_mask(self._to_output(shot_points), (c.height, c.width))
        if c.step == 1.0 and c.x0 == 0.0 and c.y0 == 0.0:
            self.still = c.photo
        else:
            matrix = np.array([[c.step, 0.0, c.x0], [0.0, c.step, c.y0]])
            flags = cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP
            self.still = cv2.warpAffine(c.photo, matrix, (c.width, c.height), flags=flags, borderMode=cv2.BORDER_REFLECT101)
        rows, cols = np.nonzero(mask > 0)
        if len(rows) == 0:
            self.region = (0, 0, 0, 0)
            return
        y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        self.region = (int(y0), int(y1), int(x0), int(x1))
        self.mask = mask[y0:y1, x0:x1]
        # Region pixel (u, v) → crop pixel: crop = scale · (u, v) + offset; the field's grid is that / spacing.
        to_crop = self.crop_size / c.box.size
        scale = c.step * to_crop
        offset = ((c.x0 + c.step * x0 - c.box.x0) * to_crop, (c.y0 + c.step * y0 - c.box.y0) * to_crop)
        self.to_crop = np.array([[scale, 0.0, offset[0]], [0.0, scale, offset[1]]])
        # G's correction is multiplied by the mask at crop resolution (both are smooth there): one pass less.
        self._crop_mask = cv2.warpAffine(self.mask, self.to_crop, (self.crop_size,) * 2, flags=cv2.INTER_LINEAR)[..., None]
        self._setup_fine_layer()
        self._setup_motion_grid()
        self.bands = [self._band(rows, cols) for rows, cols in _support_bands(self.mask, 8 * MOTION_STEP)]

    def _setup_fine_layer(self) -> None:
        """The photo around the region upsampled :attr:`fine` × (Lanczos-4, once), and where each region
        pixel sits in it unmoved: layer = ``to_layer · (u, v, 1)`` = ``fine · (photo − window)``. The photo's
        own pixels are the layer's every ``fine``-th: a pixel that does not move is given back exactly."""
        c, (y0, y1, x0, x1) = self.canvas, self.region
        self.reach = MOTION_REACH * c.box.size  # photo pixels a head pixel may move and still sample the layer
        height, width = c.photo.shape[:2]
        low = np.floor(np.array([c.x0 + c.step * x0, c.y0 + c.step * y0]) - self.reach - 4).astype(int)
        high = np.ceil(np.array([c.x0 + c.step * (x1 - 1), c.y0 + c.step * (y1 - 1)]) + self.reach + 5).astype(int)
        (wx0, wy0), (wx1, wy1) = np.maximum(low, 0), np.minimum(high, (width, height))
        self.window = (int(wx0), int(wy0))
        window = c.photo[wy0:wy1, wx0:wx1]
        f = self.fine
        if f == 1:
            self.layer = window
        else:
            size = (f * (window.shape[1] - 1) + 1, f * (window.shape[0] - 1) + 1)
            upsample = np.array([[f, 0.0, 0.0], [0.0, f, 0.0]])  # layer pixel f · p is photo pixel p
            self.layer = cv2.warpAffine(window, upsample, size, flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT101)
        offset = f * (np.array([c.x0 + c.step * x0, c.y0 + c.step * y0]) - (wx0, wy0))
        self.to_layer = np.array([[f * c.step, 0.0, offset[0]], [0.0, f * c.step, offset[1]]])

    def _setup_motion_grid(self) -> None:
        """The grid, :data:`MOTION_STEP` output pixels apart, on which each frame's sampling positions
        (unmoved position + mask × field, in layer pixels) are made before cv2.resize brings them to every
        region pixel: sample ``(k, l)`` sits at region pixel ``step · (k − 1) + (step − 1) / 2`` (one
        sample of padding each side, so that the resize never clamps and stays exact for the linear part)."""
        (y0, y1, x0, x1), c, step = self.region, self.canvas, MOTION_STEP
        size = (-(-(x1 - x0) // step) + 2, -(-(y1 - y0) // step) + 2)
        to_region = np.array([[step, 0.0, (step - 1) / 2 - step], [0.0, step, (step - 1) / 2 - step], [0.0, 0.0, 1.0]])
        self.to_field_small = (np.vstack([self.to_crop, (0.0, 0.0, 1.0)]) @ to_region)[:2] / self._spacing
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        small_mask = cv2.warpAffine(self.mask, to_region[:2], size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        layer_per_crop = self.fine * c.box.size / self.crop_size  # crop pixels → layer pixels
        self.small_mask = np.repeat(small_mask[..., None] * layer_per_crop, 2, axis=2).astype(np.float32)
        k, l = np.meshgrid(np.arange(size[0], dtype=np.float64), np.arange(size[1], dtype=np.float64), indexing="xy")
        u, v = to_region[0, 0] * k + to_region[0, 2], to_region[1, 1] * l + to_region[1, 2]
        layer = self.to_layer
        self.small_positions = np.stack([layer[0, 0] * u + layer[0, 2], layer[1, 1] * v + layer[1, 2]], -1).astype(np.float32)
        self.small_size = size
        self.max_move = self.reach / (c.box.size / self.crop_size)  # the layer's reach in crop pixels

    def _band(self, rows: slice, cols: slice) -> tuple[int, int, int, int, np.ndarray]:
        """A band of the region (``rows`` start at a multiple of :data:`MOTION_STEP`): its bounds, the
        first column moved down to a multiple of the step, and its pixel → crop pixel map."""
        r0, c0 = rows.start, cols.start - cols.start % MOTION_STEP
        r1, c1 = min(rows.stop, self.mask.shape[0]), cols.stop
        to_crop = self.to_crop.copy()
        to_crop[:, 2] += to_crop[:, :2] @ (c0, r0)
        return r0, r1, c0, c1, to_crop

    def _band_map(self, small: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """The positions of region rows ``r0:r1``, columns ``c0:c1`` (``r0``, ``c0`` multiples of the step)
        from the frame's ``small`` grid: ``(r1 − r0, c1 − c0, 2)``."""
        step = MOTION_STEP
        k0, l0 = c0 // step, r0 // step
        part = small[l0 : l0 + -(-(r1 - r0) // step) + 2, k0 : k0 + -(-(c1 - c0) // step) + 2]
        return cv2.resize(part, None, fx=step, fy=step, interpolation=cv2.INTER_LINEAR)[step : step + r1 - r0, step : step + c1 - c0]

    def _small_positions(self, displacement: np.ndarray) -> np.ndarray:
        """The frame's sampling positions in the layer on the motion grid: ``(h', w', 2)``."""
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        # Outside the crop the field is the identity (the border anchors): zeros.
        moved = cv2.warpAffine(displacement, self.to_field_small, self.small_size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        return cv2.add(self.small_positions, cv2.multiply(moved, self.small_mask))

    def _to_photo(self, layer_positions: np.ndarray) -> np.ndarray:
        return layer_positions / self.fine + np.float32(self.window)

    def fields(self, points: np.ndarray, warps: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per frame of landmarks ``(B, 68, 2)``: the field's displacement on its coarse grid ``(n, n, 2)``
        (crop pixels, :func:`~talking_head.nets.warp_field.displacement_fields`) and the shot warped by it
        at crop resolution ``(S, S, 3)`` float; all B in one spline call. ``warps`` ``(B, S, S, 3)``: that
        warp as G was given it (the same spline), used instead of making it again."""
        coarse = displacement_fields(points, self._shot_points, self.crop_size)  # (B, n, n, 2)
        if warps is not None:
            return [(field, np.asarray(warp, np.float32)) for field, warp in zip(coarse, warps)]
        made = []
        for field in coarse:
            moved = cv2.remap(field, self._crop_grid[0], self._crop_grid[1], cv2.INTER_LINEAR)
            map_x, map_y = self._crop_identity[0] + moved[..., 0], self._crop_identity[1] + moved[..., 1]
            made.append(cv2.remap(self._shot, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        return list(zip(coarse, made))

    def layer_map(self, displacement: np.ndarray) -> np.ndarray:
        """Where each region pixel samples :attr:`layer` for a coarse ``displacement``: ``(h, w, 2)`` float32."""
        height, width = self.mask.shape
        return self._band_map(self._small_positions(displacement), 0, height, 0, width)

    def photo_map(self, displacement: np.ndarray) -> np.ndarray:
        """Where each region pixel samples the (canvas) photo, in its pixels: ``(h, w, 2)`` float32."""
        return self._to_photo(self.layer_map(displacement))

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
        correction *= self._crop_mask  # (S, S, 3) · (S, S, 1)
        small = self._small_positions(displacement)
        # A move past the layer's reach (rare: over 0.3 of the crop) samples the photo itself, bicubic.
        within = float(np.abs(displacement).max()) <= self.max_move
        source, interpolation = (self.layer, self.interpolation) if within else (self.canvas.photo, cv2.INTER_CUBIC)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        # Band by band (each band's positions, samples and G's change stay in the cache), and only where the
        # mask is above 0: outside it the output is the photo.
        for r0, r1, c0, c1, to_crop in self.bands:
            positions = self._band_map(small, r0, r1, c0, c1)
            positions = positions if within else self._to_photo(positions)
            moved = cv2.remap(source, positions, None, interpolation, borderMode=cv2.BORDER_REFLECT101)
            # Outside the crop G changes nothing: zeros.
            delta = cv2.warpAffine(correction, to_crop, (c1 - c0, r1 - r0), flags=flags, borderMode=cv2.BORDER_CONSTANT)
            out[y0 + r0 : y0 + r1, x0 + c0 : x0 + c1] = cv2.add(moved, delta, dtype=cv2.CV_8U)
        return out

    def composite(
        self, results: np.ndarray, points: np.ndarray, warps: np.ndarray | None = None
    ) -> Iterator[np.ndarray]:
        """Output frames for a batch of G's ``results`` ``(B, S, S, 3)`` and their ``points`` ``(B, 68, 2)``
        (``warps``: as in :meth:`fields`)."""
        for result, frame_points, field in zip(results, points, self.fields(points, warps)):
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
        given = [getattr(frame, "warp", None) for frame in batch]
        warps = np.stack(given) if self.given_warps and all(w is not None for w in given) else None
        yield from zip(batch, self.composite(results, points, warps))

    @classmethod
    def for_person(cls, person, output: str = "photo", limit: int = DEFAULT_LIMIT) -> NativeCompositor:
        """The compositor of a :class:`~talking_head.animation.person.Person` (its first usable photo)."""
        compositor = cls(person.source_image, person.source_box, person.shots[0], person.shot_landmarks[0], output, limit)
        compositor.given_warps = len(person.shots) == 1  # G's warp is of this one shot (with more: all of them)
        return compositor

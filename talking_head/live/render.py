"""One frame at a time: a person's warp and G' for one set of landmarks, at the lowest latency.

The clip renderer (:mod:`talking_head.animation.rendering`) batches frames and
works one batch ahead, which buys throughput with a batch of latency. Live,
every frame is wanted as soon as it can be made, so :class:`FrameRenderer`
renders batch 1 and keeps everything that does not change per frame: G' on
its runtime (ONNX Runtime on a CPU when measured faster), ψ', the shots.

The warp of the shots to the frame's landmarks runs in numpy and OpenCV:
the spline's field on a coarse grid (:func:`talking_head.nets.warp_field.displacement_fields`),
upsampled, made exact at the landmarks by the same compact bumps as
:func:`talking_head.nets.warp.sampling_grid` (:func:`correct_at_landmarks`),
then ``cv2.remap``. PyTorch's small kernels took 2 ms with one thread but
20–170 ms with two on a busy 2-core machine, where ONNX Runtime's own
threads render too; this takes a few ms whatever the threads do.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from talking_head.animation.person import Person, landmark_images, model_device
from talking_head.animation.rendering import generate_images, rendering_setup
from talking_head.face.control_masks import controlled_result
from talking_head.nets import shot_blend
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.precision import Precision
from talking_head.nets.runtime import Runtime
from talking_head.nets.warp_field import displacement_fields, field_positions, merge_coincident

BUMP_RADIUS_PER_PIXEL = 1 / 48  # the bumps' radius as a fraction of the crop side, as sampling_grid's


def _pixel_grid(size: int) -> np.ndarray:
    """``(S, S, 2)`` float32 (x, y) of every crop pixel."""
    axis = np.arange(size, dtype=np.float32)
    return np.stack(np.meshgrid(axis, axis, indexing="xy"), -1)


def _bump(r: np.ndarray) -> np.ndarray:
    """Wendland's bump (1 − |r|)³(3|r| + 1) for |r| < 1, else 0."""
    r = np.minimum(np.abs(r), 1.0)
    return (1 - r) ** 3 * (3 * r + 1)


def _bilinear(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``field`` ``(S, S, 2)`` at ``points`` ``(P, 2)`` (x, y pixels), bilinearly, clamped to the image."""
    size = field.shape[0]
    x, y = np.clip(points[:, 0], 0, size - 1), np.clip(points[:, 1], 0, size - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), size - 2), np.minimum(np.floor(y).astype(int), size - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = field[y0, x0] * (1 - fx) + field[y0, x0 + 1] * fx
    bottom = field[y0 + 1, x0] * (1 - fx) + field[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def correct_at_landmarks(
    field: np.ndarray, target: np.ndarray, shot: np.ndarray, radius: float
) -> np.ndarray:
    """Make the interpolated ``field`` ``(S, S, 2)`` (where each pixel samples the shot) exact at the landmarks.

    ``target`` and ``shot`` ``(P, 2)`` pixels (coincident targets merged): the
    field must send ``target[i]`` to ``shot[i]``. The residuals are spread by
    separable Wendland bumps of ``radius`` pixels whose amplitudes solve the
    P × P system, as :func:`talking_head.nets.warp._correct_at_landmarks`
    does in PyTorch; the field is changed in place and returned.
    """
    size = field.shape[0]
    residual = shot - _bilinear(field, target)  # (P, 2)
    overlap = _bump((target[:, None, :] - target[None, :, :]) / radius)  # (P, P, 2)
    gram = overlap[..., 0] * overlap[..., 1] + np.eye(len(target)) * 1e-6
    amplitude = np.linalg.solve(gram, residual)  # (P, 2)
    steps = np.arange(int(2 * radius) + 1)
    first = np.floor(target - radius).astype(int) + 1  # (P, 2): each window's first column, first row
    for (x0, y0), centre, amp in zip(first, target, amplitude):
        xs, ys = x0 + steps, y0 + steps
        wx = _bump((xs - centre[0]) / radius) * ((xs >= 0) & (xs < size))
        wy = _bump((ys - centre[1]) / radius) * ((ys >= 0) & (ys < size))
        xs, ys = np.clip(xs, 0, size - 1), np.clip(ys, 0, size - 1)
        field[np.ix_(ys, xs)] += (wy[:, None] * wx[None, :])[..., None] * amp
    return field


class FrameRenderer:
    """``renderer(points)`` → G's crop ``(S, S, 3)`` uint8 for crop landmarks ``(68, 2)`` of ``person``."""

    def __init__(
        self,
        model: TalkingHeadModel,
        person: Person,
        precision: str | Precision | None = None,
        runtime: str | Runtime | None = None,
    ) -> None:
        self.precision, self.runtime = rendering_setup(model, precision, runtime)
        generator = person.generator if person.generator is not None else model.generator
        self._renderer = self.runtime.renderer(generator, self.precision)
        self._device = model_device(model)
        self._psi = person.adain_params.to(self._device)
        self.size = model.config.image_size
        self._warp_guided = model.config.warp_guided
        self._shots = np.ascontiguousarray(person.shots)  # (K, S, S, 3) uint8
        self._shot_points = np.asarray(person.shot_landmarks, dtype=np.float32)  # (K, 68, 2)
        self._grid = _pixel_grid(self.size)
        # Pixel x lies at x · (n − 1) / (S − 1) samples of the field (samples from pixel 0 to pixel S − 1).
        samples = len(field_positions(self.size))
        self._at_samples = (self._grid * ((samples - 1) / (self.size - 1))).astype(np.float32)

    def _upsample(self, coarse: np.ndarray) -> np.ndarray:
        """The field ``(n, n, 2)`` at every crop pixel, bilinearly: ``(S, S, 2)``."""
        at = self._at_samples
        return cv2.remap(coarse, at[..., 0], at[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def warp(self, points: np.ndarray) -> np.ndarray:
        """The shots warped to ``points`` and blended by shape likeness: ``(S, S, 3)`` float32 in [0, 255]."""
        points = np.asarray(points, dtype=np.float32).reshape(68, 2)
        size = self.size
        warped = []
        for shot, shot_points in zip(self._shots, self._shot_points):
            coarse = displacement_fields(points[None], shot_points, size)[0]  # (n, n, 2) at field_positions
            field = self._upsample(coarse) + self._grid
            target, source = merge_coincident(
                points[None].astype(np.float64), shot_points[None].astype(np.float64)
            )
            field = correct_at_landmarks(field, target[0], source[0], size * BUMP_RADIUS_PER_PIXEL).astype(
                np.float32
            )
            warped.append(
                cv2.remap(
                    shot, field[..., 0], field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
                )
            )
        if len(warped) == 1:
            return warped[0].astype(np.float32)
        images = [torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None] for image in warped]
        blended = shot_blend.blend_warps(
            images,
            torch.from_numpy(self._shot_points),
            torch.from_numpy(points[None]),
            mouth_aware=shot_blend.MOUTH_AWARE,
        )  # as nets/warp.warp_shots blends
        return blended[0].permute(1, 2, 0).numpy()

    def __call__(self, points: np.ndarray, regions: tuple[str, ...] | None = None) -> np.ndarray:
        """G's crop for ``points``; with ``regions`` (:func:`~talking_head.face.control_masks.rendered_regions`)
        G's output is kept only there and the warp elsewhere, as the clip renderer does under motion controls."""
        return self.render(points, regions)[0]

    def render(
        self, points: np.ndarray, regions: tuple[str, ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """As :meth:`__call__`, with the warp G was given ``(S, S, 3)`` float in [0, 255] (``None``: not warp-guided)."""
        points = np.asarray(points, dtype=np.float32).reshape(1, 68, 2)
        y = landmark_images(points, self.size)
        warp = self.warp(points[0])[None] if self._warp_guided else None
        if self.runtime.is_onnx:
            result = self._onnx(y, warp)
        else:
            # _to_network copies: images_to_tensor would scale a float32 warp in place, and it is used below.
            warp_tensor = None if warp is None else torch.from_numpy(_to_network(warp)).to(self._device)
            y_tensor = torch.from_numpy(_to_network(y)).to(self._device)
            result = generate_images(self._renderer, self._psi, y_tensor, warp_tensor)[0]
        warp = None if warp is None else warp[0]
        return controlled_result(result, warp, points[0], regions), warp

    def _onnx(self, y: np.ndarray, warp: np.ndarray | None) -> np.ndarray:
        """ONNX Runtime with numpy around it: on a busy CPU PyTorch's threaded elementwise kernels took
        longer than G itself for one 256² frame (70–90 ms against 25)."""
        y_tensor = torch.from_numpy(_to_network(y))
        warp_tensor = None if warp is None else torch.from_numpy(_to_network(warp))
        out = self._renderer(y_tensor, adain_params=self._psi, warp=warp_tensor).numpy()[0]  # (3, S, S)
        return np.clip(np.rint((out.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _to_network(images: np.ndarray) -> np.ndarray:
    """RGB ``(B, S, S, 3)`` in [0, 255] → float32 ``(B, 3, S, S)`` in [-1, 1], contiguous (numpy only)."""
    return np.ascontiguousarray((np.asarray(images, np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2))

"""The warp's field as a function of position, on a coarse grid: for warping at any resolution (DESIGN §9).

:func:`talking_head.nets.warp.sampling_grid` makes the field for one crop
size, exact at the landmarks, at a few ms a frame. Native-resolution
compositing (:mod:`talking_head.animation.compositing`) needs the same
spline somewhere else: at every pixel of the photo around the face, at the
output's resolution. The thin-plate spline is smooth, so it is evaluated on
an ``n × n`` grid of crop positions (``n = S/4 + 1`` by default: 4 crop
pixels apart, the spacing of ``sampling_grid``'s fine grid) and interpolated
from there; that costs one small solve and ``n²·76`` kernel terms a frame.
"""

from __future__ import annotations

import numpy as np
from talking_head.nets.warp import DEFAULT_REGULARIZATION, MERGE_RADIUS, border_anchors

__all__ = ["field_positions", "displacement_fields", "merge_coincident"]


def field_positions(image_size: int, samples: int | None = None) -> np.ndarray:
    """The crop positions (pixels) the field is sampled at along each axis: ``(n,)`` from 0 to S − 1."""
    samples = samples or image_size // 4 + 1
    return np.linspace(0.0, image_size - 1.0, samples, dtype=np.float32)


def merge_coincident(target: np.ndarray, shot: np.ndarray, radius: float = MERGE_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~talking_head.nets.warp.merge_coincident` in numpy: ``(B, P, 2)`` each."""
    near = (((target[:, :, None] - target[:, None]) ** 2).sum(-1) < radius**2).astype(np.float64)
    group = near.sum(-1, keepdims=True)
    merged = near @ shot / group
    has_earlier = np.tril(near, -1).max(-1) > 0
    angle = np.arange(target.shape[1]) * 2.39996
    aside = np.stack([np.cos(angle), np.sin(angle)], -1) * radius
    return target + has_earlier[..., None] * aside, np.where(group > 1, merged, shot)


def _kernel(sq: np.ndarray) -> np.ndarray:
    """U(r) = r² log r², U(0) = 0."""
    return sq * np.log(np.maximum(sq, 1e-12, dtype=sq.dtype))


def displacement_fields(
    target_points: np.ndarray,
    shot_points: np.ndarray,
    image_size: int,
    samples: int | None = None,
    regularization: float = DEFAULT_REGULARIZATION,
) -> np.ndarray:
    """Where each target position samples the shot, minus the position: ``(B, n, n, 2)`` crop pixels (x, y).

    ``target_points`` ``(B, 68, 2)`` and ``shot_points`` ``(68, 2)`` or
    ``(B, 68, 2)``, crop pixels; the spline is :class:`~talking_head.nets.warp.ThinPlateSpline`
    as :func:`~talking_head.nets.warp.sampling_grid` fits it (the 8 border
    anchors fixed, coincident targets merged), sampled at
    :func:`field_positions` (rows = y). Numpy, float64 (no thread pool to
    wake for a few small products: steady next to a busy renderer).
    """
    target = np.asarray(target_points, np.float64).reshape(-1, 68, 2)
    batch = len(target)
    shots = np.broadcast_to(np.asarray(shot_points, np.float64).reshape(-1, 68, 2), target.shape)
    anchors = np.broadcast_to(border_anchors(image_size).numpy().astype(np.float64), (batch, 8, 2))
    target, shots = merge_coincident(target, shots)
    to_unit = lambda points: (2.0 * points + 1.0) / image_size - 1.0  # noqa: E731 - pixels_to_normalized
    control = to_unit(np.concatenate([target, anchors], 1))  # (B, P, 2)
    values = to_unit(np.concatenate([shots, anchors], 1))
    count = control.shape[1]
    system = np.zeros((batch, count + 3, count + 3))
    system[:, :count, :count] = _kernel(((control[:, :, None] - control[:, None]) ** 2).sum(-1))
    system[:, :count, :count] += np.eye(count) * regularization
    affine = np.concatenate([np.ones((batch, count, 1)), control], -1)  # (B, P, 3)
    system[:, :count, count:], system[:, count:, :count] = affine, affine.transpose(0, 2, 1)
    rhs = np.concatenate([values, np.zeros((batch, 3, 2))], 1)
    solution = np.linalg.solve(system, rhs)  # (B, P + 3, 2)
    axis = field_positions(image_size, samples).astype(np.float64)
    grid = np.stack(np.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)  # (n², 2): x, y
    unit = to_unit(grid)
    # Elementwise products only: for these skinny shapes a BLAS call costs more in thread hand-offs
    # than it computes when the cores are shared (10 ms against 1 on a busy 2-core machine).
    unit = unit.astype(np.float32)
    source = np.empty((batch, len(unit), 2), np.float32)
    for entry, points, coefficients in zip(source, control.astype(np.float32), solution.astype(np.float32)):
        sq = (unit[:, None, 0] - points[None, :, 0]) ** 2 + (unit[:, None, 1] - points[None, :, 1]) ** 2  # (n², P)
        terms = _kernel(sq)
        offset, linear = coefficients[count], coefficients[count + 1 :]  # (2,), (2, 2): x and y rows
        for k in range(2):
            affine = offset[k] + unit[:, 0] * linear[0, k] + unit[:, 1] * linear[1, k]
            entry[:, k] = (terms * coefficients[:count, k]).sum(1) + affine
    pixels = ((source + 1.0) * image_size - 1.0) / 2.0  # normalized_to_pixels
    return (pixels - grid).reshape(batch, len(axis), len(axis), 2).astype(np.float32)

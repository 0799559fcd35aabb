"""nets/warp_field.py: the warp's spline, sampled on a coarse grid in numpy, is sampling_grid's spline."""

from __future__ import annotations

import numpy as np
import torch

from talking_head.nets.warp import (
    ThinPlateSpline,
    border_anchors,
    merge_coincident,
    normalized_to_pixels,
    pixels_to_normalized,
    sampling_grid,
)
from talking_head.nets.warp_field import displacement_fields, field_positions
from tests._synthetic import template_landmarks

SIZE = 256


def _targets() -> np.ndarray:
    shot = template_landmarks(SIZE)
    rng = np.random.default_rng(0)
    targets = np.stack([shot + rng.normal(0, 3, shot.shape) + (5, -3), template_landmarks(SIZE, mouth_open=0.0)])
    targets[1, 66] = targets[1, 62]  # a closed mouth: two coincident inner-lip points
    return targets.astype(np.float32)


def test_the_field_is_the_thin_plate_spline_of_sampling_grid():
    shot, targets = template_landmarks(SIZE), _targets()
    fields = displacement_fields(targets, shot, SIZE)
    axis = torch.from_numpy(field_positions(SIZE))
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(1, -1, 2)
    for field, target in zip(fields, targets):
        t, s = merge_coincident(torch.from_numpy(target)[None], torch.from_numpy(shot)[None])
        anchors = border_anchors(SIZE)[None]
        tps = ThinPlateSpline(
            pixels_to_normalized(torch.cat([t, anchors], 1), SIZE), pixels_to_normalized(torch.cat([s, anchors], 1), SIZE)
        )
        expected = normalized_to_pixels(tps(pixels_to_normalized(grid, SIZE)), SIZE) - grid
        assert np.abs(field.reshape(-1, 2) - expected[0].numpy()).max() < 0.02  # crop pixels


def test_the_field_agrees_with_the_warp_grid_and_is_the_identity_on_the_border():
    shot, targets = template_landmarks(SIZE), _targets()
    field = displacement_fields(targets[:1], shot, SIZE)[0]
    exact = sampling_grid(torch.from_numpy(targets[:1]), torch.from_numpy(shot[None]), SIZE, grid_size=SIZE)[0]
    source = (exact.numpy() + 1.0) * SIZE / 2 - 0.5
    positions = field_positions(SIZE)
    index = np.round(positions).astype(int)
    identity = np.stack(np.meshgrid(index, index, indexing="xy"), -1)
    # The grid's samples sit within half a pixel of the nearest pixel centre: with the jittered landmarks the field changes < 1 px over that.
    assert np.abs(field - (source[index][:, index] - identity)).max() < 1.0
    assert np.abs(field[[0, 0, -1, -1], [0, -1, 0, -1]]).max() < 0.05  # the corners are anchors

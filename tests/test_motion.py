"""Motion: smoothing, similarity fit, neutral reference, relative/absolute retargeting."""

from __future__ import annotations

import numpy as np
import pytest

from talking_head.face.motion import (
    FLIP_PERMUTATION,
    apply_affine,
    estimate_yaw,
    fit_similarity,
    flip_landmarks,
    interocular_distance,
    neutral_frame_index,
    retarget_landmarks,
    smooth_landmarks,
)


def synthetic_face(
    center=(128.0, 128.0), width=1.0, mouth_open=0.0, eye_open=1.0, yaw_shift=0.0
) -> np.ndarray:
    """A plausible 68-point face (crop pixels): jaw arc, brows, nose, eyes, lips.

    ``width`` stretches x, ``mouth_open`` opens the inner lips (px),
    ``eye_open`` scales the eyelids, ``yaw_shift`` moves the nose sideways (px).
    """
    cx, cy = center
    pts = np.zeros((68, 2), np.float64)
    angles = np.linspace(np.pi, 0.0, 17)
    pts[0:17] = np.stack([60 * np.cos(angles), 10 + 60 * np.sin(angles)], 1)
    pts[17:22] = np.stack([np.linspace(-50, -10, 5), np.full(5, -40.0)], 1)
    pts[22:27] = np.stack([np.linspace(10, 50, 5), np.full(5, -40.0)], 1)
    pts[27:31] = np.stack([np.full(4, yaw_shift), np.linspace(-25, 5, 4)], 1)
    pts[31:36] = np.stack([np.linspace(-12, 12, 5) + yaw_shift, np.full(5, 12.0)], 1)
    for start, x0 in ((36, -42.0), (42, 12.0)):
        eye = np.array([[0, 0], [10, -6], [20, -6], [30, 0], [20, 6], [10, 6]], np.float64)
        eye[:, 1] *= eye_open
        pts[start : start + 6] = eye + [x0, -22.0]
    outer = np.array(
        [
            [-25, 35],
            [-15, 30],
            [-5, 28],
            [0, 29],
            [5, 28],
            [15, 30],
            [25, 35],
            [15, 42],
            [5, 45],
            [0, 45],
            [-5, 45],
            [-15, 42],
        ],
        np.float64,
    )
    pts[48:60] = outer
    inner = np.array(
        [[-18, 35], [-6, 33], [0, 33], [6, 33], [18, 35], [6, 37], [0, 37], [-6, 37]], np.float64
    )
    inner[5:8, 1] += mouth_open
    pts[60:68] = inner
    pts[:, 0] *= width
    return (pts + [cx, cy]).astype(np.float32)


def test_flip_is_an_involution_and_swaps_sides() -> None:
    face = synthetic_face()
    flipped = flip_landmarks(face, 256)
    np.testing.assert_allclose(flip_landmarks(flipped, 256), face, atol=1e-4)
    assert sorted(FLIP_PERMUTATION.tolist()) == list(range(68))
    # Point 36 (outer corner of the image-left eye) must stay on the image left.
    assert flipped[36, 0] < flipped[45, 0]
    # A symmetric face centred on the image (pixel centres: x = (W - 1) / 2) maps onto itself.
    centred = synthetic_face(center=(127.5, 128.0))
    np.testing.assert_allclose(flip_landmarks(centred, 256), centred, atol=1e-3)


def test_smoothing_zero_is_identity_and_keeps_linear_motion() -> None:
    rng = np.random.default_rng(0)
    track = rng.normal(size=(30, 68, 2)).astype(np.float32)
    np.testing.assert_array_equal(smooth_landmarks(track, 0), track)
    linear = np.arange(40, dtype=np.float32)[:, None, None] * np.ones((1, 68, 2), np.float32)
    np.testing.assert_allclose(smooth_landmarks(linear, 2.0), linear, atol=1e-4)


def test_smoothing_reduces_jitter_more_when_stronger() -> None:
    rng = np.random.default_rng(1)
    base = np.repeat(synthetic_face()[None], 100, 0)
    noisy = base + rng.normal(scale=2.0, size=base.shape).astype(np.float32)
    err = [np.abs(smooth_landmarks(noisy, s) - base).mean() for s in (0.0, 1.0, 3.0)]
    assert err[0] > err[1] > err[2]
    assert err[2] < 0.5 * err[0]


def test_smoothing_short_tracks() -> None:
    one = synthetic_face()[None]
    np.testing.assert_array_equal(smooth_landmarks(one, 5.0), one)
    two = np.stack([synthetic_face(), synthetic_face(center=(130, 128))])
    assert smooth_landmarks(two, 5.0).shape == (2, 68, 2)
    with pytest.raises(ValueError):
        smooth_landmarks(two, -1.0)


def test_fit_similarity_recovers_transform() -> None:
    src = synthetic_face()
    angle = np.deg2rad(17.0)
    rot = 1.3 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    dst = src @ rot.T + np.array([5.0, -7.0], np.float32)
    matrix = fit_similarity(src, dst)
    np.testing.assert_allclose(apply_affine(src, matrix), dst, atol=1e-2)


def test_yaw_sign_and_frontal() -> None:
    assert abs(float(estimate_yaw(synthetic_face()))) < 1.0
    assert float(estimate_yaw(synthetic_face(yaw_shift=20))) > 15.0
    assert float(estimate_yaw(synthetic_face(yaw_shift=-20))) < -15.0


def test_neutral_frame_avoids_open_mouth_and_blink() -> None:
    frames = [
        synthetic_face(mouth_open=8),
        synthetic_face(mouth_open=6),
        synthetic_face(eye_open=0.1),
        synthetic_face(),
        synthetic_face(mouth_open=4),
    ]
    assert neutral_frame_index(np.stack(frames)) == 3


def test_relative_keeps_source_shape_with_wider_driver() -> None:
    source = synthetic_face()
    # Driver's face is 30% wider; it opens its mouth and nods across the clip.
    driver = np.stack(
        [
            synthetic_face(
                center=(128, 128 + 3 * np.sin(t / 4)), width=1.3, mouth_open=8 * abs(np.sin(t / 5))
            )
            for t in range(40)
        ]
    )
    relative = retarget_landmarks(source, driver, mode="relative")
    iod_ratio = interocular_distance(relative) / interocular_distance(source)
    assert np.all(np.abs(iod_ratio - 1.0) < 0.05)
    absolute = retarget_landmarks(source, driver, mode="absolute")
    assert np.all(interocular_distance(absolute) / interocular_distance(source) > 1.25)
    # The motion still transfers: the mouth opens in the retargeted track.
    gap = relative[:, 66, 1] - relative[:, 62, 1]
    assert gap.max() - gap.min() > 5.0


def test_relative_static_driver_returns_source_and_moves_with_scale() -> None:
    source = synthetic_face()
    driver = np.repeat(synthetic_face(center=(100, 90), width=0.5)[None], 3, 0)
    np.testing.assert_allclose(
        retarget_landmarks(source, driver, reference="first"), np.repeat(source[None], 3, 0), atol=1e-3
    )
    # A driver at half the source's size moving 10 px moves the source ~20 px.
    small = synthetic_face(center=(100, 90))
    small = (small - small.mean(0)) * 0.5 + small.mean(0)
    moved = np.stack([small, small + [10.0, 0.0]])
    out = retarget_landmarks(source, moved, reference=0)
    shift = (out[1] - out[0]).mean(0)
    np.testing.assert_allclose(shift, [20.0, 0.0], atol=0.5)


def test_bad_mode_and_reference() -> None:
    face = synthetic_face()[None]
    with pytest.raises(ValueError):
        retarget_landmarks(face[0], face, mode="sideways")
    with pytest.raises(ValueError):
        retarget_landmarks(face[0], face, reference=5)

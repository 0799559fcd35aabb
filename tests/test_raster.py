"""Landmark rasterization: golden image, part colours, determinism, line width, input checks.

The golden image ``tests/data/landmarks_golden_256.png`` is
``rasterize_landmarks(synthetic_face(256), 256)``. If the drawing is changed on
purpose (or a new OpenCV draws anti-aliased lines differently), look at the
new image and regenerate it with ``python tests/test_raster.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from talking_head.face.raster import (
    LANDMARK_PARTS,
    line_width_for,
    rasterize_landmarks,
    rasterize_landmarks_batch,
)

GOLDEN = Path(__file__).resolve().parent / "data" / "landmarks_golden_256.png"


def synthetic_face(size: float = 256.0) -> np.ndarray:
    """A fixed, face-shaped (68, 2) iBUG landmark set filling a ``size``-pixel square."""
    points = np.zeros((68, 2))
    jaw = np.linspace(np.pi, 0, 17)  # left temple → chin → right temple
    points[0:17] = np.c_[0.5 + 0.27 * np.cos(jaw), 0.43 + 0.41 * np.sin(jaw)]
    arc = np.linspace(0, np.pi, 5)
    points[17:22] = np.c_[np.linspace(0.28, 0.45, 5), 0.37 - 0.03 * np.sin(arc)]
    points[22:27] = np.c_[np.linspace(0.55, 0.72, 5), 0.37 - 0.03 * np.sin(arc)]
    points[27:31] = np.c_[np.full(4, 0.5), np.linspace(0.41, 0.57, 4)]
    points[31:36] = np.c_[np.linspace(0.44, 0.56, 5), 0.6 + 0.015 * np.sin(arc)]
    eye = np.pi - np.arange(6) * np.pi / 3  # outer corner, upper lid, inner corner, lower lid
    points[36:42] = np.c_[0.375 + 0.055 * np.cos(eye), 0.45 - 0.025 * np.sin(eye)]
    points[42:48] = np.c_[0.625 + 0.055 * np.cos(eye), 0.45 - 0.025 * np.sin(eye)]
    outer = np.pi - np.arange(12) * 2 * np.pi / 12
    points[48:60] = np.c_[0.5 + 0.12 * np.cos(outer), 0.71 - 0.045 * np.sin(outer)]
    inner = np.pi - np.arange(8) * 2 * np.pi / 8
    points[60:68] = np.c_[0.5 + 0.08 * np.cos(inner), 0.71 - 0.018 * np.sin(inner)]
    return (points * size).astype(np.float32)


def test_matches_golden_image() -> None:
    golden = np.asarray(Image.open(GOLDEN).convert("RGB"))
    image = rasterize_landmarks(synthetic_face(256), 256)
    assert image.shape == golden.shape == (256, 256, 3)
    assert image.dtype == np.uint8
    assert np.array_equal(image, golden), f"{np.count_nonzero((image != golden).any(-1))} pixels differ"


def test_parts_cover_all_68_points_with_distinct_colours() -> None:
    indices = [index for part in LANDMARK_PARTS for index in part.indices]
    assert sorted(indices) == list(range(68))
    assert len({part.color for part in LANDMARK_PARTS}) == len(LANDMARK_PARTS) == 9
    closed = {part.name for part in LANDMARK_PARTS if part.closed}
    assert closed == {"right_eye", "left_eye", "outer_lips", "inner_lips"}


def test_background_black_and_every_part_colour_present() -> None:
    image = rasterize_landmarks(synthetic_face(256), 256)
    lit = image.any(axis=-1)
    assert not lit[:20].any() and not lit[:, :40].any()  # margins of the synthetic face stay black
    assert 0.02 < lit.mean() < 0.15
    for part in LANDMARK_PARTS:
        exact = (image == np.array(part.color, dtype=np.uint8)).all(axis=-1)
        assert exact.sum() >= 20, f"{part.name}: colour {part.color} missing"
        # The colour sits where that part's points are.
        ys, xs = np.nonzero(exact)
        points = synthetic_face(256)[list(part.indices)]
        assert points[:, 0].min() - 3 <= xs.mean() <= points[:, 0].max() + 3
        assert points[:, 1].min() - 3 <= ys.mean() <= points[:, 1].max() + 3


def test_deterministic_and_pure() -> None:
    points = synthetic_face(256)
    before = points.copy()
    first = rasterize_landmarks(points, 256)
    second = rasterize_landmarks(points, 256)
    assert np.array_equal(first, second)
    assert np.array_equal(points, before)


def test_line_width_grows_with_resolution() -> None:
    assert [line_width_for(s, s) for s in (64, 128, 256, 512, 1024)] == [1, 1, 2, 4, 8]
    lit = {size: rasterize_landmarks(synthetic_face(size), size).any(-1).sum() for size in (128, 256, 512)}
    # Per doubling, lines get twice as long and (default width) twice as thick: well over the
    # 2x a fixed width gives (anti-aliasing adds a fringe of constant width, so less than 4x).
    assert lit[256] / lit[128] > 2.5
    assert lit[512] / lit[256] > 2.5
    fixed_width = rasterize_landmarks(synthetic_face(512), 512, line_width=2).any(-1).sum()
    assert lit[512] > 1.3 * fixed_width
    thin = rasterize_landmarks(synthetic_face(256), 256, line_width=1).any(-1).sum()
    thick = rasterize_landmarks(synthetic_face(256), 256, line_width=5).any(-1).sum()
    assert thick > 2.5 * thin


def test_rectangular_canvas_and_points_off_canvas() -> None:
    points = synthetic_face(256)
    image = rasterize_landmarks(points, (200, 300))
    assert image.shape == (200, 300, 3)
    assert not image[:, 260:].any()
    far = points + 1e7  # clamped, not overflowed: nothing is drawn
    assert not rasterize_landmarks(far, 64).any()


def test_rejects_bad_points() -> None:
    with pytest.raises(ValueError, match="68, 2"):
        rasterize_landmarks(np.zeros((5, 2)), 64)
    bad = synthetic_face(64)
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rasterize_landmarks(bad, 64)
    with pytest.raises(ValueError, match="positive"):
        rasterize_landmarks(synthetic_face(64), 0)


def test_batch_equals_single_images() -> None:
    track = np.stack([synthetic_face(128) + shift for shift in (0.0, 3.5, -7.25)])
    batch = rasterize_landmarks_batch(track, 128)
    assert batch.shape == (3, 128, 128, 3) and batch.dtype == np.uint8
    for image, points in zip(batch, track, strict=True):
        assert np.array_equal(image, rasterize_landmarks(points, 128))
    assert not np.array_equal(batch[0], batch[1])
    with pytest.raises(ValueError):
        rasterize_landmarks_batch(synthetic_face(128), 128)


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    Image.fromarray(rasterize_landmarks(synthetic_face(256), 256)).save(GOLDEN)
    print(f"wrote {GOLDEN}")

"""Framing: landmark box, temporal smoothing, crop ↔ paste-back and point maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_raster import synthetic_face

from talking_head.face.framing import (
    FRAME_SCALE,
    CropBox,
    crop_box_from_landmarks,
    crop_image,
    paste_back,
    points_from_crop,
    points_to_crop,
    smooth_crop_boxes,
)


def smooth_image(height: int = 240, width: int = 320) -> np.ndarray:
    """Low-frequency colour waves: resampling changes them very little."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [128 + 100 * np.sin(x / 37), 128 + 100 * np.cos(y / 29), 128 + 60 * np.sin((x + y) / 45)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def inner_slice(box: CropBox, image_shape: tuple[int, ...], inset: int = 3) -> tuple[slice, slice]:
    """Rows/columns well inside both the box and the image."""
    y0, x0 = max(0, int(np.ceil(box.y0))) + inset, max(0, int(np.ceil(box.x0))) + inset
    y1 = min(image_shape[0], int(box.y0 + box.size)) - inset
    x1 = min(image_shape[1], int(box.x0 + box.size)) - inset
    return slice(y0, y1), slice(x0, x1)


# ----------------------------------------------------------------------------
# The box.


def test_crop_box_keeps_forehead_and_chin() -> None:
    points = synthetic_face(200) + (40, 30)
    box = crop_box_from_landmarks(points)
    brow_top, chin = points[17:27, 1].min(), points[8, 1]
    face_height = chin - brow_top
    face_width = np.ptp(points[:, 0])
    assert box.size == pytest.approx(FRAME_SCALE * max(face_width, face_height), rel=1e-5)
    assert brow_top - box.y0 > 0.5 * face_height  # room for the forehead above the brows
    assert box.y0 + box.size - chin > 0.2 * face_height  # and for the chin and some neck
    assert box.x0 < points[:, 0].min() and box.x0 + box.size > points[:, 0].max()
    center_x = (points[:, 0].min() + points[:, 0].max()) / 2
    assert box.center[0] == pytest.approx(center_x, abs=1e-3)


def test_crop_box_follows_translation_and_scale() -> None:
    points = synthetic_face(100)
    box = crop_box_from_landmarks(points)
    moved = crop_box_from_landmarks(points + (12.5, -7.0))
    assert (moved.x0, moved.y0, moved.size) == pytest.approx(
        (box.x0 + 12.5, box.y0 - 7.0, box.size), abs=1e-4
    )
    doubled = crop_box_from_landmarks(points * 2)
    assert doubled.as_array() == pytest.approx(box.as_array() * 2, abs=1e-3)


def test_crop_box_array_round_trip_and_checks() -> None:
    box = CropBox(1.5, -2.0, 64.0)
    assert CropBox.from_array(box.as_array()) == box
    assert box.as_xyxy().tolist() == [1.5, -2.0, 65.5, 62.0]
    with pytest.raises(ValueError):
        crop_box_from_landmarks(np.zeros((68, 2)))
    with pytest.raises(ValueError):
        crop_box_from_landmarks(np.zeros((5, 2)))


# ----------------------------------------------------------------------------
# Smoothing.


def test_smoothing_reduces_jitter_and_keeps_motion() -> None:
    rng = np.random.default_rng(0)
    frames = np.arange(200)
    true_boxes = np.stack([100 + 0.5 * frames, 80 + 20 * np.sin(frames / 30), 150 + 0.2 * frames], axis=1)
    noisy = true_boxes + rng.normal(0, [3.0, 3.0, 4.0], size=true_boxes.shape)
    smoothed = np.stack([box.as_array() for box in smooth_crop_boxes(noisy, strength=3.0)])

    def jitter(boxes: np.ndarray) -> float:
        return float(np.abs(np.diff(boxes, n=2, axis=0)).mean())

    assert len(smoothed) == 200
    assert jitter(smoothed) < 0.2 * jitter(noisy)
    # Closer to the true path than the noisy input, away from the ends.
    assert np.abs(smoothed - true_boxes)[10:-10].mean() < 0.5 * np.abs(noisy - true_boxes)[10:-10].mean()


def test_smoothing_strength_zero_and_constant_boxes() -> None:
    boxes = [CropBox(1.0, 2.0, 30.0), CropBox(5.0, -1.0, 40.0), CropBox(3.0, 0.0, 35.0)]
    assert smooth_crop_boxes(boxes, 0) == boxes
    constant = smooth_crop_boxes([CropBox(10.0, 20.0, 50.0)] * 7, strength=2.0)
    for box in constant:
        assert box.as_array() == pytest.approx([10.0, 20.0, 50.0], abs=1e-4)
    assert smooth_crop_boxes([], 2.0) == []
    with pytest.raises(ValueError):
        smooth_crop_boxes(boxes, -1)


# ----------------------------------------------------------------------------
# Crop and paste back.


def test_crop_at_integer_box_and_scale_one_is_exact_and_pastes_back_exactly() -> None:
    image = smooth_image()
    box = CropBox(50.0, 40.0, 128.0)
    crop = crop_image(image, box, 128)
    assert np.array_equal(crop, image[40:168, 50:178])
    assert np.array_equal(paste_back(image, crop, box), image)


@pytest.mark.parametrize(
    ("box", "out_size"),
    [
        (CropBox(50.3, 40.7, 150.5), 75),
        (CropBox(50.3, 40.7, 150.5), 300),
        (CropBox(-30.2, -20.6, 200.0), 100),
    ],
)
def test_crop_then_paste_back_reproduces_the_image(box: CropBox, out_size: int) -> None:
    image = smooth_image()
    crop = crop_image(image, box, out_size)
    assert crop.shape == (out_size, out_size, 3) and crop.dtype == np.uint8
    restored = paste_back(image, crop, box, feather=0.0)
    rows, cols = inner_slice(box, image.shape)
    difference = np.abs(restored[rows, cols].astype(int) - image[rows, cols].astype(int))
    assert difference.mean() < 0.5 and difference.max() <= 3


def test_paste_back_changes_only_the_box_and_feathers_its_edge() -> None:
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    box = CropBox(40.0, 50.0, 100.0)
    white = np.full((64, 64, 3), 255, dtype=np.uint8)
    result = paste_back(image, white, box, feather=0.2)
    assert result is not image and not image.any()  # input untouched
    outside = np.ones((200, 200), dtype=bool)
    outside[50:151, 40:141] = False
    assert not result[outside].any()
    assert (result[100, 90] == 255).all()  # centre fully replaced
    row = result[100, 40:91, 0].astype(int)  # box edge → centre: rises, no step
    assert row[0] < 20 and (np.diff(row) >= 0).all() and row[-1] == 255
    assert np.abs(np.diff(row)).max() < 30
    hard = paste_back(image, white, box, feather=0.0)
    assert (hard[52:148, 42:138] == 255).all()


def test_box_partly_outside_image_border_modes() -> None:
    image = smooth_image(100, 120)
    box = CropBox(-20.0, -10.0, 60.0)  # 20 columns and 10 rows lie off the image
    replicated = crop_image(image, box, 60)
    assert np.array_equal(replicated[:10, 20:], np.broadcast_to(image[0:1, 0:40], (10, 40, 3)))
    assert np.array_equal(replicated[10:, :20], np.broadcast_to(image[0:50, 0:1], (50, 20, 3)))
    black = crop_image(image, box, 60, border="black")
    assert not black[:10].any() and not black[:, :20].any()
    assert np.array_equal(black[10:, 20:], image[:50, :40])
    far = crop_image(image, CropBox(500.0, 500.0, 40.0), 20)  # no overlap at all
    assert np.array_equal(far, np.broadcast_to(image[-1, -1], (20, 20, 3)))
    with pytest.raises(ValueError):
        crop_image(image, box, 60, border="mirror")


def test_downscaled_crop_does_not_alias() -> None:
    # One-pixel stripes shrunk 4x: averaging gives flat grey; point sampling would give stripes.
    stripes = np.zeros((400, 400, 3), dtype=np.uint8)
    stripes[:, ::2] = 255
    crop = crop_image(stripes, CropBox(0.0, 0.0, 400.0), 100)
    assert np.abs(crop[10:-10, 10:-10].astype(int) - 127).max() < 25


# ----------------------------------------------------------------------------
# Points.


def test_points_to_and_from_crop_are_inverse() -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform(-50, 500, size=(5, 68, 2)).astype(np.float32)
    box = CropBox(123.4, -56.7, 321.0)
    there = points_to_crop(points, box, 256)
    assert there.shape == points.shape and there.dtype == np.float32
    assert np.allclose(points_from_crop(there, box, 256), points, atol=1e-3)
    corners = points_to_crop(np.array([[box.x0, box.y0], [box.x0 + box.size, box.y0 + box.size]]), box, 256)
    assert np.allclose(corners, [[0, 0], [256, 256]], atol=1e-4)


@pytest.mark.parametrize(
    ("box", "out_size"), [(CropBox(100.2, 80.9, 256.7), 128), (CropBox(180.6, 150.1, 90.3), 256)]
)
def test_points_stay_on_the_image_content(box: CropBox, out_size: int) -> None:
    # A blurred dot at a sub-pixel position: after cropping, its centre of mass
    # is where points_to_crop says.
    image = np.zeros((400, 500, 3), dtype=np.uint8)
    point = np.array([231.3, 187.6])
    center = tuple(int(round(value * 16)) for value in point)
    cv2.circle(image, center, 3 * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    crop = crop_image(image, box, out_size).astype(np.float64).sum(axis=-1)
    ys, xs = np.mgrid[0:out_size, 0:out_size]
    found = np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()
    expected = points_to_crop(point, box, out_size)
    assert np.abs(found - expected).max() < 0.1 * max(1.0, out_size / box.size)

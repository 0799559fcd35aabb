"""Metrics on hand-checkable inputs: SSIM/PSNR/L1, landmark error, identity similarity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from talking_head.evaluation import metrics


def _random_image(seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _face_landmarks() -> np.ndarray:
    """A rough 68-point face whose outer eye corners (36, 45) are 40 px apart."""
    rng = np.random.default_rng(1)
    points = rng.uniform(20, 100, (68, 2)).astype(np.float32)
    points[36] = (40, 50)
    points[45] = (80, 50)
    return points


def test_identical_images_are_perfect() -> None:
    image = _random_image()
    assert metrics.ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert metrics.psnr(image, image) == metrics.PSNR_CAP_DB
    assert metrics.l1_error(image, image) == 0.0


def test_constant_offset_has_known_psnr_l1_and_ssim() -> None:
    a = np.full((32, 32, 3), 100, np.uint8)
    b = np.full((32, 32, 3), 110, np.uint8)
    assert metrics.l1_error(a, b) == pytest.approx(10 / 255)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    # Flat images: zero variances, so SSIM reduces to the luminance term.
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert metrics.ssim(a, b) == pytest.approx(expected, rel=1e-9)


def test_ssim_orders_distortions_and_is_symmetric() -> None:
    image = np.asarray(Image.fromarray(_random_image(size=32)).resize((96, 96), Image.BILINEAR))
    rng = np.random.default_rng(2)
    slight = np.clip(image.astype(int) + rng.integers(-5, 6, image.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(image.astype(int) + rng.integers(-60, 61, image.shape), 0, 255).astype(np.uint8)
    s_slight, s_heavy = metrics.ssim(image, slight), metrics.ssim(image, heavy)
    assert 1.0 > s_slight > s_heavy > 0.0
    assert metrics.ssim(heavy, image) == pytest.approx(s_heavy, rel=1e-12)
    assert metrics.ssim(image, 255 - image) < 0.0  # inverted structure correlates negatively


def test_image_metric_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        metrics.ssim(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 17, 3), np.uint8))
    with pytest.raises(ValueError, match="at least"):
        metrics.ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))


def test_landmark_error_identical_and_shifted() -> None:
    points = _face_landmarks()
    assert metrics.inter_ocular_distance(points) == pytest.approx(40.0)
    assert metrics.landmark_error(points, points) == 0.0
    # Every point moved by (3, 4) px → 5 px off, divided by the 40 px eye distance.
    assert metrics.landmark_error(points + np.array([3.0, 4.0]), points) == pytest.approx(5 / 40)
    # Moving only one point by 68 px → mean 1 px → 1/40.
    one_off = points.copy()
    one_off[30, 0] += 68
    assert metrics.landmark_error(one_off, points) == pytest.approx(1 / 40)


def test_landmark_error_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        metrics.landmark_error(np.zeros((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="inter-ocular"):
        metrics.landmark_error(np.zeros((68, 2)), np.zeros((68, 2)))


def test_identity_similarity_and_helpers() -> None:
    a = np.array([1.0, 0.0, 0.0])
    assert metrics.identity_similarity(a, a) == pytest.approx(1.0)
    assert metrics.identity_similarity(a, np.array([0.0, 2.0, 0.0])) == pytest.approx(0.0)
    assert metrics.mean_or_none([1.0, None, 3.0]) == 2.0
    assert metrics.mean_or_none([None]) is None
    assert metrics.mean_descriptor([None, None]) is None
    np.testing.assert_allclose(metrics.mean_descriptor([a, None, -a]), np.zeros(3))


def test_face_identity_self_vs_pattern(astronaut_path) -> None:
    face_id = metrics.get_face_identity()
    face = np.asarray(Image.open(astronaut_path).convert("RGB"))
    d_face = face_id.descriptor(face)
    assert d_face is not None and d_face.shape == (128,)
    # Slightly changed copy of the same face (brightness, mild noise) stays ≈ 1.
    rng = np.random.default_rng(3)
    changed = np.clip(face.astype(int) + 8 + rng.integers(-3, 4, face.shape), 0, 255).astype(np.uint8)
    d_changed = face_id.descriptor(changed)
    assert d_changed is not None
    assert metrics.identity_similarity(d_face, d_face) == pytest.approx(1.0, abs=1e-6)
    same = metrics.identity_similarity(d_face, d_changed)
    assert same > 0.97
    # A synthetic checkerboard, described at a forced box, is further away.
    board = (np.indices((256, 256)).sum(axis=0) // 16 % 2 * 255).astype(np.uint8)
    board = np.stack([board, 255 - board, board // 2], axis=-1)
    d_board = face_id.descriptor(board, box=np.array([40, 40, 216, 216]))
    assert d_board is not None
    assert metrics.identity_similarity(d_face, d_board) < same - 0.05


def test_face_identity_reports_no_face() -> None:
    flat = np.full((128, 128, 3), 127, np.uint8)
    assert metrics.get_face_identity().descriptor(flat) is None


def test_mouth_box_holds_the_lips_and_stays_in_the_image() -> None:
    from _synthetic import template_landmarks

    points = template_landmarks(256)
    x0, y0, x1, y1 = metrics.mouth_box(points, 256)
    lips = points[48:68]
    assert x1 - x0 == y1 - y0  # a square
    assert (lips[:, 0] >= x0).all() and (lips[:, 0] < x1).all()
    assert (lips[:, 1] >= y0).all() and (lips[:, 1] < y1).all()
    width = lips[:, 0].max() - lips[:, 0].min()  # the lips' larger side here
    assert x1 - x0 == pytest.approx(1.5 * width, abs=1.0)  # 25% on each side
    # Lips at the bottom-right corner: the square is shifted inside, same size.
    corner = points + (255 - lips.max(axis=0))
    box = metrics.mouth_box(corner, 256)
    assert box[2] == 256 and box[3] == 256 and box[2] - box[0] == x1 - x0
    # Lips wider than the image: clipped to it.
    huge = points.copy()
    huge[48, 0], huge[54, 0] = -500, 700
    assert metrics.mouth_box(huge, 256) == (0, 0, 256, 256)


def test_mouth_metrics_look_only_at_the_mouth() -> None:
    from _synthetic import draw_face, template_landmarks

    points = template_landmarks(128)
    real = draw_face(points, 128, (200, 160, 140), (30, 40, 50))
    perfect = metrics.mouth_metrics(real, real, points)
    assert perfect["mouth_ssim"] == pytest.approx(1.0) and perfect["mouth_l1"] == 0.0
    # Changing pixels outside the mouth square leaves the mouth metrics alone.
    x0, y0, x1, y1 = metrics.mouth_box(points, 128)
    outside = real.copy()
    outside[:y0] = 0
    assert metrics.mouth_metrics(outside, real, points) == perfect
    # An open mouth where the real one is closed: worse inside the square.
    opened = draw_face(template_landmarks(128, mouth_open=1.0), 128, (200, 160, 140), (30, 40, 50))
    scores = metrics.mouth_metrics(opened, real, points)
    assert scores["mouth_ssim"] < 0.95 and scores["mouth_l1"] > 0.01


def test_sharpness_drops_with_blur() -> None:
    import cv2

    image = np.asarray(Image.fromarray(_random_image(size=32)).resize((128, 128), Image.BILINEAR))
    blurred = cv2.GaussianBlur(image, (0, 0), 2.0)
    assert 0.0 < metrics.sharpness(blurred) < 0.5 * metrics.sharpness(image)
    assert metrics.sharpness(np.full((64, 64, 3), 90, np.uint8)) == 0.0

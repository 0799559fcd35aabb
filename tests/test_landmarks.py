"""Landmark detection: dlib on real pixels, FAN's loading and call path, backend selection."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from _landmark_helpers import ASTRONAUT, astronaut, blank_frame, face_crop, paste
from PIL import Image

from talking_head.errors import NoFaceError, WeightsError
from talking_head.face import fan_detector, landmarks
from talking_head.face.detection import DLIB_MIN_RELATIVE_SCORE, FaceLandmarks, LandmarkDetector, select_faces
from talking_head.face.dlib_detector import DlibDetector, dlib_model_path
from talking_head.face.fan_detector import FanDetector
from talking_head.face.landmarks import detect_landmarks, get_detector
from talking_head.media.images import load_image

EXIF_ORIENTATION = 0x0112
# iBUG 68 indices.
LEFT_EYE, RIGHT_EYE, NOSE_TIP, MOUTH = slice(36, 42), slice(42, 48), 30, slice(48, 68)


@pytest.fixture(scope="module")
def dlib_detector() -> DlibDetector:
    return DlibDetector()


@pytest.fixture(scope="module")
def reference(dlib_detector: DlibDetector) -> FaceLandmarks:
    return dlib_detector.detect(astronaut())


@pytest.fixture()
def fresh_cache():
    landmarks.clear_detector_cache()
    yield
    landmarks.clear_detector_cache()


def _assert_face_layout(result: FaceLandmarks) -> None:
    points = result.points
    eyes_y = max(points[LEFT_EYE, 1].mean(), points[RIGHT_EYE, 1].mean())
    assert eyes_y < points[NOSE_TIP, 1] < points[MOUTH, 1].mean()
    assert points[LEFT_EYE, 0].mean() < points[NOSE_TIP, 0] < points[RIGHT_EYE, 0].mean()


def test_dlib_on_astronaut(reference: FaceLandmarks) -> None:
    assert isinstance(reference, FaceLandmarks)
    assert reference.points.shape == (68, 2) and reference.points.dtype == np.float32
    assert reference.box.shape == (4,) and reference.box.dtype == np.float32
    assert reference.backend == "dlib" and reference.num_faces == 1
    assert 0.5 < reference.confidence < 1.0
    # dlib boxes are tight (the chin falls just below): allow a quarter of the box size around it.
    x0, y0, x1, y1 = reference.box
    pad = 0.25 * (x1 - x0)
    assert (reference.points[:, 0] > x0 - pad).all() and (reference.points[:, 0] < x1 + pad).all()
    assert (reference.points[:, 1] > y0 - pad).all() and (reference.points[:, 1] < y1 + pad).all()
    # The astronaut's face is in the upper middle of the photo.
    assert 150 < reference.points[NOSE_TIP, 0] < 300 and 80 < reference.points[NOSE_TIP, 1] < 200
    _assert_face_layout(reference)


def test_detector_satisfies_protocol(dlib_detector: DlibDetector) -> None:
    assert isinstance(dlib_detector, LandmarkDetector)
    assert dlib_detector.name == "dlib"


def test_rgba_and_grayscale_inputs_agree(dlib_detector: DlibDetector, reference: FaceLandmarks) -> None:
    rgb = astronaut()
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(dlib_detector.detect(rgba).points, reference.points, atol=0.5)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    assert gray.ndim == 2
    np.testing.assert_allclose(dlib_detector.detect(gray).points, reference.points, atol=4.0)


def test_exif_rotated_photo_gives_the_same_points(
    dlib_detector: DlibDetector, reference: FaceLandmarks, tmp_path: Path
) -> None:
    stored = Image.fromarray(astronaut()).transpose(Image.Transpose.ROTATE_90)  # sideways on disk
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "rotate 90 CW to display"
    path = tmp_path / "sideways.png"
    stored.save(path, exif=exif)
    result = dlib_detector.detect(path)
    np.testing.assert_allclose(result.points, reference.points, atol=0.5)
    # Without EXIF handling the raw pixels are sideways; their landmarks map back by the rotation.
    raw = np.asarray(Image.open(path))
    raw_points = dlib_detector.detect(np.rot90(raw, k=-1)).points
    np.testing.assert_allclose(raw_points, reference.points, atol=0.5)


@pytest.mark.parametrize("kind", ["flat", "noise"])
def test_no_face_raises(dlib_detector: DlibDetector, kind: str) -> None:
    if kind == "flat":
        image = blank_frame(240, 320)
    else:
        image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match="No face"):
        dlib_detector.detect(image)


def test_two_faces_largest_wins(dlib_detector: DlibDetector, reference: FaceLandmarks) -> None:
    canvas = blank_frame(480, 640)
    patch = face_crop()
    paste(canvas, patch, x=10, y=100, scale=1.0)
    scale, dx, dy = paste(canvas, patch, x=240, y=20, scale=2.0)
    result = dlib_detector.detect(canvas)
    assert result.num_faces == 2
    # Reference points in crop coordinates, mapped into the large copy.
    crop_points = reference.points - np.array([130, 30], np.float32)
    expected = crop_points * scale + np.array([dx, dy], np.float32)
    assert np.abs(result.points - expected).mean() < 4.0


def test_box_hint_tracks_cheaply_and_reports_lost_faces(
    dlib_detector: DlibDetector, reference: FaceLandmarks
) -> None:
    image = astronaut()
    shifted_hint = reference.box + np.float32([12, -8, 12, -8])
    hinted = dlib_detector.detect(image, box_hint=shifted_hint)
    assert np.abs(hinted.points - reference.points).max() <= 3.0
    np.testing.assert_allclose(hinted.box, reference.box, atol=6.0)
    with pytest.raises(NoFaceError):  # hint over a faceless part of the photo (bottom right)
        dlib_detector.detect(image, box_hint=np.float32([400, 400, 490, 490]))
    with pytest.raises(NoFaceError):  # hint outside the image
        dlib_detector.detect(image, box_hint=np.float32([900, 900, 990, 990]))
    with pytest.raises(ValueError):
        dlib_detector.detect(image, box_hint=np.float32([10, 10, 5, 20]))


def test_hinted_box_is_stable_over_many_frames(dlib_detector: DlibDetector, reference: FaceLandmarks) -> None:
    image, box = astronaut(), reference.box
    sizes = []
    for _ in range(6):
        box = dlib_detector.detect(image, box_hint=box).box
        sizes.append(float(box[2] - box[0]))
    assert max(sizes) - min(sizes) < 0.05 * sizes[0]


def test_detect_landmarks_convenience_with_path(astronaut_path: Path, reference: FaceLandmarks) -> None:
    result = detect_landmarks(astronaut_path, backend="dlib")
    np.testing.assert_allclose(result.points, reference.points, atol=0.5)


def test_dlib_model_paths() -> None:
    assert dlib_model_path("dlib_face_recognition_resnet_model_v1.dat").is_file()
    assert dlib_model_path("shape_predictor_68_face_landmarks.dat").stat().st_size > 1_000_000
    with pytest.raises(WeightsError, match="face_recognition_models"):
        dlib_model_path("no_such_model.dat")


# --------------------------------------------------------------------------- backend selection


def _offline_without_fan(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached FAN weights
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_auto_falls_back_to_dlib_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_cache
) -> None:
    _offline_without_fan(monkeypatch, tmp_path)
    monkeypatch.delenv("TALKING_HEAD_LANDMARKS", raising=False)
    with caplog.at_level(logging.INFO, logger="talking_head.face.landmarks"):
        first = get_detector("auto", device="cpu")
        second = get_detector(device="cpu")
    assert first.name == "dlib" and second is first  # cached, not rebuilt
    lines = [r for r in caplog.records if r.name == "talking_head.face.landmarks"]
    assert len(lines) == 1
    assert "dlib" in lines[0].getMessage() and "FAN" in lines[0].getMessage()


def test_env_var_chooses_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_cache
) -> None:
    _offline_without_fan(monkeypatch, tmp_path)
    monkeypatch.setenv("TALKING_HEAD_LANDMARKS", "dlib")
    with caplog.at_level(logging.INFO, logger="talking_head.face.landmarks"):
        assert get_detector().name == "dlib"
    assert not caplog.records  # no FAN attempt, nothing to explain
    monkeypatch.setenv("TALKING_HEAD_LANDMARKS", "fan")
    with pytest.raises(WeightsError, match="dlib"):
        get_detector()
    assert get_detector("dlib").name == "dlib"  # an explicit argument wins over the env var
    monkeypatch.setenv("TALKING_HEAD_LANDMARKS", "mediapipe")
    with pytest.raises(ValueError, match="TALKING_HEAD_LANDMARKS"):
        get_detector()


def test_unknown_backend_argument(fresh_cache) -> None:
    with pytest.raises(ValueError, match="auto, fan, dlib"):
        get_detector("opencv")


# --------------------------------------------------------------------------- FAN with stand-in weights


class _TinyFan(torch.nn.Module):
    """Stands in for face-alignment's FAN (same output: a list of (B, 68, 64, 64) heatmaps), 1000x cheaper."""

    def __init__(self, num_modules: int = 4) -> None:
        super().__init__()
        self.to_heatmaps = torch.nn.Conv2d(3, 68, kernel_size=4, stride=4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.sigmoid(self.to_heatmaps(x))]  # (B, 68, 64, 64)


class _TinyS3fd(torch.nn.Module):
    """Stands in for the S3FD face detector; only its weights are loaded in the fast test."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, kernel_size=1)


def _write_fan_weights(torch_home: Path, fan: torch.nn.Module, s3fd: torch.nn.Module) -> None:
    """Weights under the file names face-alignment downloads, in the torch hub cache it reads."""
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(fan.state_dict(), folder / "2DFAN4-11f355bf06.pth.tar")
    torch.save(s3fd.state_dict(), folder / "s3fd-619a316812.pth")


def _check_fan_result(result: FaceLandmarks) -> None:
    assert result.backend == "fan"
    assert result.points.shape == (68, 2) and result.points.dtype == np.float32
    assert result.box.shape == (4,) and result.box.dtype == np.float32
    assert np.isfinite(result.points).all() and 0.0 <= result.confidence <= 1.0


def test_fan_loads_cached_weights_and_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import face_alignment.models
    from face_alignment.detection.sfd import sfd_detector

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # must never try to download: the files are cached
    monkeypatch.setattr(face_alignment.models, "FAN", _TinyFan)
    monkeypatch.setattr(sfd_detector, "s3fd", _TinyS3fd)
    torch.manual_seed(0)
    _write_fan_weights(tmp_path / "torch", _TinyFan(), _TinyS3fd())
    detector = FanDetector(device="cpu", min_hint_score=0.0)
    assert detector.name == "fan" and isinstance(detector, LandmarkDetector)
    hint = np.float32([179, 83, 267, 171])
    result = detector.detect(astronaut(), box_hint=hint)  # random weights: arbitrary but well-formed points
    _check_fan_result(result)
    assert result.num_faces == 1
    # FAN's points come from a 64x64 heatmap over a crop around the hint box.
    assert (result.points[:, 0] > 100).all() and (result.points[:, 0] < 350).all()
    strict = FanDetector(device="cpu", min_hint_score=1.01)  # nothing can pass: reported as lost
    with pytest.raises(NoFaceError):
        strict.detect(astronaut(), box_hint=hint)


@pytest.mark.slow
def test_fan_with_real_network_classes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """face-alignment's own FAN-4 and S3FD classes with random weights: full search and hinted path."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    _write_fan_weights(tmp_path / "torch", FAN(4), s3fd())
    detector = FanDetector(device="cpu", min_hint_score=0.0)
    _check_fan_result(detector.detect(astronaut(), box_hint=np.float32([179, 83, 267, 171])))
    try:  # random S3FD weights may or may not "find" faces; either outcome must be well-formed
        _check_fan_result(detector.detect(astronaut()))
    except NoFaceError:
        pass


def test_fan_without_weights_fails_fast_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline_without_fan(monkeypatch, tmp_path)
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE"):
        FanDetector(device="cpu")


def test_fan_with_damaged_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "2DFAN4-11f355bf06.pth.tar").write_bytes(b"not a checkpoint")
    (folder / "s3fd-619a316812.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not be loaded"):
        FanDetector(device="cpu")


def test_fan_download_failure_is_a_weights_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # An unroutable local address: fails at once, no internet involved.
    monkeypatch.setitem(fan_detector.FAN_WEIGHT_URLS, "fan", "http://127.0.0.1:9/2DFAN4-11f355bf06.pth.tar")
    monkeypatch.setitem(fan_detector.FAN_WEIGHT_URLS, "s3fd", "http://127.0.0.1:9/s3fd-619a316812.pth")
    with pytest.raises(WeightsError, match="Could not download"):
        FanDetector(device="cpu", download_timeout=2.0)
    assert not list((tmp_path / "torch" / "hub" / "checkpoints").glob("*.partial"))


def test_load_image_semantics_for_paths(astronaut_path: Path, dlib_detector: DlibDetector) -> None:
    # Paths and arrays give the same result: detect() uses load_image for non-arrays.
    np.testing.assert_array_equal(
        dlib_detector.detect(astronaut_path).points, dlib_detector.detect(load_image(astronaut_path)).points
    )


def test_fan_crop_and_heatmap_geometry_round_trip() -> None:
    """A point seen in FAN's crop/heatmap maps back to where it is in the image."""
    image = np.zeros((300, 400, 3), np.uint8)
    image[119:122, 219:222] = 255  # a bright 3x3 dot centred on pixel (220, 120)
    center, side = fan_detector._fan_crop_square(np.array([180.0, 80.0, 270.0, 170.0]))
    crop = fan_detector._crop_square(image, center, side, 256)  # (256, 256, 3)
    qy, qx = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    back = center + (np.array([qx, qy]) + 0.5 - 128) * side / 256 - 0.5
    np.testing.assert_allclose(back, [220, 120], atol=1.0)
    # A heatmap peak between cells (x 20.25 in continuous cell units) is found within a quarter cell.
    yy, xx = np.mgrid[0:64, 0:64]
    heatmap = np.exp(-((xx + 0.5 - 20.25) ** 2 + (yy + 0.5 - 40.5) ** 2) / 4.0)[None].astype(np.float32)
    cells, peaks = fan_detector._decode_heatmaps(heatmap)
    np.testing.assert_allclose(cells[0], [20.25, 40.5], atol=0.26)
    assert 0.9 < peaks[0] <= 1.0


def test_select_faces_drops_weak_and_small_detections() -> None:
    face = [100, 100, 200, 200]
    # The astronaut JPEG: the face (margin 1.16) and a weak false detection on the suit (0.12).
    suit = np.array([face + [1.16], [50, 330, 140, 420, 0.12]])
    assert len(select_faces(suit, min_relative_score=DLIB_MIN_RELATIVE_SCORE)) == 1
    # Two real faces score within a factor ~2 of each other and both count.
    two = np.array([face + [0.32], [300, 100, 380, 180, 0.21]])
    assert len(select_faces(two, min_relative_score=DLIB_MIN_RELATIVE_SCORE)) == 2
    # A far smaller face (a poster behind) is not counted; a lone weak face is kept.
    poster = np.array([face + [1.0], [400, 10, 420, 30, 0.9]])
    assert len(select_faces(poster)) == 1
    lone = np.array([face + [0.05]])
    assert len(select_faces(lone, min_score=0.8)) == 1


def test_the_astronaut_as_a_jpeg_has_one_face(dlib_detector: DlibDetector, tmp_path: Path) -> None:
    path = tmp_path / "astronaut.jpg"
    Image.open(ASTRONAUT).convert("RGB").save(path, quality=85)
    assert dlib_detector.detect(load_image(path)).num_faces == 1


def test_the_automatic_choice_is_one_short_info_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_fan(name: str, device: str | None):
        if name == "fan":
            raise WeightsError("Could not download the FAN weights from https://example.invalid (timed out). " * 3)
        return "dlib-detector"

    monkeypatch.setattr(landmarks, "_cached", no_fan)
    with caplog.at_level(logging.DEBUG, logger="talking_head.face.landmarks"):
        assert landmarks._choose_automatically("cpu") == "dlib"
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["landmarks: dlib (FAN weights not available)"]
    assert any("Could not download" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)

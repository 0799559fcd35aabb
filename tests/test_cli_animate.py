"""``python -m talking_head animate`` end to end: real (dlib) landmarks, tiny random weights."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from _tiny_weights import make_tiny_weights

from talking_head.__main__ import main
from talking_head.images import load_image
from talking_head.tracking import LandmarkTrack
from talking_head.video import VideoWriter, probe_video


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("tiny_weights"))


def moving_astronaut_clip(path: Path, photo: Path, num_frames: int = 8, fps: float = 10.0) -> Path:
    """The example photo, slightly rotated and shifted per frame, at 256×256."""
    image = cv2.resize(load_image(photo), (256, 256), interpolation=cv2.INTER_AREA)
    with VideoWriter(path, fps) as writer:
        for t in range(num_frames):
            matrix = cv2.getRotationMatrix2D((128, 128), 3 * np.sin(t / 2), 1.0)
            matrix[:, 2] += (3 * np.sin(t / 3), 2 * np.cos(t / 3))
            writer.write(cv2.warpAffine(image, matrix, (256, 256), borderMode=cv2.BORDER_REFLECT))
    return path


def test_animate_cli_end_to_end(
    weights: Path, astronaut_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    clip = moving_astronaut_clip(tmp_path / "driving.mp4", astronaut_path)
    out, overlay = tmp_path / "out.mp4", tmp_path / "overlay.mp4"
    code = main(
        [
            "animate",
            "--photos",
            str(astronaut_path),
            "--driving",
            str(clip),
            "--steps",
            "2",
            "--out",
            str(out),
            "--overlay",
            str(overlay),
            "--weights",
            str(weights),
            "--landmarks",
            "dlib",
            "--mode",
            "absolute",
            "--watermark",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "astronaut.png: ok" in printed and "fine-tuned 2 steps" in printed
    info = probe_video(out)
    assert info.num_frames == 8 and info.fps == pytest.approx(10.0) and not info.has_audio
    assert probe_video(overlay).size == (3 * 64, 64)


def _track_file(path: Path, frames: int = 4) -> Path:
    """A small driving landmark track (.npz): a face template sliding sideways."""
    template = np.array(
        [[60 + 140 * np.cos(a), 150 + 140 * np.sin(a)] for a in np.linspace(np.pi, 0, 68)], np.float32
    )
    points = np.stack([template + [t, 0] for t in range(frames)])
    boxes = np.tile([0, 0, 300, 300], (frames, 1))
    LandmarkTrack(points, boxes, np.ones(frames, bool), 25.0, "dlib", (300, 300)).save(path)
    return path


def test_animate_cli_reports_a_photo_without_face(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 120, 3), 128, np.uint8))
    track = _track_file(tmp_path / "track.npz")
    args = ["--driving", str(track), "--out", str(tmp_path / "out.mp4"), "--weights", str(weights)]
    code = main(["animate", "--photos", str(blank), *args, "--landmarks", "dlib"])
    assert code == 2
    assert "blank.png" in capsys.readouterr().err


def test_animate_cli_checks_paths_before_work(
    weights: Path, astronaut_path: Path, tmp_path: Path, capsys
) -> None:
    common = ["animate", "--photos", str(astronaut_path), "--weights", str(weights)]
    code = main([*common, "--driving", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "out.mp4")])
    assert code == 2 and "missing.mp4" in capsys.readouterr().err
    track = _track_file(tmp_path / "track.npz")
    code = main([*common, "--driving", str(track), "--out", str(tmp_path / "no_such_dir" / "out.mp4")])
    assert code == 2 and "no_such_dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--driving", str(track), "--out", str(tmp_path / "o.mp4"), "--steps", "-1"])

"""``python -m talking_head animate`` end to end: real (dlib) landmarks, tiny random weights."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from _tiny_weights import make_tiny_weights

from talking_head.__main__ import main
from talking_head.face.tracking import LandmarkTrack
from talking_head.media.images import load_image
from talking_head.media.video import probe_video
from talking_head.media.video_writer import VideoWriter


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


# ----- user errors: exit 2, one line, no traceback, before any work ---------------------------


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the model means the inputs were not checked first."""
    from talking_head.animation import pipeline

    monkeypatch.setattr(pipeline, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))


def _user_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"fps": np.float64(0.0)}, "frame rate 'fps' is 0"),
        ({"points": np.full((10, 68, 2), np.nan, np.float32)}, "NaN or infinite values"),
        ({"points": None}, "has no 'points' array"),
    ],
)
def test_a_bad_track_exits_2_with_its_reason(
    no_model, astronaut_path: Path, tmp_path: Path, capsys, overrides: dict, reason: str
) -> None:
    from _bad_inputs import write_track_npz

    track = write_track_npz(tmp_path / "bad.npz", **overrides)
    line = _user_error(
        ["animate", "--photos", str(astronaut_path), "--driving", str(track), "--out", str(tmp_path / "o.mp4")],
        capsys,
    )
    assert "bad.npz is not a landmark track" in line and reason in line


def test_a_photo_track_or_a_text_file_cannot_drive(no_model, astronaut_path: Path, tmp_path: Path, capsys) -> None:
    from _bad_inputs import write_track_npz

    common = ["animate", "--photos", str(astronaut_path), "--out", str(tmp_path / "o.mp4"), "--driving"]
    still = write_track_npz(tmp_path / "still.npz", frames=1, fps=np.float64(0.0))
    assert "has no frame rate" in _user_error([*common, str(still)], capsys)
    text = tmp_path / "notes.npz"
    text.write_text("not numbers")
    assert "it is not an .npz archive" in _user_error([*common, str(text)], capsys)


@pytest.mark.parametrize("name", ["x.gif", "x.avi", "x"])
def test_an_output_that_is_not_mp4_is_refused_before_work(
    no_model, astronaut_path: Path, tmp_path: Path, capsys, name: str
) -> None:
    track = _track_file(tmp_path / "track.npz")
    common = ["animate", "--photos", str(astronaut_path), "--driving", str(track)]
    bad, good = str(tmp_path / name), str(tmp_path / "o.mp4")
    for outputs in (["--out", bad], ["--out", good, "--overlay", bad]):
        line = _user_error([*common, *outputs], capsys)
        assert "must end in .mp4" in line and "disk space" not in line and "ffmpeg" not in line
    assert not list(tmp_path.glob("*.gif"))


@pytest.mark.parametrize(
    ("flag", "value", "reason"),
    [
        ("--max-seconds", "0", "above 0"),
        ("--max-seconds", "nan", "above 0"),
        ("--steps", "2.5", "expected a whole number"),
        ("--steps", "-1", "at least 0"),
        ("--smoothing", "inf", "finite"),
    ],
)
def test_numbers_are_validated_with_one_line(
    astronaut_path: Path, tmp_path: Path, capsys, flag: str, value: str, reason: str
) -> None:
    track = _track_file(tmp_path / "track.npz")
    argv = ["animate", "--photos", str(astronaut_path), "--driving", str(track), "--out", str(tmp_path / "o.mp4")]
    with pytest.raises(SystemExit) as info:
        main([*argv, flag, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and reason in err[0] and "(see --help)" in err[0]


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_animate_cli_renders_on_the_runtime_asked_for(
    weights: Path, astronaut_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    from talking_head.animation import pipeline

    if runtime == "onnx":
        pytest.importorskip("onnxruntime")
    monkeypatch.setenv("TALKING_HEAD_CACHE", str(tmp_path / "cache"))
    seen = []
    original = pipeline.render_video

    def recording(*args, **kwargs):
        seen.append(kwargs.get("runtime"))
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "render_video", recording)
    motion = Path(__file__).resolve().parent.parent / "examples" / "motions" / "calm-talking.npz"
    out = tmp_path / "out.mp4"
    code = main(
        ["animate", "--photos", str(astronaut_path), "--driving", str(motion), "--out", str(out),
         "--weights", str(weights), "--landmarks", "dlib", "--max-seconds", "0.2", "--runtime", runtime]
    )  # fmt: skip
    assert code == 0 and seen == [runtime] and probe_video(out).num_frames == 5

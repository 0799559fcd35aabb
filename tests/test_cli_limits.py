"""The animate CLI's brakes: the work and its estimate first, the app's limits unless --no-limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _landmark_helpers import face_crop
from _tiny_weights import make_tiny_weights

from talking_head.__main__ import main
from talking_head.animation.workload import MEASURED_RATES, estimate_seconds, format_duration, plan_track, same_kind
from talking_head.face.tracking import LandmarkTrack
from talking_head.media.video import probe_video
from talking_head.media.video_writer import VideoWriter

MOTION = Path(__file__).resolve().parent.parent / "examples" / "motions" / "calm-talking.npz"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("limits") / "weights")


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from talking_head.animation import pipeline

    monkeypatch.setattr(pipeline, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))


def _fast_track(path: Path, fps: float, seconds: float) -> Path:
    """The calm-talking motion's first frames replayed at ``fps`` (a broken or synthetic high-rate track)."""
    base = LandmarkTrack.load(MOTION)
    frames = round(fps * seconds)
    index = np.arange(frames) % len(base)
    LandmarkTrack(
        base.points[index], base.boxes[index], base.found[index], fps, base.backend, base.frame_size
    ).save(path)
    return path


def _animate(weights: Path, photo: Path, driving: Path, out: Path, *extra: str) -> int:
    argv = ["animate", "--photos", str(photo), "--driving", str(driving), "--out", str(out)]
    return main([*argv, "--weights", str(weights), "--landmarks", "dlib", *extra])


def test_ten_thousand_steps_are_refused_before_any_work_with_the_estimate(
    no_model, astronaut_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["animate", "--photos", str(astronaut_path), "--driving", str(MOTION), "--out", str(tmp_path / "o.mp4"),
                 "--steps", "10000"])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2
    assert "--steps 10000 is above the app's limit of 100 fine-tuning steps" in error
    assert "about 50 min" in error and "Zen 3" in error and "--no-limits" in error


def test_a_1000_fps_track_is_cut_and_resampled_and_the_work_printed_first(
    weights: Path, astronaut_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    monkeypatch.setenv("TALKING_HEAD_MAX_SECONDS", "2")  # the app's limits come from the same variables
    track = _fast_track(tmp_path / "fast.npz", fps=1000, seconds=30)  # 30,000 frames
    out = tmp_path / "out.mp4"
    assert _animate(weights, astronaut_path, track, out) == 0
    printed = capsys.readouterr().out
    assert "the driving track is 30.0 s long; the first 2 s are used" in printed
    assert "at 1000 fps; it is resampled to 30 fps" in printed
    work = printed.index("work: 1 photo, 0 fine-tuning steps, 60 frames to render (2.0 s at 30 fps)")
    assert work < printed.index("estimate: about") < printed.index("photos (1 of 1 usable)")
    info = probe_video(out)
    assert info.num_frames == 60 and info.fps == 30


def test_no_limits_keeps_every_frame(
    weights: Path, astronaut_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    track = _fast_track(tmp_path / "fast.npz", fps=250, seconds=0.2)
    out = tmp_path / "out.mp4"
    assert _animate(weights, astronaut_path, track, out, "--no-limits") == 0
    assert "resampled" not in capsys.readouterr().out
    info = probe_video(out)
    assert info.num_frames == 50 and info.fps == 250


def test_a_240_fps_clip_is_tracked_at_30_fps(
    weights: Path, astronaut_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    patch = np.ascontiguousarray(face_crop())
    clip = tmp_path / "fast.mp4"
    with VideoWriter(clip, 240) as writer:
        for index in range(120):  # half a second
            writer.write(np.roll(patch, index // 12, axis=1))
    out = tmp_path / "out.mp4"
    assert _animate(weights, astronaut_path, clip, out) == 0
    printed = capsys.readouterr().out
    assert "at 240 fps; it is resampled to 30 fps" in printed and "15 frames to track and render" in printed
    info = probe_video(out)
    assert info.num_frames == 15 and info.fps == 30


def test_the_estimate_adds_up_the_stages() -> None:
    plan = plan_track(LandmarkTrack.load(MOTION), max_seconds=None, max_fps=None)
    stages = estimate_seconds(40, plan)
    assert plan.frames == 125 and stages["landmarks"] == 0  # a track is not tracked again
    assert stages["fine-tuning"] > 40 * 0.2 and stages["rendering"] > 125 * 0.05
    assert [format_duration(s) for s in (0.2, 40, 200, 10_000)] == ["under 1 s", "40 s", "3 min 20 s", "2 h 47 min"]
    measured = MEASURED_RATES.cpu_family_model
    assert same_kind(MEASURED_RATES, measured, ("fp32",), "cpu")
    assert not same_kind(MEASURED_RATES, "family 26 model 2", ("fp32",), "cpu")  # a Zen 5: the estimate says so
    assert not same_kind(MEASURED_RATES, measured, ("bf16", "fp32"), "cpu")
    assert not same_kind(MEASURED_RATES, measured, ("fp32",), "cuda")

"""Webcam recordings: a WebM that states no duration is rewritten so that players show its length."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_tone

from talking_head.media.recording import is_streamed_webm, rewrite_recording, stated_duration
from talking_head.media.video import ffmpeg_exe, probe_video
from talking_head.media.video_writer import VideoWriter
from talking_head.web.limits import AppLimits
from talking_head.web.recording import fixed_recording


def _streamed_webm(tmp_path: Path, seconds: float = 2.0, fps: int = 20) -> Path:
    """A VP8/Opus WebM written to a pipe, as a browser's MediaRecorder streams it: no duration in its header."""
    clip = tmp_path / "source.mp4"
    with VideoWriter(clip, fps, audio_from=write_tone(tmp_path / "tone.wav", seconds)) as writer:
        for index in range(int(seconds * fps)):
            writer.write(np.full((120, 160, 3), (7 * index) % 255, np.uint8))
    webm = tmp_path / "sample.webm"
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(clip)]
    command += ["-c:v", "libvpx", "-b:v", "500k", "-c:a", "libopus", "-f", "webm", "pipe:1"]
    with open(webm, "wb") as out:
        subprocess.run(command, stdout=out, check=True, timeout=120)
    return webm


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _streamed_webm(tmp_path_factory.mktemp("recording"))


def test_a_streamed_webm_states_no_duration(recording: Path) -> None:
    assert stated_duration(recording) is None and is_streamed_webm(recording)


def test_the_rewrite_states_its_duration_and_keeps_the_timing(recording: Path, tmp_path: Path) -> None:
    out = rewrite_recording(recording, tmp_path / "fixed.mp4", max_fps=30)
    assert stated_duration(out) == pytest.approx(2.0, abs=0.1)
    info = probe_video(out)
    assert info.fps == 20 and info.num_frames == pytest.approx(40, abs=1) and info.has_audio
    assert not is_streamed_webm(out)


def test_the_app_rewrites_recordings_only(recording: Path, astronaut_path: Path) -> None:
    limits = AppLimits(max_fps=10)
    fixed = fixed_recording(recording, limits)
    assert fixed is not None and fixed.suffix == ".mp4" and probe_video(fixed).fps == 10
    motion_preview = Path(__file__).resolve().parent.parent / "examples" / "motions" / "calm-talking.mp4"
    for other in (motion_preview, astronaut_path, None):  # an MP4 with a duration, a photo, nothing
        assert fixed_recording(other, limits) is None

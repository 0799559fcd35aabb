"""Video I/O: write → read round trips (with and without audio), metadata, limits, errors."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from talking_head.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NoVideoStreamError,
    TalkingHeadError,
    TruncatedVideoError,
    VideoReadError,
    VideoWriteError,
)
from talking_head.media import video_writer
from talking_head.media.video import ffmpeg_exe, probe_video
from talking_head.media.video_reader import VideoReader, read_video_frames
from talking_head.media.video_writer import VideoWriter

# ----------------------------------------------------------------------------
# Helpers: synthetic media made with ffmpeg's lavfi sources, and stream inspection.


def run_ffmpeg(*args: str) -> str:
    """Run ffmpeg with ``args``; return its stderr (ffmpeg -i reports there)."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True, timeout=60
    )
    return result.stderr.decode("utf-8", errors="replace")


def make_clip(path: Path, seconds: float, fps: int = 10, size: str = "64x48", audio: bool = True) -> Path:
    """A test-pattern clip, optionally with a 440 Hz sine audio track."""
    args = ["-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}:duration={seconds}"]
    if audio:
        args += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=16000:duration={seconds}",
            "-c:a",
            "aac",
        ]
    run_ffmpeg(*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", str(path))
    assert path.exists()
    return path


def audio_stream_count(path: Path) -> int:
    """Audio streams listed by ``ffmpeg -i``."""
    return len(re.findall(r"Stream #0:\d+\S*: Audio:", run_ffmpeg("-i", str(path))))


def decode_audio(path: Path, rate: int = 8000) -> np.ndarray:
    """The first audio stream as mono float samples."""
    cmd = [
        ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-map",
        "0:a:0",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-f",
        "f32le",
        "-",
    ]
    raw = subprocess.run(cmd, capture_output=True, timeout=60, check=True).stdout
    return np.frombuffer(raw, dtype=np.float32)


def pattern_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth moving colour gradients: survive H.264 nearly unchanged, differ frame to frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(count):
        red = 128 + 100 * np.sin(x / width * 2 * np.pi + t * 0.5)
        green = 128 + 100 * np.cos(y / height * 2 * np.pi - t * 0.3)
        blue = np.full_like(x, 40.0 + 15 * t)
        frames.append(np.stack([red, green, blue], axis=-1))
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_frames(path: Path, frames: np.ndarray, fps: float = 10, **kwargs) -> Path:
    with VideoWriter(path, fps, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def ffmpeg_children() -> list[int]:
    """PIDs of live ffmpeg processes whose parent is this test process (Linux /proc)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # Fields after the ')' that ends the command name: state, ppid, ...
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == me and state != "Z" and b"ffmpeg" in cmdline:
            found.append(int(entry.name))
    return found


# ----------------------------------------------------------------------------
# Round trips.


def test_write_read_round_trip_keeps_count_fps_and_content(tmp_path: Path) -> None:
    frames = pattern_frames(12)
    path = write_frames(tmp_path / "out.mp4", frames, fps=12.5)

    info = probe_video(path)
    assert info.num_frames == 12
    assert info.fps == pytest.approx(12.5)
    assert info.size == (64, 48)
    assert info.duration == pytest.approx(12 / 12.5)
    assert not info.has_audio

    read, fps = read_video_frames(path)
    assert fps == pytest.approx(12.5)
    assert read.shape == frames.shape and read.dtype == np.uint8
    assert np.abs(read.astype(int) - frames.astype(int)).mean() < 4.0
    # Frames stay in order: each read frame is closest to its own original.
    errors = np.abs(read[:, None].astype(int) - frames[None].astype(int)).mean(axis=(2, 3, 4))
    assert (errors.argmin(axis=1) == np.arange(12)).all()


def test_output_has_audio_when_source_has_audio(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "source.mp4", seconds=3.0, audio=True)
    path = write_frames(tmp_path / "out.mp4", pattern_frames(10), fps=10, audio_from=source)

    assert audio_stream_count(source) == 1
    assert audio_stream_count(path) == 1
    assert probe_video(path).has_audio
    # The 3 s source audio is cut to the 1 s video.
    samples = decode_audio(path)
    assert abs(len(samples) / 8000 - 1.0) < 0.05
    assert np.sqrt(np.mean(samples**2)) > 0.05  # the sine is there, not silence


def test_output_is_silent_when_source_has_no_audio(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "silent.mp4", seconds=1.0, audio=False)
    path = write_frames(tmp_path / "out.mp4", pattern_frames(5), fps=10, audio_from=source)

    assert audio_stream_count(source) == 0
    assert audio_stream_count(path) == 0
    assert not probe_video(path).has_audio
    assert read_video_frames(path)[0].shape[0] == 5


def test_audio_max_seconds_cuts_audio_and_pads_with_silence(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "source.mp4", seconds=3.0, audio=True)
    path = write_frames(
        tmp_path / "out.mp4", pattern_frames(20), fps=10, audio_from=source, audio_max_seconds=1.0
    )

    samples = decode_audio(path)
    assert abs(len(samples) / 8000 - 2.0) < 0.05  # audio spans the whole 2 s video...
    first, last = samples[:6000], samples[10000:]
    assert np.sqrt(np.mean(first**2)) > 0.05
    assert np.abs(last).max() < 1e-3  # ...but only its first second is sound


def test_metadata_is_written(tmp_path: Path) -> None:
    comment = "synthetic: generated by talking-head"
    path = write_frames(
        tmp_path / "out.mp4", pattern_frames(3), metadata={"comment": comment, "title": "test"}
    )
    header = run_ffmpeg("-i", str(path))
    assert re.search(r"comment\s*: synthetic: generated by talking-head", header)
    assert re.search(r"title\s*: test", header)


def test_odd_frame_size_is_padded_to_even(tmp_path: Path) -> None:
    frames = pattern_frames(4, height=33, width=45)
    path = write_frames(tmp_path / "odd.mp4", frames)
    read, _ = read_video_frames(path)
    assert read.shape == (4, 34, 46, 3)
    # The padding repeats the last row/column; the original pixels are kept.
    assert np.abs(read[:, :33, :45].astype(int) - frames.astype(int)).mean() < 5.0


def test_writer_checks_frames_and_folder(tmp_path: Path) -> None:
    with pytest.raises(VideoWriteError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", fps=25)
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "out.mp4", fps=0)
    writer = VideoWriter(tmp_path / "out.mp4", fps=25)
    with pytest.raises(ValueError, match="uint8"):
        writer.write(np.zeros((16, 16, 3), dtype=np.float32))
    writer.write(np.zeros((16, 16, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="differs"):
        writer.write(np.zeros((16, 18, 3), dtype=np.uint8))
    writer.close()
    assert probe_video(tmp_path / "out.mp4").num_frames == 1


def test_writer_without_frames_raises_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(VideoWriteError, match="No frames"):
        with VideoWriter(tmp_path / "empty.mp4", fps=25):
            pass
    assert list(tmp_path.iterdir()) == []


def test_failed_block_leaves_no_partial_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "out.mp4", fps=25) as writer:
            writer.write(pattern_frames(1)[0])
            raise RuntimeError("caller failed")
    assert list(tmp_path.iterdir()) == []
    assert ffmpeg_children() == []


def test_an_output_name_that_is_not_mp4_is_refused_before_ffmpeg_starts(tmp_path: Path) -> None:
    for name in ("out.gif", "out.unknownext", "out"):
        with pytest.raises(VideoWriteError, match="must end in .mp4") as info:
            VideoWriter(tmp_path / name, fps=25)
        assert "ffmpeg" not in str(info.value) and "disk space" not in str(info.value)
    assert list(tmp_path.iterdir()) == [] and ffmpeg_children() == []


def test_failing_ffmpeg_raises_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An encoder setting x264 refuses: ffmpeg fails at start, and the writer says so instead of hanging.
    monkeypatch.setattr(video_writer, "X264_PRESET", "no-such-preset")
    writer = VideoWriter(tmp_path / "out.mp4", fps=25)
    with pytest.raises(VideoWriteError, match="ffmpeg failed"):
        for frame in pattern_frames(50):
            writer.write(frame)
        writer.close()
    assert ffmpeg_children() == []


# ----------------------------------------------------------------------------
# Reading limits and process hygiene.


def test_max_seconds_limits_frames(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mp4", seconds=2.0, fps=10, audio=False)
    assert probe_video(path).num_frames == 20
    info = probe_video(path, max_seconds=0.5)
    assert info.num_frames == 5 and info.duration == pytest.approx(0.5)
    with VideoReader(path, max_seconds=0.5) as reader:
        assert len(reader) == 5
        assert sum(1 for _ in reader) == 5
    frames, fps = read_video_frames(path, max_seconds=0.95)
    assert frames.shape[0] == 10 and fps == 10.0


def test_frame_count_skips_packets_before_an_edit_list(tmp_path: Path) -> None:
    # Cutting without re-encoding at a non-keyframe keeps the packets back to the previous
    # keyframe, flagged "discard" by an MP4 edit list; they are decoded but never shown.
    whole = make_clip(tmp_path / "whole.mp4", seconds=4.0, fps=10, audio=False)
    cut = tmp_path / "cut.mp4"
    run_ffmpeg("-y", "-ss", "1.3", "-i", str(whole), "-c", "copy", str(cut))
    packets = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(cut), "-c", "copy", "-f", "framecrc", "-"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "F=0x4" in packets  # the clip really has discarded packets
    info = probe_video(cut)
    frames, _ = read_video_frames(cut)
    assert info.num_frames == len(frames) == 27


def test_reader_streams_and_early_break_stops_ffmpeg(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mp4", seconds=3.0, fps=25, size="320x240", audio=False)
    with VideoReader(path) as reader:
        assert reader.info.size == (320, 240)
        for index, frame in enumerate(reader):
            assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
            assert frame.flags.writeable
            if index == 2:
                assert ffmpeg_children(), "ffmpeg should be running while frames are read"
                break
    deadline = time.monotonic() + 5.0
    while ffmpeg_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ffmpeg_children() == []


# ----------------------------------------------------------------------------
# Bad input.


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match="does not exist"):
        VideoReader(tmp_path / "nope.mp4")
    with pytest.raises(VideoReadError, match="not a file"):
        probe_video(tmp_path)


def test_garbage_bytes_named_mp4_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptVideoError, match="garbage.mp4") as caught:
        VideoReader(path)
    assert isinstance(caught.value, TalkingHeadError)


def test_truncated_mp4_is_corrupt(tmp_path: Path) -> None:
    whole = make_clip(tmp_path / "whole.mp4", seconds=1.0, audio=True)
    path = tmp_path / "truncated.mp4"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(CorruptVideoError, match="truncated.mp4"):
        read_video_frames(path)


@pytest.mark.parametrize("faststart", [False, True])
@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.3, 0.5])
def test_a_cut_mp4_is_called_incomplete_not_empty(tmp_path: Path, faststart: bool, fraction: float) -> None:
    whole = tmp_path / "whole.mp4"
    flags = ["-movflags", "+faststart"] if faststart else []
    run_ffmpeg("-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=2", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", *flags, str(whole))
    data = whole.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: max(40, int(len(data) * fraction))])
    try:
        info = probe_video(path)
    except TruncatedVideoError as error:
        message = str(error)
        assert "'cut.mp4' is incomplete" in message and "no frames" not in message
        assert str(tmp_path) not in message and "ffmpeg" not in message
    else:  # the moov index came first and some whole frames survived the cut: they are usable
        assert faststart and 0 < info.num_frames < 20


def test_max_fps_keeps_the_nearest_frames_and_the_duration(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "fast.mp4", seconds=2.0, fps=240, size="32x24", audio=False)
    everything, fps = read_video_frames(path)
    assert fps == 240 and len(everything) == 480
    with VideoReader(path, max_fps=30) as reader:
        frames = list(reader)
        assert reader.info.fps == 30 and reader.info.num_frames == 60 == len(frames)
        assert reader.info.duration == pytest.approx(2.0) and reader.source_info.num_frames == 480
    np.testing.assert_array_equal(np.stack(frames), everything[::8])
    with VideoReader(path, max_seconds=0.5, max_fps=30) as reader:
        assert reader.info.num_frames == 15 == len(list(reader))
    with VideoReader(path, max_fps=500) as reader:  # slower than the cap: unchanged
        assert reader.info.fps == 240 and reader.info.num_frames == 480


@pytest.mark.parametrize("kind", ["y4m", "avi"])
def test_zero_frame_video_is_empty(tmp_path: Path, kind: str) -> None:
    if kind == "y4m":
        # A YUV4MPEG2 stream header with no frame after it.
        path = tmp_path / "empty.y4m"
        path.write_bytes(b"YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\n")
    else:
        path = tmp_path / "empty.avi"
        run_ffmpeg(
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=size=64x48:rate=25",
            "-c:v",
            "mjpeg",
            "-frames:v",
            "0",
            str(path),
        )
    with pytest.raises(EmptyVideoError, match=path.name):
        VideoReader(path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "voice.m4a"
    run_ffmpeg("-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(path))
    with pytest.raises(NoVideoStreamError, match="audio only"):
        probe_video(path)
    # An audio-only file is still a fine audio source for the writer.
    out = write_frames(tmp_path / "out.mp4", pattern_frames(5), audio_from=path)
    assert audio_stream_count(out) == 1


def test_text_named_mp4_is_not_called_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "not_a_video.mp4"
    path.write_text("this is text, not a video")  # ffmpeg says "moov atom not found" for it
    with pytest.raises(CorruptVideoError) as caught:
        probe_video(path)
    assert not isinstance(caught.value, TruncatedVideoError) and "not a video" in str(caught.value)

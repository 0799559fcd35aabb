"""Video reading and writing on the ffmpeg binary shipped with ``imageio-ffmpeg``.

Frames at the library boundary are RGB ``uint8`` arrays of shape ``(H, W, 3)``.

Reading streams frames out of an ffmpeg subprocess one at a time, so a clip is
never held in memory as a whole (except through :func:`read_video_frames`,
which is meant for tests and short clips). Writing produces H.264 (``libx264``)
``yuv420p`` MP4 with ``+faststart`` (plays in browsers while downloading),
optionally with the audio track of another file encoded as AAC.

Every failure a user can cause (missing, corrupt, empty or audio-only files,
an unwritable output) raises a :class:`talking_head.errors.TalkingHeadError`
subclass whose message names the file and says what to do.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO

import imageio_ffmpeg
import numpy as np

from talking_head.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    VideoReadError,
    VideoWriteError,
)
from talking_head.media.frame_rate import frame_rate_indices

__all__ = [
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "probe_video",
    "read_video_frames",
    "ffmpeg_exe",
    "check_output_suffix",
    "WRITABLE_SUFFIXES",
]

logger = logging.getLogger(__name__)

# Used when a stream states no frame rate at all (rare: some raw or broken files).
DEFAULT_FPS = 25.0
# An ffmpeg probe reads headers and packets only; anything slower than this is stuck.
PROBE_TIMEOUT_S = 120.0
# Time given to ffmpeg to flush its encoder and move the index to the front on close.
WRITER_CLOSE_TIMEOUT_S = 300.0
# x264 speed/size trade-off; "medium" is x264's own default.
X264_PRESET = "medium"
AUDIO_BITRATE = "128k"


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary used for all video I/O (the one bundled with imageio-ffmpeg)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


# ----------------------------------------------------------------------------
# Probing.


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as far as this library reads it."""

    fps: float  # frames per second of the video stream
    num_frames: int  # frames that reading yields (capped by max_seconds when one was given)
    size: tuple[int, int]  # (W, H) of decoded frames, after the file's rotation flag is applied
    duration: float  # num_frames / fps, in seconds
    has_audio: bool  # whether the file has at least one audio stream


@dataclass(frozen=True)
class _Streams:
    """Raw facts parsed from ffmpeg's description of an input file."""

    has_video: bool
    has_audio: bool
    size: tuple[int, int]
    fps: float
    num_frames: int
    truncated: bool = False  # the file ends early and no frame of its video can be read


_STREAM_RE = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio): (.*)$")
_SIZE_RE = re.compile(r"\b(\d{1,5})x(\d{1,5})\b")
_FPS_RE = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_ROTATION_RE = re.compile(r"rotation of (-?[\d.]+) degrees")
# AV_PKT_FLAG_DISCARD: the demuxer says "decode this packet but do not show it".
_PACKET_FLAG_DISCARD = 0x4
# What ffmpeg prints when a file ends before its data does (an interrupted upload or recording).
# ("moov atom not found" is not one: ffmpeg says it for any non-video it tries as MP4, e.g. a text file.)
_TRUNCATION_MARKERS = ("partial file", "reached eof", "End of file", "truncat")
# Top-level boxes of ISO base media files (MP4, MOV, 3GP): how their structure is walked.
_ISO_TOP_LEVEL = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta", b"pnot", b"moof", b"mfra", b"sidx", b"styp"}
# Container suffixes VideoWriter writes (H.264 in an ISO base media file with +faststart).
WRITABLE_SUFFIXES = (".mp4", ".m4v", ".mov")


def _check_readable(path: Path) -> None:
    """Raise :class:`VideoReadError` for a path that is missing, a folder or unreadable."""
    if not path.exists():
        raise VideoReadError(f"Video file '{path}' does not exist. Check the path and try again.")
    if not path.is_file():
        raise VideoReadError(f"'{path}' is not a file. Give the path of a video file (e.g. an .mp4).")
    if not os.access(path, os.R_OK):
        raise VideoReadError(f"Video file '{path}' cannot be read (permission denied). Fix its permissions.")


def _input_section(stderr: str) -> list[str]:
    """Lines of ffmpeg's stderr that describe input #0 (not the output it would write)."""
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Input #0")), None)
    if start is None:
        return []
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith(("Stream mapping", "Output #"))),
        len(lines),
    )
    return lines[start:end]


def _parse_video_stream(line: str, rotation_lines: list[str]) -> tuple[tuple[int, int], float]:
    """(W, H) and fps of one 'Stream ... Video:' line; rotation by ±90° swaps W and H."""
    size_match = _SIZE_RE.search(line)
    size = (int(size_match.group(1)), int(size_match.group(2))) if size_match else (0, 0)
    fps = 0.0
    # Prefer the stream's stated fps over tbr (its time-base guess) when both are there.
    for number, kilo, _kind in sorted(_FPS_RE.findall(line), key=lambda match: match[2] != "fps"):
        fps = float(number) * (1000.0 if kilo else 1.0)
        break
    for rotation_line in rotation_lines:
        rotation = _ROTATION_RE.search(rotation_line)
        if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
            size = (size[1], size[0])
    return size, fps


def _probe_streams(path: Path) -> _Streams:
    """Run ffmpeg once over the file's packets (no decoding) and parse what it reports.

    Frames are counted from a per-packet listing (``-c copy -f framecrc``):
    thousands of frames per second, and equal to the decoded frames because
    packets flagged "discard" (those before an MP4 edit list's start, common
    in clips cut without re-encoding) are left out, as the decoder does.
    """
    _check_readable(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    # 'V' (capital) skips attached pictures such as cover art in audio files.
    cmd += ["-map", "0:V:0?", "-an", "-sn", "-dn", "-c", "copy", "-f", "framecrc", "-"]
    try:
        result = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise CorruptVideoError(
            f"Reading '{path.name}' took longer than {PROBE_TIMEOUT_S:.0f} s; the file may be damaged "
            "or on a stalled drive. Try another copy of the video."
        ) from error
    stderr = result.stderr.decode("utf-8", errors="replace")
    section = _input_section(stderr)
    if result.returncode != 0 and not section:
        raise _open_error(path, stderr)

    has_video = has_audio = False
    size, fps = (0, 0), 0.0
    for index, line in enumerate(section):
        match = _STREAM_RE.match(line)
        if match is None:
            continue
        kind, description = match.groups()
        if kind == "Audio":
            has_audio = True
        elif not has_video and "(attached pic)" not in description:
            has_video = True
            following = section[index + 1 : index + 12]
            stop = next((i for i, other in enumerate(following) if _STREAM_RE.match(other)), len(following))
            size, fps = _parse_video_stream(description, following[:stop])

    num_frames = _count_kept_packets(result.stdout) if has_video else 0
    truncated = (not has_video or num_frames == 0) and _looks_truncated(path, stderr)
    return _Streams(
        has_video=has_video, has_audio=has_audio, size=size, fps=fps, num_frames=num_frames, truncated=truncated
    )


def _count_kept_packets(framecrc: bytes) -> int:
    """Packets in ffmpeg ``framecrc`` output, minus those flagged discard (``F=0x..`` with bit 0x4)."""
    count = 0
    for line in framecrc.decode("ascii", errors="replace").splitlines():
        if not line or line.startswith("#"):
            continue
        last = line.rsplit(",", 1)[-1].strip()
        if last.startswith("F=0x") and int(last[4:], 16) & _PACKET_FLAG_DISCARD:
            continue
        count += 1
    return count


def _iso_file_is_cut(path: Path) -> bool | None:
    """An MP4/MOV whose top-level boxes run past the end of the file, or that has no 'moov' box.

    Both mean the file stops early: the index ('moov') is written last by most
    cameras, and a cut upload loses it or the end of the media data. None for
    files that do not start like an ISO base media file (ffmpeg's messages decide for them).
    """
    size = path.stat().st_size
    offset, seen_moov = 0, False
    with open(path, "rb") as file:
        while offset + 8 <= size:
            file.seek(offset)
            header = file.read(16)
            box_size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if offset == 0 and kind not in _ISO_TOP_LEVEL:
                return None  # not an ISO base media file
            if box_size == 1 and len(header) >= 16:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:
                box_size = size - offset  # the box runs to the end of the file
            if box_size < 8:
                return True
            seen_moov |= kind == b"moov"
            if offset + box_size > size:
                return True
            offset += box_size
    return not seen_moov


def _looks_truncated(path: Path, stderr: str) -> bool:
    """Whether ffmpeg's messages or the file's structure say that the file ends early."""
    cut = _iso_file_is_cut(path)
    if cut is not None:
        return cut or "partial file" in stderr
    return any(marker in stderr for marker in _TRUNCATION_MARKERS)


def _truncated_error(path: Path) -> TruncatedVideoError:
    return TruncatedVideoError(
        f"'{path.name}' is incomplete: the file ends before its video does (an interrupted upload, "
        "download or recording). Upload the complete clip, or re-export it as MP4 (H.264) and try again."
    )


def _open_error(path: Path, stderr: str) -> VideoReadError:
    """Turn the error ffmpeg printed when opening ``path`` into a user-facing exception."""
    last_line = next((line for line in reversed(stderr.splitlines()) if line.strip()), "unknown error")
    logger.debug("ffmpeg cannot open %s: %s", path.name, last_line.strip())
    if "No such file" in stderr:
        return VideoReadError(f"Video file '{path.name}' does not exist. Check the path and try again.")
    if "Permission denied" in stderr:
        return VideoReadError(f"Video file '{path.name}' cannot be read (permission denied). Fix its permissions.")
    if _looks_truncated(path, stderr):
        return _truncated_error(path)
    return CorruptVideoError(
        f"'{path.name}' is not a readable video: its data is damaged or it is not a video at all. "
        "Re-export it as MP4 (H.264) and try again."
    )


def probe_video(path: str | os.PathLike, max_seconds: float | None = None) -> VideoInfo:
    """Describe a video file without decoding it.

    Args:
        path: the video file.
        max_seconds: when given, ``num_frames`` and ``duration`` count only the
            frames that start before this time (what :class:`VideoReader` with
            the same limit yields).

    Raises:
        VideoReadError: the file is missing or unreadable.
        CorruptVideoError: ffmpeg cannot parse the file.
        NoVideoStreamError: the file has no video stream (e.g. audio only).
        EmptyVideoError: the video stream has no frames.
        TruncatedVideoError: the file ends before any frame of its video (a cut upload).
    """
    path = Path(path)
    streams = _probe_streams(path)
    if streams.truncated:
        raise _truncated_error(path)
    if not streams.has_video:
        kind = "audio only" if streams.has_audio else "no video stream"
        raise NoVideoStreamError(
            f"'{path.name}' has {kind}. Give a video file with a picture track (e.g. an .mp4 of a face)."
        )
    if streams.num_frames == 0:
        raise EmptyVideoError(f"'{path.name}' has a video stream with no frames. Use a clip with frames.")
    if streams.size[0] <= 0 or streams.size[1] <= 0:
        raise CorruptVideoError(f"'{path.name}' does not state its frame size. Re-export it as MP4 (H.264).")
    fps = streams.fps
    if fps <= 0:
        logger.warning("%s states no frame rate; assuming %.0f fps", path.name, DEFAULT_FPS)
        fps = DEFAULT_FPS
    num_frames = streams.num_frames
    if max_seconds is not None:
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        # Frames t = 0, 1/fps, ... that start strictly before max_seconds.
        num_frames = min(num_frames, max(1, math.ceil(max_seconds * fps - 1e-6)))
    return VideoInfo(
        fps=fps,
        num_frames=num_frames,
        size=streams.size,
        duration=num_frames / fps,
        has_audio=streams.has_audio,
    )


# ----------------------------------------------------------------------------
# Reading.


class VideoReader:
    """Stream the frames of a video file as RGB ``uint8`` arrays ``(H, W, 3)``.

    Use as a context manager; leaving the block (or breaking out of the loop
    and leaving it) stops the ffmpeg process::

        with VideoReader("clip.mp4", max_seconds=10) as reader:
            print(reader.info.fps, reader.info.num_frames)
            for frame in reader:
                ...

    The file is probed when the reader is created, so bad input raises at once
    (same errors as :func:`probe_video`). Frames are rotated as the file's
    rotation flag says and yielded exactly as decoded (a variable-rate clip is
    not resampled to ``info.fps``). Each iteration starts again at the first frame.

    ``max_fps``: a clip faster than this yields only the frames nearest to
    ``0, 1/max_fps, 2/max_fps, ...`` (:func:`talking_head.media.frame_rate.frame_rate_indices`),
    and ``info`` describes what is yielded (``fps = max_fps``, same duration).
    The others are still decoded, but nothing downstream sees them.
    """

    def __init__(
        self, path: str | os.PathLike, max_seconds: float | None = None, max_fps: float | None = None
    ) -> None:
        self.path = Path(path)
        self.max_seconds = max_seconds
        self.source_info: VideoInfo = probe_video(self.path, max_seconds=max_seconds)
        self._keep: np.ndarray | None = None  # source frame indices yielded; None = all
        self.info: VideoInfo = self.source_info
        if max_fps is not None and self.source_info.fps > max_fps:
            self._keep, fps = frame_rate_indices(self.source_info.num_frames, self.source_info.fps, max_fps)
            count = len(self._keep)
            self.info = VideoInfo(fps, count, self.source_info.size, count / fps, self.source_info.has_audio)
        self._generators: list[Iterator[bytes]] = []

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every ffmpeg process this reader started (safe to call twice)."""
        while self._generators:
            # Closing imageio-ffmpeg's generator terminates (and if needed kills) ffmpeg.
            self._generators.pop().close()

    def __len__(self) -> int:
        return self.info.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        # passthrough: one output frame per decoded frame (no duplicates or drops to force a
        # constant rate), so the count matches info.num_frames.
        generator = imageio_ffmpeg.read_frames(
            str(self.path),
            output_params=["-map", "0:V:0", "-fps_mode", "passthrough"],
            input_params=["-nostdin"],
        )
        self._generators.append(generator)
        try:
            yield from self._frames(generator)
        finally:
            generator.close()
            if generator in self._generators:
                self._generators.remove(generator)

    def _frames(self, generator: Iterator) -> Iterator[np.ndarray]:
        keep = None if self._keep is None else iter(self._keep.tolist())
        wanted = None if keep is None else next(keep, None)
        try:
            meta = next(generator)
            width, height = meta["size"]
            for index, raw in enumerate(generator):
                if index >= self.source_info.num_frames:
                    return
                if keep is not None:
                    if index != wanted:
                        continue
                    wanted = next(keep, None)
                # frombuffer is read-only; callers expect an array they may draw on.
                yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()
        except (OSError, RuntimeError) as error:
            raise CorruptVideoError(
                f"Decoding '{self.path.name}' failed ({_first_line(error)}). The file may be damaged; "
                "re-export it as MP4 (H.264) and try again."
            ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_video_frames(path: str | os.PathLike, max_seconds: float | None = None) -> tuple[np.ndarray, float]:
    """Read a whole (short) clip into memory: ``(frames (T, H, W, 3) uint8, fps)``.

    Meant for tests and small clips; use :class:`VideoReader` to stream long ones.
    """
    with VideoReader(path, max_seconds=max_seconds) as reader:
        frames = list(reader)
        fps = reader.info.fps
    if not frames:
        raise EmptyVideoError(f"No frame of '{Path(path).name}' could be decoded. Use another clip.")
    return np.stack(frames), fps


# ----------------------------------------------------------------------------
# Writing.


def _quality_to_crf(quality: float) -> int:
    """Map quality 0 (worst) … 10 (best) to x264's CRF 51 … 0."""
    if not 0 <= quality <= 10:
        raise ValueError(f"quality must be between 0 and 10, got {quality}")
    return int(round(51 * (1 - quality / 10)))


def _even_frame(frame: np.ndarray) -> np.ndarray:
    """Pad a frame with an odd width or height by repeating its last column/row.

    yuv420p stores colour at half resolution, so H.264 in yuv420p needs even
    sizes; repeating the edge keeps every input pixel and adds no visible border.
    """
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def check_output_suffix(path: str | os.PathLike) -> Path:
    """Refuse an output file name that is not an MP4/MOV (before any work is done for it)."""
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise VideoWriteError(
            f"Cannot write '{path.name}': videos are written as MP4 (H.264), so the name must end in "
            f"{', '.join(WRITABLE_SUFFIXES)}, not '{path.suffix or '(no extension)'}'. Use e.g. '{path.stem or 'out'}.mp4'."
        )
    return path


class VideoWriter:
    """Write RGB ``uint8`` frames to an H.264 MP4, optionally with audio from another file.

    Usage::

        with VideoWriter("out.mp4", fps=25, audio_from="driver.mp4",
                         metadata={"comment": "synthetic video: generated by talking-head"}) as writer:
            for frame in frames:
                writer.write(frame)

    Args:
        path: output file (``.mp4``); its folder must exist.
        fps: frame rate of the output.
        audio_from: any media file whose first audio stream becomes the output's audio.
        audio_max_seconds: use at most this many seconds of that audio.
        metadata: container tags, e.g. ``pipeline.SYNTHETIC_METADATA``.
        quality: 0 (worst) … 10 (best), mapped to x264 CRF = round(51 · (1 − quality / 10));
            the default 7 gives CRF 15, visually near-lossless.

    Details:
        - The first frame fixes the size; later frames must match it. Odd
          widths/heights are padded to even by repeating the last column/row
          (``yuv420p`` needs even sizes), so the file may be 1 px wider/taller.
        - Video: ``libx264``, ``yuv420p``, ``-movflags +faststart``.
        - Audio: when ``audio_from`` has an audio stream, its first one is
          encoded as AAC, padded with silence if short and cut to the video's
          exact length (in a second, stream-copy pass on close);
          ``audio_max_seconds`` reads only that many seconds of it (the rest
          is silence). Without audio there, the output has no audio stream.
        - ``metadata``: each item becomes ``-metadata key=value``; MP4 keeps the
          standard keys (``title``, ``comment``, ``description``, ``artist``, ...).
        - ffmpeg writes to a hidden temporary file next to ``path`` that is
          renamed to ``path`` only on success, so a failed or interrupted write
          never leaves a broken video at ``path``.

    Raises:
        VideoWriteError: the folder is missing or ffmpeg fails (the message
            includes ffmpeg's own last lines).
        VideoReadError: ``audio_from`` is given but cannot be read.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        audio_from: str | os.PathLike | None = None,
        audio_max_seconds: float | None = None,
        metadata: dict[str, str] | None = None,
        quality: float = 7.0,
    ) -> None:
        self.path = Path(path)
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        check_output_suffix(self.path)
        if not self.path.parent.is_dir():
            raise VideoWriteError(
                f"Cannot write '{self.path}': folder '{self.path.parent}' does not exist. Create it first."
            )
        self.fps = float(fps)
        self.metadata = dict(metadata or {})
        self.crf = _quality_to_crf(quality)
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_max_seconds = audio_max_seconds
        # Only files that really carry audio get an audio input: mapping a missing stream fails.
        self.has_audio = self.audio_from is not None and _probe_streams(self.audio_from).has_audio
        self.size: tuple[int, int] | None = None  # (W, H) of the frames as given
        self.num_frames = 0
        self._process: subprocess.Popen | None = None
        self._stderr: IO[bytes] | None = None
        self._closed = False
        # Hidden work files next to the output; ffmpeg picks the container from the suffix.
        token = uuid.uuid4().hex[:8]
        self._temp_path = self.path.with_name(f".{self.path.stem}.{token}.part{self.path.suffix}")
        self._video_only_path = self.path.with_name(f".{self.path.stem}.{token}.video{self.path.suffix}")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _video_command(self, width: int, height: int) -> list[str]:
        """Pass 1: raw RGB frames on stdin → H.264 video (the final file when there is no audio)."""
        fps = Fraction(self.fps).limit_denominator(1001)
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]
        cmd += ["-an", "-c:v", "libx264", "-preset", X264_PRESET, "-crf", str(self.crf)]
        cmd += ["-pix_fmt", "yuv420p"]
        if self.has_audio:
            return cmd + [str(self._video_only_path)]
        return cmd + self._final_options() + [str(self._temp_path)]

    def _audio_command(self) -> list[str]:
        """Pass 2: add the audio to the finished video, cut/padded to exactly its duration.

        A second pass (the video is stream-copied, so it costs little) gives an
        exact audio length: with frames streamed on stdin, ffmpeg's ``-shortest``
        overshoots by up to ~1 s of buffered audio.
        """
        duration = f"{self.num_frames / self.fps:.6f}"
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        cmd += ["-i", str(self._video_only_path)]
        if self.audio_max_seconds is not None:
            cmd += ["-t", f"{self.audio_max_seconds:.6f}"]  # input option: read only this much audio
        cmd += ["-i", str(self.audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
        cmd += ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-af", "apad", "-t", duration]
        return cmd + self._final_options() + [str(self._temp_path)]

    def _final_options(self) -> list[str]:
        cmd = ["-movflags", "+faststart"]
        for key, value in self.metadata.items():
            cmd += ["-metadata", f"{key}={value}"]
        return cmd

    def _start(self, width: int, height: int) -> None:
        # stderr goes to a file, not a pipe: a full pipe nobody reads would block ffmpeg.
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            self._video_command(width, height),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB ``uint8`` frame ``(H, W, 3)``."""
        if self._closed:
            raise ValueError(f"VideoWriter for '{self.path.name}' is already closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (width, height)
            self._start(width + width % 2, height + height % 2)
        elif (width, height) != self.size:
            raise ValueError(
                f"frame size {width}x{height} differs from the first frame's {self.size[0]}x{self.size[1]}"
            )
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(np.ascontiguousarray(_even_frame(frame)).data)
        except OSError as error:  # BrokenPipeError: ffmpeg exited early
            message = self._failure_message(self._stop(timeout=10.0))
            self.abort()
            raise VideoWriteError(message) from error
        self.num_frames += 1

    def close(self) -> None:
        """Finish the file: flush ffmpeg, check it succeeded, move the result to ``path``."""
        if self._closed:
            return
        self._closed = True
        if self._process is None:
            raise VideoWriteError(f"No frames were written to '{self.path.name}'; nothing to save.")
        try:
            returncode = self._stop(timeout=WRITER_CLOSE_TIMEOUT_S)
            if returncode != 0:
                raise VideoWriteError(self._failure_message(returncode))
            if self.has_audio:
                self._add_audio()
            os.replace(self._temp_path, self.path)
        finally:
            self._cleanup()

    def abort(self) -> None:
        """Stop ffmpeg and delete the partial output (used when the caller's code failed)."""
        self._closed = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._cleanup()

    def _stop(self, timeout: float) -> int | None:
        """Close ffmpeg's input and wait for it to finish; kill it after ``timeout`` seconds."""
        process = self._process
        assert process is not None
        try:
            if process.stdin is not None and not process.stdin.closed:
                process.stdin.close()
        except OSError:
            pass  # ffmpeg already gone; its exit code tells what happened
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise VideoWriteError(
                f"ffmpeg did not finish writing '{self.path.name}' within {timeout:.0f} s and was stopped."
            ) from None

    def _add_audio(self) -> None:
        try:
            result = subprocess.run(
                self._audio_command(), capture_output=True, timeout=WRITER_CLOSE_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise VideoWriteError(
                f"ffmpeg did not finish adding audio to '{self.path.name}' "
                f"within {WRITER_CLOSE_TIMEOUT_S:.0f} s."
            ) from error
        if result.returncode != 0:
            tail = " | ".join(result.stderr.decode("utf-8", errors="replace").strip().splitlines()[-3:])
            raise VideoWriteError(
                f"ffmpeg failed adding the audio of '{self.audio_from}' to '{self.path.name}' "
                f"(exit code {result.returncode}): {tail or 'no message'}. Try another audio source."
            )

    def _cleanup(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._temp_path.unlink(missing_ok=True)
        self._video_only_path.unlink(missing_ok=True)

    def _failure_message(self, returncode: int | None) -> str:
        output = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            output = self._stderr.read().decode("utf-8", errors="replace").strip()
        tail = " | ".join(output.splitlines()[-3:]) or "no message"
        return (
            f"ffmpeg failed writing '{self.path.name}' (exit code {returncode}): {tail}. "
            "Check free disk space and write permission for the output folder."
        )

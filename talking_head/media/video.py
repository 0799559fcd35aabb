"""What a video file holds, read by the ffmpeg binary shipped with ``imageio-ffmpeg``.

:func:`probe_video` describes a file without decoding it (frame rate, frame
count, size after rotation, audio); every failure a user can cause (missing,
corrupt, empty, truncated or audio-only files) raises a
:class:`talking_head.errors.TalkingHeadError` subclass whose message names the
file and says what to do. Reading frames is :mod:`talking_head.media.video_reader`,
writing MP4s :mod:`talking_head.media.video_writer`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

from talking_head.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    VideoReadError,
)

logger = logging.getLogger(__name__)

# Used when a stream states no frame rate at all (rare: some raw or broken files).
DEFAULT_FPS = 25.0
# An ffmpeg probe reads headers and packets only; anything slower than this is stuck.
PROBE_TIMEOUT_S = 120.0


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary used for all video I/O (the one bundled with imageio-ffmpeg)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


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
_ISO_TOP_LEVEL = {
    b"ftyp",
    b"moov",
    b"mdat",
    b"free",
    b"skip",
    b"wide",
    b"uuid",
    b"meta",
    b"pnot",
    b"moof",
    b"mfra",
    b"sidx",
    b"styp",
}


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
        has_video=has_video,
        has_audio=has_audio,
        size=size,
        fps=fps,
        num_frames=num_frames,
        truncated=truncated,
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
        f"'{path.name}' is incomplete: the file ends before its video does (an interrupted copy, "
        "download or recording). Use the complete clip, or re-export it as MP4 (H.264) and try again."
    )


def _open_error(path: Path, stderr: str) -> VideoReadError:
    """Turn the error ffmpeg printed when opening ``path`` into a user-facing exception."""
    last_line = next((line for line in reversed(stderr.splitlines()) if line.strip()), "unknown error")
    logger.debug("ffmpeg cannot open %s: %s", path.name, last_line.strip())
    if "No such file" in stderr:
        return VideoReadError(f"Video file '{path.name}' does not exist. Check the path and try again.")
    if "Permission denied" in stderr:
        return VideoReadError(
            f"Video file '{path.name}' cannot be read (permission denied). Fix its permissions."
        )
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


def has_audio_stream(path: str | os.PathLike) -> bool:
    """Whether a media file has at least one audio stream (``VideoReadError`` and friends when unreadable)."""
    return _probe_streams(Path(path)).has_audio

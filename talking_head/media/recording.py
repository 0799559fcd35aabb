"""Browser recordings: a WebM that states no duration, rewritten as a constant-rate MP4 that does.

A browser's ``MediaRecorder`` streams its WebM as it records, so the file's
header never gets the duration (ffmpeg reads ``Duration: N/A``; a video
player shows "0:00 / Infinity:NaN:NaN") and its frames carry their capture
times instead of a fixed rate (a loaded machine drops frames). Rewriting it
once, with every frame at its capture time on a fixed frame rate, gives a
file that any player and :func:`~talking_head.media.video.probe_video`
measure the same, H.264 so that every browser can play it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from talking_head.errors import CorruptVideoError
from talking_head.media.video import PROBE_TIMEOUT_S, ffmpeg_exe, probe_video

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # the first bytes of every Matroska / WebM file
_DURATION_RE = re.compile(r"^\s*Duration: (N/A|(\d+):(\d\d):(\d\d(?:\.\d+)?))", re.MULTILINE)
REWRITE_TIMEOUT_S = 300.0  # a 10 s recording takes seconds; minutes mean a stuck or huge file
DEFAULT_RECORDING_FPS = 25.0  # when the recording states no rate at all


def stated_duration(path: str | os.PathLike) -> float | None:
    """The duration the file's container states, seconds; None when it states none (``Duration: N/A``)."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    result = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    match = _DURATION_RE.search(result.stderr.decode("utf-8", errors="replace"))
    if match is None or match.group(1) == "N/A":
        return None
    hours, minutes, seconds = match.group(2, 3, 4)
    return 3600 * int(hours) + 60 * int(minutes) + float(seconds)


def is_streamed_webm(path: str | os.PathLike) -> bool:
    """A WebM (or Matroska) file that states no duration: what a browser's ``MediaRecorder`` writes."""
    try:
        with open(path, "rb") as file:
            if file.read(4) != _EBML_MAGIC:
                return False
    except OSError:
        return False
    return stated_duration(path) is None


def rewrite_recording(
    path: str | os.PathLike, out: str | os.PathLike, max_fps: float, max_side: int | None = None
) -> Path:
    """Write ``path`` as an MP4 at a constant frame rate (its own, at most ``max_fps``) that states its duration.

    Frames keep their capture times; audio is re-encoded to AAC; frames
    larger than ``max_side`` pixels on their longer side are scaled down.
    Raises ``CorruptVideoError`` when ffmpeg cannot rewrite the file.
    """
    path, out = Path(path), Path(out)
    stated_fps = probe_video(path).fps
    fps = min(max_fps, round(stated_fps) if stated_fps >= 1 else DEFAULT_RECORDING_FPS)
    filters = [f"fps={fps:g}"]
    if max_side:
        filters.append(
            f"scale=w='min(iw,{max_side})':h='min(ih,{max_side})':force_original_aspect_ratio=decrease"
            ":force_divisible_by=2"
        )
    else:
        filters.append("scale=trunc(iw/2)*2:trunc(ih/2)*2")
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(path)]
    command += ["-map", "0:v:0", "-map", "0:a:0?", "-vf", ",".join(filters)]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
    command += ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(out)]
    try:
        result = subprocess.run(command, capture_output=True, timeout=REWRITE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise CorruptVideoError(
            f"Rewriting the recording '{path.name}' took longer than {REWRITE_TIMEOUT_S:.0f} s. "
            "Record a shorter clip, or use a video file."
        ) from error
    if result.returncode != 0:
        raise CorruptVideoError(
            f"The recording '{path.name}' could not be read to the end. Record it again, or use a video file."
        )
    return out

"""The page's webcam recordings: rewritten once so that the player shows their length.

Chromium's recorder uploads a WebM that states no duration; the player under
the recording then shows "0:00 / Infinity:NaN:NaN" and its frames have no
fixed rate. :func:`fixed_recording` rewrites such a file
(:func:`talking_head.media.recording.rewrite_recording`) into this process's
output folder at the app's frame-rate and photo-side limits; every other
file is left as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from talking_head.media.recording import is_streamed_webm, rewrite_recording
from talking_head.web.files import new_output_path
from talking_head.web.limits import AppLimits


def fixed_recording(path: str | os.PathLike | None, limits: AppLimits) -> Path | None:
    """The recording at ``path`` as an MP4 that states its duration; None when ``path`` needs no rewrite."""
    if not path or not Path(path).is_file() or not is_streamed_webm(path):
        return None
    out = new_output_path("recording", suffix=".mp4")
    return rewrite_recording(path, out, max_fps=limits.max_fps, max_side=limits.max_image_side)

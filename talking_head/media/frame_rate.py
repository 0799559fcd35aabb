"""Frame-rate limits: which frames of a clip or track to keep so that it plays at no more than a rate."""

from __future__ import annotations

import numpy as np


def frame_rate_indices(num_frames: int, fps: float, max_fps: float) -> tuple[np.ndarray, float]:
    """Frames to keep so that ``num_frames`` at ``fps`` play at no more than ``max_fps``.

    Returns ``(indices (K,) int64, new fps)``: all frames and ``fps`` when
    ``fps <= max_fps``; otherwise, for each output time ``k / max_fps``, the
    nearest source frame, and ``max_fps``. The duration is kept, so the work
    of rendering a motion is bounded by its seconds, not its source frame rate.
    """
    if not max_fps > 0:
        raise ValueError(f"max_fps must be positive, got {max_fps}")
    if num_frames <= 0 or fps <= max_fps:
        return np.arange(max(0, num_frames), dtype=np.int64), float(fps)
    count = max(1, int(np.ceil(num_frames * max_fps / fps - 1e-9)))
    nearest = np.floor(np.arange(count) * (fps / max_fps) + 0.5).astype(np.int64)
    return np.minimum(nearest, num_frames - 1), float(max_fps)

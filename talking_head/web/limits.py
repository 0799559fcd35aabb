"""Limits of one web request, and the ZeroGPU window it reserves.

:class:`AppLimits`: upload size, photo count, driving seconds and frame rate,
photo pixels and side, fine-tuning steps, output size, queue length and live-session length
(defaults, overridable by the environment variables of :data:`LIMIT_ENV`).
:func:`gpu_duration`: the seconds a job reserves on ZeroGPU.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from talking_head.errors import TalkingHeadError

# ZeroGPU window in seconds (see gpu_duration): a fixed part (moving the model,
# detecting the photos' faces, embedding, starting the encoders) plus per-step
# and per-frame parts. These are estimates for the paper-size model on an H200
# slice with 2-3x headroom (fine-tuning step ≈ 3 G/D passes at batch 8 plus VGG;
# a frame ≈ one G pass plus H.264 encoding of the result and overlay on the CPU),
# not GPU measurements: re-measure with `python -m talking_head bench` on the Space.
GPU_BASE_S = 15.0
GPU_PER_STEP_S = 0.3
GPU_PER_FRAME_S = 0.06
GPU_MAX_S = 120  # ZeroGPU refuses longer requests for most users
# Start values of the fine-tuning slider (AppLimits.initial_steps). On a GPU the
# paper's recipe, 40 epochs over the T shots (40 steps for one photo), fits in a
# ZeroGPU window (~12 s at GPU_PER_STEP_S). On the CPU too: the best of 0–40 on val
# and a click still under 30 s (see AppLimits.initial_steps).
GPU_DEFAULT_STEPS = 40
CPU_DEFAULT_STEPS = 0
# AppLimits field -> the environment variable that overrides it.
LIMIT_ENV = {
    "max_upload_mb": "TALKING_HEAD_MAX_UPLOAD_MB",
    "max_photos": "TALKING_HEAD_MAX_PHOTOS",
    "max_driving_seconds": "TALKING_HEAD_MAX_SECONDS",
    "max_fps": "TALKING_HEAD_MAX_FPS",
    "max_image_megapixels": "TALKING_HEAD_MAX_IMAGE_MEGAPIXELS",
    "max_image_side": "TALKING_HEAD_MAX_IMAGE_SIDE",
    "max_steps": "TALKING_HEAD_MAX_STEPS",
    "default_steps": "TALKING_HEAD_DEFAULT_STEPS",
    "max_output_size": "TALKING_HEAD_MAX_OUTPUT_SIZE",
    "queue_size": "TALKING_HEAD_QUEUE_SIZE",
    "live_seconds": "TALKING_HEAD_LIVE_SECONDS",
}


def _env_number(
    environ: Mapping[str, str], name: str, default: float | None, kind: type, minimum: float
) -> float | None:
    """A number >= ``minimum`` from the environment variable ``name``, or ``default`` when unset."""
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise TalkingHeadError(
            f"{name}={text!r} is not a valid {kind.__name__}; set it to a number >= {minimum:g} or unset it"
        ) from None
    if value < minimum:
        raise TalkingHeadError(f"{name}={text!r} is too small; set it to a number >= {minimum:g} or unset it")
    return value


@dataclass(frozen=True)
class AppLimits:
    """Limits that keep one request within the memory and time of a shared machine.

    They count work, not file sizes or seconds alone: a driving motion is
    resampled to at most ``max_fps`` before anything is tracked or rendered,
    so no request renders more than :attr:`max_frames` frames, whatever the
    clip's or track's frame rate; a photo's pixel count is checked from its
    header before it is decoded, so decoding one photo holds at most about
    :attr:`photo_decode_bytes` (``scripts/bench_app_memory.py`` measures it).
    """

    max_upload_mb: float = 25.0  # largest uploaded file, MB (photos and driving clips)
    max_photos: int = 8  # photos per request (the paper's K = 8 shots)
    max_driving_seconds: float = 10.0  # longer driving clips are trimmed to this, with a notice
    max_fps: float = 30.0  # faster driving motions are resampled to this frame rate (nearest frames)
    max_image_megapixels: float = 40.0  # photos with more pixels are refused before decoding
    max_image_side: int = 1024  # photos are downscaled to this longer side before detection
    max_steps: int = 100  # largest number of fine-tuning steps
    default_steps: int | None = None  # the steps slider's start value; None: chosen by device (initial_steps)
    max_output_size: int = 1024  # largest longer side of the result video, pixels
    queue_size: int = 16  # requests waiting in the queue before new ones are turned away
    live_seconds: float = 60.0  # length of one live session (the Live tab), seconds

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppLimits:
        """Defaults overridden by the ``TALKING_HEAD_*`` environment variables of :data:`LIMIT_ENV`.

        Raises ``TalkingHeadError`` naming the variable when a value is not a valid number.
        """
        environ = os.environ if environ is None else environ
        values = {}
        for item in dataclasses.fields(cls):
            kind = float if item.type == "float" else int
            minimum = 0 if item.name == "default_steps" else (1 if kind is int else 0.1)
            value = _env_number(environ, LIMIT_ENV[item.name], item.default, kind, minimum)
            values[item.name] = None if value is None else kind(value)
        return cls(**values)

    def initial_steps(self, device: str | torch.device) -> int:
        """The fine-tuning slider's start value: ``default_steps`` when set, else by device.

        CPU: :data:`CPU_DEFAULT_STEPS` (0, the feed-forward use). Fine-tuning
        has not earned its wait there: on the half of val no recipe was chosen
        on, 40 steps moved SSIM by +0.0006 and mouth SSIM by +0.008 (one clip of
        six gave most of it; three of six went down), and on the closed-to-open
        case mouth SSIM went down by 0.0015; while 40 steps add about 15–20 s to
        a click on 2 cores (AMD EPYC Zen 5; ``weights/README.md``). GPU:
        :data:`GPU_DEFAULT_STEPS` (40 steps take seconds there).
        """
        steps = self.default_steps
        if steps is None:
            steps = GPU_DEFAULT_STEPS if torch.device(device).type == "cuda" else CPU_DEFAULT_STEPS
        return min(steps, self.max_steps)

    @property
    def max_frames(self) -> int:
        """Most frames one request tracks and renders: ``max_driving_seconds · max_fps``."""
        return max(1, math.ceil(self.max_driving_seconds * self.max_fps - 1e-9))

    @property
    def max_image_pixels(self) -> int:
        """``max_image_megapixels`` in pixels."""
        return int(self.max_image_megapixels * 1_000_000)

    @property
    def photo_decode_bytes(self) -> int:
        """Memory budget of decoding one photo: RGBA at the pixel limit, plus one copy while shrinking."""
        return 2 * 4 * self.max_image_pixels

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes (for ``Blocks.launch(max_file_size=...)``)."""
        return int(self.max_upload_mb * 1024 * 1024)


def gpu_duration(steps: int, num_frames: int, cap: int = GPU_MAX_S) -> int:
    """Seconds to reserve on ZeroGPU for ``steps`` fine-tuning steps and ``num_frames`` rendered frames.

    ``GPU_BASE_S + steps · GPU_PER_STEP_S + frames · GPU_PER_FRAME_S``,
    rounded up and capped at ``cap`` (a longer request would be refused).
    """
    seconds = GPU_BASE_S + max(0, steps) * GPU_PER_STEP_S + max(0, num_frames) * GPU_PER_FRAME_S
    return int(min(cap, np.ceil(seconds)))

"""What the web app needs from the library: limits, input checks, the render job, ZeroGPU durations.

``app.py`` only wires Gradio widgets to the functions here, so everything a
request does is testable without a server:

- :class:`AppLimits`: upload size, photo count, driving seconds, image side,
  fine-tuning steps (defaults, overridable by environment variables).
- :func:`load_app_weights`: the model, loaded once at start from
  ``TALKING_HEAD_WEIGHTS`` (a folder or a Hub repo id, default ``weights/``);
  when nothing loads it carries a plain message saying what to do instead.
- :func:`preview_photos`: each uploaded photo with its face box and landmarks
  drawn, and a warning for each photo that cannot be used.
- :func:`prepare_job` (CPU): checks every input and tracks the driving
  landmarks; :func:`run_job` (the GPU part): embeds the person, fine-tunes,
  renders the result and the overlay MP4s. The split keeps the ZeroGPU
  window (:func:`gpu_duration`) to the work that needs the GPU.

Every output is marked synthetic: always in the MP4 metadata
(``pipeline.SYNTHETIC_METADATA``), and with a visible mark when
``RenderRequest.watermark`` is set (the app's default).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from talking_head.animation.finetune import FinetuneConfig, finetune_person
from talking_head.animation.overlay import draw_landmarks, media_kind, track_clip
from talking_head.animation.person import Person, PhotoReport, analyze_photo, embed_person, model_device
from talking_head.animation.pipeline import (
    CROP_SMOOTHING,
    DEFAULT_SMOOTHING,
    SYNTHETIC_METADATA,
    DrivingMotion,
    animate_person,
    load_driving,
    load_model,
    mark_synthetic,
    overlay_panels,
)
from talking_head.errors import NoFaceError, TalkingHeadError, UnsupportedFileError, WeightsError
from talking_head.face.framing import (
    crop_box_from_landmarks,
    crop_image,
    paste_back,
    points_from_crop,
    points_to_crop,
    smooth_crop_boxes,
)
from talking_head.face.landmarks import LandmarkDetector
from talking_head.face.raster import rasterize_landmarks
from talking_head.face.tracking import LandmarkTrack, check_driving_track
from talking_head.media.images import load_image
from talking_head.media.video import VideoReader, VideoWriter, probe_video
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.precision import precision_from_env, resolve_precision

__all__ = [
    "DEFAULT_WEIGHTS",
    "ENV_WEIGHTS",
    "AppLimits",
    "AppWeights",
    "JobProgress",
    "PreparedJob",
    "RenderOutcome",
    "RenderRequest",
    "check_upload",
    "example_motions",
    "gpu_duration",
    "load_app_weights",
    "load_photo",
    "motion_preview",
    "new_output_path",
    "prepare_job",
    "preview_photos",
    "run_job",
    "sketch_frames",
    "write_motion_preview",
]

logger = logging.getLogger(__name__)

ENV_WEIGHTS = "TALKING_HEAD_WEIGHTS"  # weights folder or Hub repo id the app loads at start
DEFAULT_WEIGHTS = "weights"  # used when ENV_WEIGHTS is not set
TRACK_SUFFIX = ".npz"  # a driving motion saved as a landmark track
MODES = ("relative", "absolute")
# A driving clip whose face is found in fewer frames than this is refused:
# the gaps would be held still and the result would freeze.
MIN_DRIVING_FACE_FRACTION = 0.5
PREVIEW_MAX_SIDE = 512  # photo previews are shrunk to this longer side (they are only shown)
OUTPUT_MAX_AGE_S = 3600.0  # files in the app's output folder older than this are deleted
OUTPUT_DIR = Path(tempfile.gettempdir()) / "talking-head-app"

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
# ZeroGPU window (~12 s at GPU_PER_STEP_S); on the CPU fine-tuning is opt-in.
GPU_DEFAULT_STEPS = 40
CPU_DEFAULT_STEPS = 0

# callback(fraction in [0, 1] of the whole job, description of the current stage)
JobProgress = Callable[[float, str], None]


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

        CPU: 0 (the paper's feed-forward use). Measured through the app on the
        shared 2-core CPU (cpu preset, astronaut photo, 5 s motion): 59 s from
        click to video with 0 steps, 94 s with 20 (2.2 s per step), so
        fine-tuning is opt-in there. GPU: :data:`GPU_DEFAULT_STEPS`.
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


# ----- weights --------------------------------------------------------------------


@dataclass
class AppWeights:
    """The model the app serves, or why there is none."""

    source: str  # folder or Hub repo id that was tried
    model: TalkingHeadModel | None  # None when nothing could be loaded
    error: str | None = None  # plain message for the page: what is missing and how to fix it

    @property
    def ok(self) -> bool:
        """A model is loaded."""
        return self.model is not None

    def require(self) -> TalkingHeadModel:
        """The model; ``WeightsError`` with the page's message when there is none."""
        if self.model is None:
            raise WeightsError(self.error or f"no model weights were loaded from {self.source}")
        return self.model

    def describe(self) -> str:
        """One line for the page: source, image size, device."""
        if self.model is None:
            return f"no weights loaded ({self.source})"
        return f"weights {self.source}: {self.model.config.image_size} px, device {model_device(self.model)}"


def weights_help(source: str, reason: str) -> str:
    """The message shown when weights cannot be loaded: what is missing and the ways to fix it."""
    return (
        f"No model weights could be loaded from '{source}': {reason}. "
        f"To fix it, set the environment variable {ENV_WEIGHTS} to a weights folder (config.json + "
        "embedder/generator/discriminator .safetensors) or to a Hugging Face repo id (org/name), "
        "or make weights with the training recipe (python -m talking_head train ..., then "
        f"python -m talking_head export RUN --out {DEFAULT_WEIGHTS}), and restart the app."
    )


def load_app_weights(
    source: str | None = None,
    device: str | torch.device | None = None,
    environ: Mapping[str, str] | None = None,
) -> AppWeights:
    """Load the app's model once: ``source``, else ``$TALKING_HEAD_WEIGHTS``, else ``weights/``.

    Never raises for missing or broken weights: the result then has
    ``model=None`` and ``error`` set, so the page can say so plainly.
    """
    environ = os.environ if environ is None else environ
    source = source or environ.get(ENV_WEIGHTS, "").strip() or DEFAULT_WEIGHTS
    try:
        model = load_model(source, device=device)
    except WeightsError as error:
        logger.warning("no weights loaded from %s: %s", source, error)
        return AppWeights(source, None, weights_help(source, str(error).rstrip(".")))
    logger.info("loaded weights from %s (%d px) on %s", source, model.config.image_size, model_device(model))
    # Fine-tuning and rendering read $TALKING_HEAD_PRECISION themselves; resolving it here fails a bad value at start.
    precision = resolve_precision(precision_from_env(environ), model_device(model))
    logger.info("precision %s (%s)", precision.name, precision.reason)
    return AppWeights(source, model)


# ----- input checks ------------------------------------------------------------------


def check_upload(path: str | os.PathLike | None, what: str, limits: AppLimits) -> Path:
    """An uploaded file that exists and is within the size limit; ``what`` names it in messages."""
    if not path:
        raise TalkingHeadError(f"{what} is missing; upload it and try again")
    path = Path(path)
    if not path.is_file():
        raise TalkingHeadError(f"{what} ('{path.name}') could not be found on the server; upload it again")
    size_mb = path.stat().st_size / (1024 * 1024)
    if size_mb > limits.max_upload_mb:
        raise UnsupportedFileError(
            f"{what} ('{path.name}') is {size_mb:.1f} MB; the limit is {limits.max_upload_mb:g} MB. "
            "Use a smaller file (a shorter clip or a smaller photo)."
        )
    return path


def load_photo(path: str | os.PathLike, what: str, limits: AppLimits) -> np.ndarray:
    """Read one uploaded photo as RGB uint8, downscaled to ``limits.max_image_side``.

    Its pixel count is checked from the header first (``limits.max_image_megapixels``).
    Raises, with a message naming the photo as the user named it:
    ``UnsupportedFileError`` (not an image, whatever its name), ``ImageTooLargeError``
    (too many pixels; names the limit), ``ImageReadError`` (damaged or incomplete).
    """
    path = check_upload(path, what, limits)
    return load_image(
        path, max_side=limits.max_image_side, max_pixels=limits.max_image_pixels, name=f"{what} ('{path.name}')"
    )


def _photo_label(index: int) -> str:
    return f"photo {index + 1}"


def _check_photo_count(photos: Sequence[str | os.PathLike], limits: AppLimits) -> None:
    if not photos:
        raise TalkingHeadError("no photo was given; upload at least one photo of the person's face")
    if len(photos) > limits.max_photos:
        raise TalkingHeadError(
            f"{len(photos)} photos were given; the limit is {limits.max_photos}. Remove some photos and try again."
        )


# ----- photo previews ---------------------------------------------------------------------


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _caption(label: str, name: str, report: PhotoReport) -> str:
    if not report.face_found:
        return f"⚠ {label} ({name}): {report.reason}"
    if not report.usable:
        return f"⚠ {label} ({name}) will be skipped: {report.reason}"
    remark = f"; {report.reason}" if report.reason else ""
    return f"{label} ({name}): face {report.box_size:.0f} px, yaw {report.yaw:+.0f}°{remark}"


def preview_photos(
    photos: Sequence[str | os.PathLike],
    detector: LandmarkDetector,
    limits: AppLimits,
    image_size: int = 256,
) -> tuple[list[tuple[np.ndarray, str]], list[str]]:
    """Each photo with its crop box (green usable, red not) and landmarks drawn, and a caption.

    Returns ``(gallery items, warnings)``: one ``(image, caption)`` per
    readable photo, and one warning per photo that cannot be used (unreadable,
    wrong type, no face, too small, turned away, blurry), naming the photo.
    Nothing is raised for a bad photo: the preview shows what it can.
    """
    items: list[tuple[np.ndarray, str]] = []
    warnings: list[str] = []
    for index, path in enumerate(list(photos)[: limits.max_photos]):
        label, name = _photo_label(index), Path(path).name
        try:
            image = load_photo(path, label, limits)
        except TalkingHeadError as error:
            warnings.append(str(error))
            continue
        report, shot = analyze_photo(image, name, detector, image_size)
        drawn = image
        if shot is not None:
            points = points_from_crop(shot.points, shot.box, image_size)
            drawn = draw_landmarks(image, points)
            color = (0, 200, 0) if report.usable else (230, 0, 0)
            x0, y0, x1, y1 = (round(float(v)) for v in shot.box.as_xyxy())
            cv2.rectangle(drawn, (x0, y0), (x1, y1), color, max(2, max(image.shape[:2]) // 256), cv2.LINE_AA)
        caption = _caption(label, name, report)
        if not report.usable:
            warnings.append(caption.lstrip("⚠ "))
        items.append((_shrink(drawn, PREVIEW_MAX_SIDE), caption))
    if len(photos) > limits.max_photos:
        warnings.append(
            f"only the first {limits.max_photos} photos are previewed; the limit is {limits.max_photos} per request"
        )
    return items, warnings


# ----- the job -------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderRequest:
    """One animation request, as the user set it."""

    photos: tuple[str, ...]  # paths of 1..max_photos photos of one person
    driving: str  # driving clip (video) or motion (.npz landmark track)
    steps: int = 0  # fine-tuning steps (0 = feed-forward: ψ = P·ê)
    mode: str = "relative"  # "relative" (keep the person's face shape) or "absolute" (the paper's)
    smoothing: float = DEFAULT_SMOOTHING  # Gaussian sigma in frames on the driving landmarks (0 = off)
    max_seconds: float | None = None  # use at most this much of the driving motion (capped by the limits)
    paste_back: bool = False  # paste the rendered face back into the first usable photo
    output_size: int | None = None  # longer side of the result video in pixels; None = the model's size
    watermark: bool = True  # draw the visible "SYNTHETIC" mark (metadata is always written)
    overlay: bool = True  # also write the landmark-overlay MP4
    seed: int = 0  # fine-tuning seed (shot sampling, flips)


@dataclass
class PreparedJob:
    """A checked request with its driving landmarks tracked: what the GPU part needs."""

    request: RenderRequest
    photos: list[np.ndarray]  # loaded, downscaled photos
    photo_names: list[str]  # "photo 1 (file.png)", ...
    motion: DrivingMotion  # driving landmarks in crop pixels, fps, clip (for audio and the overlay)
    backend: str  # landmark backend that ran
    notices: list[str] = field(default_factory=list)  # things the user should know (trimmed clip, ...)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage so far
    weights: dict[str, float] = field(default_factory=dict)  # progress share of each remaining stage

    @property
    def num_frames(self) -> int:
        """Frames that will be rendered."""
        return len(self.motion)


@dataclass(frozen=True)
class RenderOutcome:
    """What a job produced."""

    video: Path  # the result MP4
    overlay: Path | None  # the landmark-overlay MP4
    num_frames: int  # frames rendered
    fps: float  # frame rate of both videos
    has_audio: bool  # the driving clip's audio was copied
    reports: list[PhotoReport]  # one per photo
    timings: dict[str, float]  # seconds per stage: landmarks, embedding, fine-tuning, rendering
    notices: list[str]  # trimmed clip, skipped photos, ...
    status: str  # the one-line summary shown under the videos


def _stage_weights(frames_to_track: int, steps: int, frames: int) -> dict[str, float]:
    """Rough share of the job's time per stage (for one progress bar across all of them).

    Relative costs from CPU measurements with the cpu preset: rendering a frame
    ~0.4 s, tracking a frame with dlib ~0.05 s (scripts/make_examples.py: 375
    frames in 27 s with encoding), one fine-tuning step ≈ 6 rendered frames.
    """
    costs = {
        "landmarks": 0.15 * frames_to_track + 1.0,
        "embedding": 1.0,
        "fine-tuning": 6.0 * steps,
        "rendering": float(frames),
    }
    total = sum(costs.values())
    return {stage: cost / total for stage, cost in costs.items()}


class _StageProgress:
    """Maps per-stage (done, total) onto one fraction of the whole job."""

    ORDER = ("landmarks", "embedding", "fine-tuning", "rendering")

    def __init__(self, weights: Mapping[str, float], callback: JobProgress | None) -> None:
        self.weights = weights
        self.callback = callback

    def __call__(self, stage: str, done: int, total: int, desc: str) -> None:
        if self.callback is None:
            return
        before = sum(self.weights.get(s, 0.0) for s in self.ORDER[: self.ORDER.index(stage)])
        share = self.weights.get(stage, 0.0) * (done / total if total else 1.0)
        self.callback(min(1.0, before + share), desc)


def _check_driving_track(track: LandmarkTrack, label: str) -> None:
    """Refuse a driving track that has no frames or frame rate, or whose face is missing in most frames."""
    if len(track) == 0:
        raise UnsupportedFileError(f"the {label} has no frames; use a clip of at least one second")
    check_driving_track(track, f"the {label}")
    if track.face_fraction < MIN_DRIVING_FACE_FRACTION:
        raise NoFaceError(
            f"no face was found in most frames of the {label} (found in {100 * track.face_fraction:.0f}% of "
            f"{len(track)} frames). Use a clip where one face is clearly visible most of the time."
        )


def _seconds_to_use(request: RenderRequest, limits: AppLimits) -> float:
    wanted = (
        request.max_seconds if request.max_seconds and request.max_seconds > 0 else limits.max_driving_seconds
    )
    return min(float(wanted), limits.max_driving_seconds)


def _load_driving_track(path: Path, seconds: float, limits: AppLimits, notices: list[str]) -> LandmarkTrack:
    """A saved motion, checked, cut to ``seconds`` and resampled to ``limits.max_fps`` (with notices)."""
    label = f"the driving motion ('{path.name}')"
    track = LandmarkTrack.load(path, name=label)
    check_driving_track(track, label)
    duration = len(track) / track.fps
    if duration > seconds + 1e-6:
        notices.append(f"the driving motion is {duration:.1f} s long; the first {seconds:g} s were used")
        track = track.head(math.ceil(seconds * track.fps - 1e-6))
    if track.fps > limits.max_fps:
        notices.append(f"the driving motion is at {track.fps:g} fps; it was resampled to {limits.max_fps:g} fps")
        track = track.resample(limits.max_fps)
    return track.head(limits.max_frames)


def _probe_driving_clip(path: Path, seconds: float, limits: AppLimits, notices: list[str]) -> tuple[int, bool]:
    """Frames that will be tracked from a driving clip and whether it has audio (notices when trimmed or resampled)."""
    if media_kind(path) != "clip":
        raise UnsupportedFileError(
            f"the driving clip ('{path.name}') is a photo; use a video clip (MP4, MOV, WebM, ...) or a motion (.npz)"
        )
    info = probe_video(path)
    if info.duration > seconds + 1e-6:
        notices.append(
            f"the driving clip is {info.duration:.1f} s long; only the first {seconds:g} s were used"
        )
    if info.fps > limits.max_fps:
        notices.append(f"the driving clip is at {info.fps:g} fps; it was resampled to {limits.max_fps:g} fps")
    with VideoReader(path, max_seconds=seconds, max_fps=limits.max_fps) as reader:
        return min(reader.info.num_frames, limits.max_frames), info.has_audio


def _finite_number(value: object) -> float | None:
    """``value`` as a finite float, or None when it is not a number (bool, text, NaN, infinity)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _check_request(request: RenderRequest, limits: AppLimits) -> RenderRequest:
    """Check every setting (before any work); the request with whole-number steps."""
    _check_photo_count(request.photos, limits)
    if request.mode not in MODES:
        raise TalkingHeadError(f"unknown motion mode {request.mode!r}; use 'relative' or 'absolute'")
    steps = _finite_number(request.steps)
    if steps is None or not steps.is_integer():
        raise TalkingHeadError(
            f"fine-tuning steps must be a whole number between 0 and {limits.max_steps}, got {request.steps!r}"
        )
    if not 0 <= steps <= limits.max_steps:
        raise TalkingHeadError(
            f"fine-tuning steps must be between 0 and {limits.max_steps}, got {request.steps}"
        )
    smoothing = _finite_number(request.smoothing)
    if smoothing is None or smoothing < 0:
        raise TalkingHeadError(f"smoothing must be a number of frames ≥ 0 (0 = off), got {request.smoothing!r}")
    if request.max_seconds is not None:
        seconds = _finite_number(request.max_seconds)
        if seconds is None or seconds <= 0:
            raise TalkingHeadError(
                f"seconds of the driving motion must be a number above 0 (at most {limits.max_driving_seconds:g}), "
                f"got {request.max_seconds!r}"
            )
    output_size = None
    if request.output_size is not None:
        size = _finite_number(request.output_size)
        if size is None or not size.is_integer() or not 16 <= size <= limits.max_output_size:
            raise TalkingHeadError(
                f"the output size must be a whole number of pixels up to {limits.max_output_size}, "
                f"got {request.output_size!r}"
            )
        output_size = int(size)
    return dataclasses.replace(request, steps=int(steps), smoothing=float(smoothing), output_size=output_size)


def prepare_job(
    request: RenderRequest,
    limits: AppLimits,
    detector: LandmarkDetector,
    image_size: int,
    progress: JobProgress | None = None,
) -> PreparedJob:
    """Check every input and track the driving landmarks (the CPU part of a job).

    Raises ``TalkingHeadError`` subclasses with a message naming the input:
    too many or no photos, a photo that is not an image or is damaged, a
    driving file that is neither a clip nor a motion, a clip that cannot be
    decoded, a clip with no face in most frames.
    """
    start = time.perf_counter()
    request = _check_request(request, limits)
    # The cheap checks of the driving file come first: a broken track or clip is refused at once.
    driving = check_upload(request.driving, "the driving clip", limits)
    seconds = _seconds_to_use(request, limits)
    notices: list[str] = []
    if driving.suffix.lower() == TRACK_SUFFIX:
        track = _load_driving_track(driving, seconds, limits, notices)
        _check_driving_track(track, "driving motion")
    else:
        frames, has_audio = _probe_driving_clip(driving, seconds, limits, notices)
    names = [f"{_photo_label(i)} ({Path(p).name})" for i, p in enumerate(request.photos)]
    photos = [load_photo(path, _photo_label(i), limits) for i, path in enumerate(request.photos)]
    if driving.suffix.lower() == TRACK_SUFFIX:
        weights = _stage_weights(0, request.steps, len(track))
        video, has_audio = None, False
    else:
        weights = _stage_weights(frames, request.steps, frames)
        stages = _StageProgress(weights, progress)
        track = track_clip(
            driving,
            detector,
            max_seconds=seconds,
            max_fps=limits.max_fps,
            progress=lambda _stage, done, _total: stages(
                "landmarks", done, frames, f"Driving landmarks: frame {done}/{frames}"
            ),
        ).head(limits.max_frames)
        _check_driving_track(track, "driving clip")
        video = driving
    motion = load_driving(track, image_size, smoothing=request.smoothing)
    # load_driving(track) knows no clip: attach it for the audio and the overlay's driving frames.
    motion = dataclasses.replace(
        motion, video=video, has_audio=has_audio, max_seconds=seconds if video else None
    )
    return PreparedJob(
        request=request,
        photos=photos,
        photo_names=names,
        motion=motion,
        backend=track.backend,
        notices=notices,
        timings={"landmarks": time.perf_counter() - start},
        weights=weights,
    )


def gpu_duration(steps: int, num_frames: int, cap: int = GPU_MAX_S) -> int:
    """Seconds to reserve on ZeroGPU for ``steps`` fine-tuning steps and ``num_frames`` rendered frames.

    ``GPU_BASE_S + steps · GPU_PER_STEP_S + frames · GPU_PER_FRAME_S``,
    rounded up and capped at ``cap`` (a longer request would be refused).
    """
    seconds = GPU_BASE_S + max(0, steps) * GPU_PER_STEP_S + max(0, num_frames) * GPU_PER_FRAME_S
    return int(min(cap, np.ceil(seconds)))


def new_output_path(prefix: str, suffix: str = ".mp4", folder: Path = OUTPUT_DIR) -> Path:
    """A fresh file in the app's output folder, after deleting files older than an hour there."""
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - OUTPUT_MAX_AGE_S
    for old in folder.iterdir():
        try:
            if old.is_file() and old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # another request removed it first
    handle, name = tempfile.mkstemp(prefix=f"{prefix}-", suffix=suffix, dir=folder)
    os.close(handle)
    return Path(name)


def _fit_longer_side(frame: np.ndarray, size: int | None) -> np.ndarray:
    """Resize so that the longer side is ``size`` (unchanged when ``size`` is None or equal)."""
    if not size or max(frame.shape[:2]) == size:
        return frame
    scale = size / max(frame.shape[:2])
    shape = (max(2, round(frame.shape[1] * scale)), max(2, round(frame.shape[0] * scale)))
    return cv2.resize(frame, shape, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)


def _write_videos(
    model: TalkingHeadModel,
    person: Person,
    job: PreparedJob,
    video: Path,
    overlay: Path | None,
    stages: _StageProgress,
) -> None:
    """Stream the result (and overlay) frames into their MP4s, marked synthetic."""
    request, motion = job.request, job.motion
    audio = motion.video if motion.has_audio else None
    total = len(motion)
    with VideoWriter(
        video, motion.fps, audio_from=audio, audio_max_seconds=motion.max_seconds, metadata=SYNTHETIC_METADATA
    ) as out:
        overlay_out = VideoWriter(overlay, motion.fps, metadata=SYNTHETIC_METADATA) if overlay else None
        crops = _driving_crops(motion) if overlay_out is not None else None
        try:
            for frame in animate_person(model, person, motion, mode=request.mode):
                if crops is not None:
                    frame = dataclasses.replace(frame, driving_crop=next(crops))
                result = frame.result
                if request.paste_back:
                    result = paste_back(person.source_image, result, person.source_box)
                result = _fit_longer_side(result, request.output_size)
                out.write(mark_synthetic(result) if request.watermark else result)
                if overlay_out is not None:
                    panels = overlay_panels(frame)
                    overlay_out.write(mark_synthetic(panels) if request.watermark else panels)
                stages("rendering", frame.index + 1, total, f"Rendering: frame {frame.index + 1}/{total}")
        except BaseException:
            if overlay_out is not None:
                overlay_out.abort()
            raise
        finally:
            if crops is not None:
                crops.close()
        if overlay_out is not None:
            overlay_out.close()


def _driving_crops(motion: DrivingMotion) -> Iterator[np.ndarray | None]:
    """The driving frames the motion was tracked on, cropped by its boxes; ``None`` for a track.

    Read at the motion's frame rate (``VideoReader(max_fps=motion.fps)``), so a
    clip resampled to the limits' frame rate gives the same frames it was tracked on.
    """
    if motion.video is not None:
        with VideoReader(motion.video, max_seconds=motion.max_seconds, max_fps=motion.fps) as reader:
            for frame, box in zip(reader, motion.boxes):
                yield crop_image(frame, box, motion.image_size)
    while True:  # a track, or a clip that decodes fewer frames the second time
        yield None


def _finetune(
    model: TalkingHeadModel, person: Person, request: RenderRequest, stages: _StageProgress
) -> Person:
    if request.steps <= 0:
        return person

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        stages("fine-tuning", step, total, f"Fine-tuning: step {step}/{total}")

    torch.manual_seed(request.seed)
    return finetune_person(
        model, person, request.steps, callback=on_step, config=FinetuneConfig(seed=request.seed)
    )


def run_job(
    model: TalkingHeadModel,
    job: PreparedJob,
    detector: LandmarkDetector,
    progress: JobProgress | None = None,
    output_dir: Path = OUTPUT_DIR,
) -> RenderOutcome:
    """Embed the person, fine-tune, render the result and overlay MP4s (the GPU part of a job).

    Raises ``NoFaceError`` naming each photo when none is usable.
    """
    stages = _StageProgress(job.weights, progress)
    timings = dict(job.timings)
    request = job.request

    stages("embedding", 0, 1, "Embedding the photos")
    start = time.perf_counter()
    person = embed_person(model, job.photos, detector=detector, names=job.photo_names)
    timings["embedding"] = time.perf_counter() - start

    start = time.perf_counter()
    person = _finetune(model, person, request, stages)
    timings["fine-tuning"] = time.perf_counter() - start

    start = time.perf_counter()
    video = new_output_path("talking-head", folder=output_dir)
    overlay = new_output_path("overlay", folder=output_dir) if request.overlay else None
    _write_videos(model, person, job, video, overlay, stages)
    timings["rendering"] = time.perf_counter() - start

    notices = list(job.notices) + [f"{r.name} skipped: {r.reason}" for r in person.reports if not r.usable]
    notices += [f"{r.name}: {r.reason}" for r in person.reports if r.usable and r.num_faces > 1]
    outcome = RenderOutcome(
        video=video,
        overlay=overlay,
        num_frames=len(job.motion),
        fps=job.motion.fps,
        has_audio=job.motion.has_audio,
        reports=person.reports,
        timings=timings,
        notices=notices,
        status="",
    )
    return dataclasses.replace(outcome, status=describe_outcome(outcome, job, model))


def describe_outcome(outcome: RenderOutcome, job: PreparedJob, model: TalkingHeadModel) -> str:
    """The status line: frames, landmark backend, device, seconds per stage, notices."""
    usable = sum(r.usable for r in outcome.reports)
    seconds = ", ".join(f"{stage} {value:.1f} s" for stage, value in outcome.timings.items())
    steps = job.request.steps
    parts = [
        (
            f"{outcome.num_frames} frames rendered ({outcome.num_frames / outcome.fps:.1f} s at {outcome.fps:g} fps"
            f"{', with the clip audio' if outcome.has_audio else ''})"
        ),
        f"landmarks: {job.backend}",
        f"device: {model_device(model)}",
        f"photos used: {usable}/{len(outcome.reports)}",
        f"fine-tuning: {steps} step{'s' if steps != 1 else ''}" + (" (feed-forward)" if steps == 0 else ""),
        f"time: {seconds}; total {sum(outcome.timings.values()):.1f} s",
    ]
    line = " · ".join(parts)
    if outcome.notices:
        line += "\nNote: " + "; ".join(outcome.notices)
    return line


# ----- driving motions: examples and previews ----------------------------------------------

MOTION_PREVIEW_SIZE = 256  # side of a motion's landmark-sketch preview, pixels


def sketch_frames(track: LandmarkTrack, size: int = MOTION_PREVIEW_SIZE) -> Iterator[np.ndarray]:
    """A track framed like a driving clip and rasterized: ``(size, size, 3)`` uint8 sketches (no video pixels)."""
    boxes = smooth_crop_boxes([crop_box_from_landmarks(p) for p in track.points], CROP_SMOOTHING)
    for points, box in zip(track.points, boxes):
        yield rasterize_landmarks(points_to_crop(points, box, size), size)


def write_motion_preview(
    track: LandmarkTrack, path: str | os.PathLike, size: int = MOTION_PREVIEW_SIZE
) -> Path:
    """Write the landmark-sketch preview MP4 of a track (at the track's fps, tagged synthetic)."""
    with VideoWriter(path, track.fps if track.fps > 0 else 25.0, metadata=SYNTHETIC_METADATA) as writer:
        for frame in sketch_frames(track, size):
            writer.write(frame)
    return Path(path)


def motion_preview(path: str | os.PathLike, limits: AppLimits, output_dir: Path = OUTPUT_DIR) -> Path:
    """The preview of a motion file: ``<name>.mp4`` next to it when present, else a sketch rendered now.

    Raises ``UnsupportedFileError`` when the file is not a landmark track.
    """
    path = check_upload(path, "the driving motion", limits)
    shipped = path.with_suffix(".mp4")
    if shipped.is_file():
        return shipped
    label = f"the driving motion ('{path.name}')"
    track = LandmarkTrack.load(path, name=label)
    check_driving_track(track, label)
    seconds = limits.max_driving_seconds
    if len(track) > seconds * track.fps:
        track = track.head(math.ceil(seconds * track.fps - 1e-6))
    track = track.resample(limits.max_fps).head(limits.max_frames)
    return write_motion_preview(track, new_output_path("motion", folder=output_dir))


def example_motions(folder: str | os.PathLike) -> list[tuple[Path, Path | None]]:
    """The example motions in ``folder``: ``(<name>.npz, <name>.mp4 preview or None)``, sorted by name."""
    folder = Path(folder)
    motions = []
    for track in sorted(folder.glob(f"*{TRACK_SUFFIX}")):
        preview = track.with_suffix(".mp4")
        motions.append((track, preview if preview.is_file() else None))
    return motions

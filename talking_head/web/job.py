"""The render job: checked and tracked on the CPU, rendered on the GPU.

:func:`prepare_job` (CPU) checks every input and tracks the driving landmarks;
:func:`run_job` (the GPU part) embeds the person, fine-tunes, renders the
result and the overlay MP4s. The split keeps the ZeroGPU window
(:func:`~talking_head.web.limits.gpu_duration`) to the work that needs the GPU.
Every output is marked synthetic: always in the MP4 metadata
(``pipeline.SYNTHETIC_METADATA``), and with a visible mark when
``RenderRequest.watermark`` is set (the app's default).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from talking_head.animation.finetune import FinetuneConfig, finetune_person
from talking_head.animation.overlay import track_clip
from talking_head.animation.person import Person, PhotoReport, embed_person, model_device
from talking_head.animation.pipeline import (
    SYNTHETIC_METADATA,
    DrivingMotion,
    animate_person,
    load_driving,
    mark_synthetic,
    overlay_panels,
)
from talking_head.face.detection import LandmarkDetector
from talking_head.face.framing import crop_image
from talking_head.media.video_reader import VideoReader
from talking_head.media.video_writer import VideoWriter
from talking_head.nets.model import TalkingHeadModel
from talking_head.web.files import OUTPUT_DIR, new_output_path
from talking_head.web.inputs import (
    REGION_LABELS,
    TRACK_SUFFIX,
    RenderRequest,
    check_request,
    check_upload,
    check_usable_driving,
    load_driving_track,
    load_photo,
    photo_label,
    probe_driving_clip,
    seconds_to_use,
)
from talking_head.web.limits import AppLimits
from talking_head.web.output_choice import page_frames

# callback(fraction in [0, 1] of the whole job, description of the current stage)
JobProgress = Callable[[float, str], None]


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
    request = check_request(request, limits)
    # The cheap checks of the driving file come first: a broken track or clip is refused at once.
    driving = check_upload(request.driving, "the driving clip", limits)
    seconds = seconds_to_use(request, limits)
    notices: list[str] = []
    if driving.suffix.lower() == TRACK_SUFFIX:
        track = load_driving_track(driving, seconds, limits, notices)
        check_usable_driving(track, "driving motion")
    else:
        frames, has_audio = probe_driving_clip(driving, seconds, limits, notices)
    names = [f"{photo_label(i)} ({Path(p).name})" for i, p in enumerate(request.photos)]
    photos = [load_photo(path, photo_label(i), limits) for i, path in enumerate(request.photos)]
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
        check_usable_driving(track, "driving clip")
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
            frames = animate_person(model, person, motion, mode=request.mode, controls=request.controls)
            for frame, composited in page_frames(frames, person, request, job.notices):
                if crops is not None:
                    frame = dataclasses.replace(frame, driving_crop=next(crops))
                result = composited if composited is not None else _fit_longer_side(frame.result, request.output_size)
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
    notices += [person.finetune_notice] if person.finetune_notice else []
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


def describe_controls(request: RenderRequest) -> str:
    """The motion controls in a few words, for the status line ("motion: lips only ×0.5, closed lips, no blinks")."""
    controls = request.controls
    words = [REGION_LABELS[controls.region] + (f" ×{controls.multiplier:g}" if controls.multiplier != 1 else "")]
    words += ["closed lips"] if controls.closed_lips else []
    words += ["no blinks"] if controls.blinks == "none" else []
    return "motion: " + ", ".join(words)


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
        *([describe_controls(job.request)] if not job.request.controls.is_default() else []),
        f"time: {seconds}; total {sum(outcome.timings.values()):.1f} s",
    ]
    line = " · ".join(parts)
    if outcome.notices:
        line += "\nNote: " + "; ".join(outcome.notices)
    return line

"""The work an animation asks for, within limits, and how long it should take.

A request's work is its fine-tuning steps and its driving frames: a clip's
frames are tracked and rendered, a track's rendered. The app and the animate
CLI bound both the same way: a driving motion is cut to a number of seconds
and resampled to a frame rate (:func:`plan_clip`, :func:`limit_track`), so
neither a long clip nor a 1000 fps track renders more than
``seconds × fps`` frames. :class:`DrivingPlan` says what will be used and
what was cut; :func:`estimate_seconds` turns the work into seconds from
:data:`MEASURED_RATES`, which name the machine they were measured on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from talking_head.face.tracking import LandmarkTrack
from talking_head.media.frame_rate import frame_rate_indices
from talking_head.media.video import probe_video


@dataclass(frozen=True)
class DrivingPlan:
    """What of a driving clip or track is used."""

    is_track: bool  # a landmark track (.npz), not a clip
    duration: float  # seconds in the file
    source_fps: float  # its frame rate
    seconds: float  # seconds used (at most duration)
    fps: float  # frame rate used (at most source_fps)
    frames: int  # frames tracked (a clip) and rendered
    has_audio: bool  # a clip with sound

    @property
    def trimmed(self) -> bool:
        """Only the first :attr:`seconds` are used."""
        return self.duration > self.seconds + 1e-6

    @property
    def resampled(self) -> bool:
        """The motion is used at a lower frame rate than its own."""
        return self.fps < self.source_fps - 1e-9


def _seconds_used(duration: float, max_seconds: float | None) -> float:
    return duration if max_seconds is None else min(duration, max_seconds)


def plan_clip(path: str | os.PathLike, max_seconds: float | None, max_fps: float | None) -> DrivingPlan:
    """The plan for a driving clip: its first ``max_seconds`` at no more than ``max_fps`` (None = no limit).

    The frame count is what ``VideoReader(path, max_seconds, max_fps)`` yields.
    Raises the ``VideoReadError`` family for files that cannot be read.
    """
    whole = probe_video(path)
    used = probe_video(path, max_seconds=max_seconds) if max_seconds is not None else whole
    frames, fps = used.num_frames, used.fps
    if max_fps is not None and fps > max_fps:
        frames, fps = len(frame_rate_indices(frames, fps, max_fps)[0]), float(max_fps)
    return DrivingPlan(
        is_track=False,
        duration=whole.duration,
        source_fps=whole.fps,
        seconds=_seconds_used(whole.duration, max_seconds),
        fps=fps,
        frames=frames,
        has_audio=whole.has_audio,
    )


def limit_track(track: LandmarkTrack, max_seconds: float | None, max_fps: float | None) -> LandmarkTrack:
    """``track`` cut to its first ``max_seconds`` and resampled to at most ``max_fps`` (None = no limit)."""
    if max_seconds is not None and len(track) / track.fps > max_seconds + 1e-6:
        track = track.head(math.ceil(max_seconds * track.fps - 1e-6))
    if max_fps is not None and track.fps > max_fps:
        track = track.resample(max_fps)
    return track


def plan_track(track: LandmarkTrack, max_seconds: float | None, max_fps: float | None) -> DrivingPlan:
    """The plan for a driving track (what :func:`limit_track` keeps of it)."""
    duration = len(track) / track.fps
    used = limit_track(track, max_seconds, max_fps)
    return DrivingPlan(
        is_track=True,
        duration=duration,
        source_fps=track.fps,
        seconds=_seconds_used(duration, max_seconds),
        fps=used.fps,
        frames=len(used),
        has_audio=False,
    )


def plan_driving(path: str | os.PathLike, max_seconds: float | None, max_fps: float | None) -> DrivingPlan:
    """:func:`plan_track` for a ``.npz`` track file, :func:`plan_clip` for anything else."""
    if Path(path).suffix.lower() == ".npz":
        return plan_track(LandmarkTrack.load(path, name=Path(path).name), max_seconds, max_fps)
    return plan_clip(path, max_seconds, max_fps)


@dataclass(frozen=True)
class WorkRates:
    """Seconds per unit of work on one kind of machine: what an estimate is scaled from."""

    machine: str  # where they were measured, with the precision
    cpu_family_model: str  # that CPU's "family F model M" (machine_info), to tell whether this is the same kind
    precision: str  # the precision they were measured in
    setup_s: float  # loading the model and the detector, the photos' landmarks, embedding
    finetune_setup_s: float  # copying G' and its optimizer, once per fine-tuning
    finetune_step_s: float  # one fine-tuning step (one shot)
    track_frame_s: float  # decoding a clip's frame and finding its landmarks (dlib)
    render_frame_s: float  # the warp, G and H.264 encoding of the result and the overlay, per frame


# Measured with the shipped weights (cpu preset, 256²), 2 threads, nothing else running:
# `python scripts/bench_app_click.py --steps 0 20 40` (click to video, astronaut photo, 125 frames:
# 12.8 / 22.1 / 28.0 s) and `python -m talking_head bench` (animate on a 10 s 25 fps clip: 32 s
# with 0 steps).
MEASURED_RATES = WorkRates(
    machine="a 2-core AMD EPYC (Zen 3) in fp32",
    cpu_family_model="family 25 model 1",
    precision="fp32",
    setup_s=2.0,
    finetune_setup_s=3.4,
    finetune_step_s=0.30,
    track_frame_s=0.03,
    render_frame_s=0.09,
)


def estimate_seconds(
    steps: int, plan: DrivingPlan, rates: WorkRates = MEASURED_RATES
) -> dict[str, float]:
    """Seconds per stage (``setup``, ``fine-tuning``, ``landmarks``, ``rendering``) of ``steps`` and ``plan``."""
    return {
        "setup": rates.setup_s,
        "fine-tuning": rates.finetune_setup_s + steps * rates.finetune_step_s if steps > 0 else 0.0,
        "landmarks": 0.0 if plan.is_track else plan.frames * rates.track_frame_s,
        "rendering": plan.frames * rates.render_frame_s,
    }


def same_kind(rates: WorkRates, cpu_family_model: str | None, precisions: tuple[str, ...], device: str) -> bool:
    """Whether ``rates`` were measured on this kind of machine: the same CPU family and model, precision, a CPU."""
    return device == "cpu" and cpu_family_model == rates.cpu_family_model and set(precisions) == {rates.precision}


def format_duration(seconds: float) -> str:
    """``seconds`` in words a reader takes in at once: "under 1 s", "40 s", "3 min 20 s", "2 h 47 min"."""
    if seconds < 0.5:
        return "under 1 s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, seconds = divmod(seconds, 60)
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(round(seconds / 60), 60)  # to the nearest minute
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"

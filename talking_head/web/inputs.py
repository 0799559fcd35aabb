"""Checks of what a user sends, before any work: uploads, photos, the request's settings, the driving motion.

Every refusal is a ``TalkingHeadError`` subclass whose message names the input
as the user named it and says what to do.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from talking_head.animation.overlay import media_kind
from talking_head.animation.pipeline import DEFAULT_SMOOTHING
from talking_head.animation.workload import DrivingPlan, limit_track, plan_clip, plan_track
from talking_head.errors import NoFaceError, TalkingHeadError, UnsupportedFileError
from talking_head.face.landmarks import BACKENDS
from talking_head.face.motion_controls import BLINKS, MAX_MULTIPLIER, REGIONS, MotionControls
from talking_head.face.tracking import LandmarkTrack, check_driving_track
from talking_head.media.images import load_image
from talking_head.web.limits import AppLimits

TRACK_SUFFIX = ".npz"  # a driving motion saved as a landmark track
MODES = ("relative", "absolute")
# A driving clip whose face is found in fewer frames than this is refused:
# the gaps would be held still and the result would freeze.
MIN_DRIVING_FACE_FRACTION = 0.5
MAX_SMOOTHING = 5.0  # largest smoothing of the driving landmarks, Gaussian sigma in frames (the page's slider)
MIN_OUTPUT_SIZE = 16  # smallest longer side of the result, pixels
OUTPUT_SIZES = (256, 384, 512, 768, 1024)  # the page's choices of the result's longer side, pixels


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
        path,
        max_side=limits.max_image_side,
        max_pixels=limits.max_image_pixels,
        name=f"{what} ('{path.name}')",
    )


def photo_label(index: int) -> str:
    """How messages name the photo at ``index``: "photo 1", "photo 2", ..."""
    return f"photo {index + 1}"


def check_photo_count(photos: Sequence[str | os.PathLike], limits: AppLimits) -> None:
    if not photos:
        raise TalkingHeadError("no photo was given; upload at least one photo of the person's face")
    if len(photos) > limits.max_photos:
        raise TalkingHeadError(
            f"{len(photos)} photos were given; the limit is {limits.max_photos}. Remove some photos and try again."
        )


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
    multiplier: float = 1.0  # how strongly the driver's expression moves the face, 0..2 (face/motion_controls)
    region: str = "all"  # what the driver moves: all, lips, eyes, pose (head only), expression (no head pose)
    closed_lips: bool = False  # close the photo's lips before the driver's motion is added
    blinks: str = "driver"  # driver: the driver's blinks; none: the lids never close beyond the photo's

    @property
    def controls(self) -> MotionControls:
        """The motion controls of the request (checked by :func:`check_request` first)."""
        return MotionControls(float(self.multiplier), self.region, bool(self.closed_lips), self.blinks)


def upload_paths(files: Any) -> list[str]:
    """The paths of a file widget's value: none, one path or a list of paths."""
    if not files:
        return []
    if isinstance(files, (str, os.PathLike)):
        return [str(files)]
    return [str(f) for f in files]


def render_request(
    photos: Any,
    driving_clip: str | None,
    driving_motion: str | None,
    steps: float,
    mode: str,
    smoothing: float,
    max_seconds: float | None,
    paste_back: bool,
    output_size: float | None,
    watermark: bool,
    multiplier: float = 1.0,
    region: str = "all",
    closed_lips: bool = False,
    blinks: str = "driver",
) -> RenderRequest:
    """The request of the page's settings: a motion file wins over a clip; 0 seconds or size means none.

    Numbers pass as given: :func:`check_request` refuses 2.5 steps or NaN
    seconds instead of rounding them. Raises ``TalkingHeadError`` when no
    driving clip or motion was chosen.
    """
    driving = driving_motion or driving_clip
    if not driving:
        raise TalkingHeadError(
            "choose a driving motion: click an example motion, upload a clip, or record one"
        )
    return RenderRequest(
        photos=tuple(upload_paths(photos)),
        driving=str(driving),
        steps=steps,
        mode=mode,
        smoothing=smoothing,
        max_seconds=max_seconds or None,
        paste_back=bool(paste_back),
        output_size=output_size or None,
        watermark=bool(watermark),
        multiplier=multiplier,
        region=region,
        closed_lips=bool(closed_lips),
        blinks=blinks,
    )


def _finite_number(value: object) -> float | None:
    """``value`` as a finite float, or None when it is not a number (bool, text, NaN, infinity)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _setting_error(label: str, name: str, value: object, allowed: str, advice: str) -> TalkingHeadError:
    """A refusal naming the setting as the page shows it and as the API calls it, its range and what to do."""
    return TalkingHeadError(f"{label} ({name}={value!r}) must be {allowed}; {advice}")


def check_steps(value: object, limits: AppLimits) -> int:
    steps = _finite_number(value)
    if steps is None or not steps.is_integer() or not 0 <= steps <= limits.max_steps:
        raise _setting_error(
            "fine-tuning steps",
            "steps",
            value,
            f"a whole number from 0 to {limits.max_steps} on this server",
            "0 uses the model as it is (fastest); more steps fit it to the person and take longer",
        )
    return int(steps)


def _check_smoothing(value: object) -> float:
    smoothing = _finite_number(value)
    if smoothing is None or not 0 <= smoothing <= MAX_SMOOTHING:
        raise _setting_error(
            "smoothing of the driving landmarks",
            "smoothing",
            value,
            f"a number of frames from 0 to {MAX_SMOOTHING:g}",
            "0 turns it off, 1 is the default",
        )
    return smoothing


def _check_seconds(value: object, limits: AppLimits) -> None:
    seconds = _finite_number(value)
    if seconds is None or seconds <= 0:
        raise _setting_error(
            "seconds of the driving motion to use",
            "max_seconds",
            value,
            "a number of seconds above 0",
            f"a longer value than this server's limit ({limits.max_driving_seconds:g} s) is fine: "
            "the motion is trimmed to the limit",
        )


def _check_output_size(value: object, limits: AppLimits) -> int:
    size = _finite_number(value)
    if size is None or not size.is_integer() or not MIN_OUTPUT_SIZE <= size <= limits.max_output_size:
        raise _setting_error(
            "output size",
            "output_size",
            value,
            f"0 (the model's size) or a whole number of pixels from {MIN_OUTPUT_SIZE} to {limits.max_output_size}",
            f"the page offers {', '.join(str(size) for size in OUTPUT_SIZES if size <= limits.max_output_size)}",
        )
    return int(size)


# How the page names each choice of region and blinks (the API takes the values).
REGION_LABELS: dict[str, str] = {
    "all": "all",
    "lips": "lips only",
    "eyes": "eyes only",
    "pose": "head pose only",
    "expression": "expression without head pose",
}
BLINK_LABELS: dict[str, str] = {"driver": "the driver's", "none": "none"}


def _check_controls(request: RenderRequest) -> float:
    """Refuse a multiplier, region or blinks value the motion controls do not know; the multiplier as a float."""
    multiplier = _finite_number(request.multiplier)
    if multiplier is None or not 0 <= multiplier <= MAX_MULTIPLIER:
        raise _setting_error(
            "motion multiplier",
            "multiplier",
            request.multiplier,
            f"a number from 0 to {MAX_MULTIPLIER:g}",
            "0 keeps the photo's own expression (the head still moves), 1 is the driver's, 2 exaggerates it",
        )
    if request.region not in REGIONS:
        raise _setting_error(
            "what the driver moves",
            "region",
            request.region,
            f"one of {', '.join(repr(r) for r in REGIONS)}",
            "; ".join(f"{value}: {label}" for value, label in REGION_LABELS.items()),
        )
    if request.blinks not in BLINKS:
        raise _setting_error(
            "blinks", "blinks", request.blinks, "'driver' or 'none'", "none keeps the eyes from closing"
        )
    return multiplier


def check_clip_seconds(value: object, limit: float) -> float:
    """The landmarks tab's seconds of a clip to process: a number above 0, trimmed to ``limit``."""
    seconds = _finite_number(value)
    if seconds is None or seconds <= 0:
        raise _setting_error(
            "clip seconds to process",
            "max_seconds",
            value,
            "a number of seconds above 0",
            f"at most {limit:g} s of a clip are processed; a longer value is trimmed to that",
        )
    return min(seconds, limit)


def check_backend(value: object) -> str:
    """The landmarks tab's detector: one of :data:`~talking_head.face.landmarks.BACKENDS`."""
    if value not in BACKENDS:
        raise _setting_error(
            "landmark detector",
            "backend",
            value,
            f"one of {', '.join(BACKENDS)}",
            "auto uses FAN when its weights load, else dlib",
        )
    return str(value)


def check_request(request: RenderRequest, limits: AppLimits) -> RenderRequest:
    """Check every setting (before any work); the request with whole-number steps.

    Each refusal names the setting as the page labels it and as the API
    calls it, with its range. ``max_seconds`` above the limit is no error:
    the motion is trimmed to ``limits.max_driving_seconds``, with a notice.
    """
    check_photo_count(request.photos, limits)
    if request.mode not in MODES:
        raise _setting_error(
            "motion",
            "mode",
            request.mode,
            "'relative' or 'absolute'",
            "relative keeps the person's face shape, absolute uses the driver's landmarks",
        )
    steps = check_steps(request.steps, limits)
    smoothing = _check_smoothing(request.smoothing)
    if request.max_seconds is not None:
        _check_seconds(request.max_seconds, limits)
    output_size = None if request.output_size is None else _check_output_size(request.output_size, limits)
    multiplier = _check_controls(request)
    return dataclasses.replace(
        request, steps=steps, smoothing=float(smoothing), output_size=output_size, multiplier=multiplier
    )


def check_usable_driving(track: LandmarkTrack, label: str) -> None:
    """Refuse a driving track that has no frames or frame rate, or whose face is missing in most frames."""
    if len(track) == 0:
        raise UnsupportedFileError(f"the {label} has no frames; use a clip of at least one second")
    check_driving_track(track, f"the {label}")
    if track.face_fraction < MIN_DRIVING_FACE_FRACTION:
        raise NoFaceError(
            f"no face was found in most frames of the {label} (found in {100 * track.face_fraction:.0f}% of "
            f"{len(track)} frames). Use a clip where one face is clearly visible most of the time."
        )


def _limit_note(seconds: float, limits: AppLimits) -> str:
    return " (this server's limit)" if seconds >= limits.max_driving_seconds else ""


def seconds_to_use(request: RenderRequest, limits: AppLimits) -> float:
    """Seconds of the driving motion to use: ``request.max_seconds``, at most the limit (longer asks are trimmed)."""
    wanted = (
        request.max_seconds if request.max_seconds and request.max_seconds > 0 else limits.max_driving_seconds
    )
    return min(float(wanted), limits.max_driving_seconds)


def _plan_notices(plan: DrivingPlan, label: str, limits: AppLimits) -> list[str]:
    """What the user should know about a plan: the motion was trimmed, or resampled."""
    notices = []
    if plan.trimmed:
        notices.append(
            f"the {label} is {plan.duration:.1f} s long; the first {plan.seconds:g} s were used"
            f"{_limit_note(plan.seconds, limits)}"
        )
    if plan.resampled:
        notices.append(f"the {label} is at {plan.source_fps:g} fps; it was resampled to {plan.fps:g} fps")
    return notices


def load_driving_track(path: Path, seconds: float, limits: AppLimits, notices: list[str]) -> LandmarkTrack:
    """A saved motion, checked, cut to ``seconds`` and resampled to ``limits.max_fps`` (with notices)."""
    label = f"the driving motion ('{path.name}')"
    track = LandmarkTrack.load(path, name=label)
    check_driving_track(track, label)
    notices += _plan_notices(plan_track(track, seconds, limits.max_fps), "driving motion", limits)
    return limit_track(track, seconds, limits.max_fps).head(limits.max_frames)


def probe_driving_clip(path: Path, seconds: float, limits: AppLimits, notices: list[str]) -> tuple[int, bool]:
    """Frames that will be tracked from a driving clip and whether it has audio (notices when trimmed or resampled)."""
    if media_kind(path) != "clip":
        raise UnsupportedFileError(
            f"the driving clip ('{path.name}') is a photo; use a video clip (MP4, MOV, WebM, ...) or a motion (.npz)"
        )
    plan = plan_clip(path, seconds, limits.max_fps)
    notices += _plan_notices(plan, "driving clip", limits)
    return min(plan.frames, limits.max_frames), plan.has_audio

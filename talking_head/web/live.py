"""The Live tab's work, without Gradio: prepare the person once, then one camera frame at a time.

:func:`prepare_live` checks and embeds the photos (and fine-tunes when steps
are asked for), and returns a :class:`~talking_head.live.session.LiveSession`
that the page keeps for the visitor; :func:`live_frame` turns each webcam
frame into the frame to show and a status line (frame rate, latency, seconds
left, or why a frame is held). Nothing here raises for a lost face or a
missing session: the stream goes on and the status says what to do.

:func:`live_unavailable` says why live mode is not offered: on ZeroGPU a GPU
is lent per call, for seconds, after a queue, and a live session needs 15–25
renders a second for a minute.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talking_head.animation.compositing import NativeCompositor
from talking_head.animation.finetune import FinetuneConfig, finetune_person
from talking_head.animation.person import embed_person
from talking_head.errors import TalkingHeadError
from talking_head.face.detection import LandmarkDetector
from talking_head.face.motion_controls import MotionControls
from talking_head.live.render import FrameRenderer
from talking_head.live.session import LiveSession
from talking_head.nets.model import TalkingHeadModel
from talking_head.web.inputs import (
    REGION_LABELS,
    check_photo_count,
    check_steps,
    load_photo,
    photo_label,
    upload_paths,
)
from talking_head.web.limits import AppLimits

logger = logging.getLogger(__name__)

ZERO_GPU_REASON = (
    "Live mode is not offered on this Space: it runs on ZeroGPU, which lends a GPU per request, for "
    "seconds at a time and after a queue, while a live session needs 15–25 renders a second for a "
    "minute. Run the app on a CPU or a dedicated GPU to use it (see the README: Live tab)."
)
LIVE_OUTPUTS = ("crop", "photo")  # G's 256² face crop, or the whole photo with only the head moving
LIVE_PHOTO_LIMIT = 640  # the whole photo's longer side in live mode, pixels (compositing costs per pixel)
NO_SESSION = "Upload a photo and press Prepare first; then start the camera."
WAITING = "Waiting for the camera…"


def live_unavailable(environ: Mapping[str, str] | None = None) -> str | None:
    """Why live mode is not offered here (a sentence for the page), or ``None`` when it is."""
    environ = os.environ if environ is None else environ
    if environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true"):
        return ZERO_GPU_REASON
    return None


def live_controls(
    multiplier: object = 1.0, region: object = "all", closed_lips: object = False, blinks: object = "driver"
) -> MotionControls:
    """The motion controls of the Live tab's widgets; ``TalkingHeadError`` naming the one that is off."""
    try:
        return MotionControls(float(multiplier), str(region), bool(closed_lips), str(blinks))
    except (TypeError, ValueError) as error:
        raise TalkingHeadError(f"Motion controls: {error}") from None


def set_live_controls(session: LiveSession | None, controls: MotionControls) -> str:
    """Apply ``controls`` to a running session from its next frame on; a status line."""
    if session is None:
        return NO_SESSION
    session.controls = None if controls.is_default() else controls
    if controls.is_default():
        return "Motion controls: the driver's motion as it is."
    words = [REGION_LABELS[controls.region], f"multiplier {controls.multiplier:g}"]
    words += ["from closed lips"] * controls.closed_lips + ["no blinks"] * (controls.blinks == "none")
    return "Motion controls: " + ", ".join(words) + " (from the next frame)."


def prepare_live(
    model: TalkingHeadModel,
    photos: Any,
    steps: object,
    detector: LandmarkDetector,
    limits: AppLimits,
    watermark: bool = True,
    controls: MotionControls | None = None,
    output: str = "crop",
) -> tuple[LiveSession, str]:
    """Embed (and fine-tune) the person of ``photos`` for a live session: the session and a status line.

    Raises ``TalkingHeadError`` for no photo, too many, one that is not an image, or no usable face.
    """
    start = time.perf_counter()
    paths = upload_paths(photos)
    check_photo_count(paths, limits)
    steps = check_steps(steps, limits)
    if output not in LIVE_OUTPUTS:
        raise TalkingHeadError(f"the live output must be one of {', '.join(LIVE_OUTPUTS)}, got {output!r}")
    images = [load_photo(path, photo_label(i), limits) for i, path in enumerate(paths)]
    names = [f"{photo_label(i)} ({Path(p).name})" for i, p in enumerate(paths)]
    person = embed_person(model, images, detector, names=names)
    if steps:
        torch.manual_seed(0)
        person = finetune_person(model, person, steps, config=FinetuneConfig(seed=0))
    renderer = FrameRenderer(model, person)
    renderer(person.source_landmarks)  # the first render's set-up happens here, not in the first live frame
    controls = None if controls is None or controls.is_default() else controls
    compositor = NativeCompositor.for_person(person, "photo", LIVE_PHOTO_LIMIT) if output == "photo" else None
    session = LiveSession(
        renderer,
        person,
        detector,
        controls=controls,
        limit_s=limits.live_seconds,
        watermark=watermark,
        compositor=compositor,
    )
    used = sum(report.usable for report in person.reports)
    skipped = [f"{r.name}: {r.reason}" for r in person.reports if not r.usable]
    status = (
        f"Ready: {used} photo{'s' if used != 1 else ''}, {steps} fine-tuning steps, {_shown(session)}, prepared in "
        f"{time.perf_counter() - start:.1f} s; rendering with {renderer.runtime.describe(renderer.precision)}. "
        f"Start the camera: your first frame is the neutral pose; sessions last {limits.live_seconds:g} s."
    )
    if skipped:
        status += " Not used: " + "; ".join(skipped) + "."
    if person.finetune_notice:
        status += f" Note: {person.finetune_notice}."
    return session, status


def _shown(session: LiveSession) -> str:
    if session.compositor is None:
        return "the face at 256×256"
    height, width = session.compositor.still.shape[:2]
    return f"the whole photo at {width}×{height}"


def live_frame(session: LiveSession | None, frame: np.ndarray | None) -> tuple[np.ndarray | None, str]:
    """The frame to show for one webcam ``frame`` and the status line."""
    if session is None:
        return None, NO_SESSION
    if frame is None:
        return None, WAITING
    try:
        shown = session.step(np.ascontiguousarray(np.atleast_3d(frame)[..., :3]))
    except Exception as error:  # one bad frame must not end the visitor's stream
        logger.exception("live frame failed")
        return (
            session.last_image,
            f"This camera frame could not be rendered ({type(error).__name__}); holding the last frame.",
        )
    return shown.image, shown.status

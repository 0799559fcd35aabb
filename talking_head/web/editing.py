"""The Edit tab's work, without Gradio: check a request, embed the photo once (cached), render the edited still.

The page and the ``/edit`` API endpoint call :func:`edit_request` with the
photo's path and one amount per named edit (:mod:`talking_head.face.edits`);
it returns the edited photo, the rendered face with the edited landmarks
drawn on it, and a status line. Amounts are checked here, with messages that
name the slider, because an API caller's values reach the handler as sent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from talking_head.animation.editing import PersonCache, landmarks_beside, render_edit
from talking_head.animation.pipeline import mark_synthetic
from talking_head.errors import TalkingHeadError
from talking_head.face.detection import LandmarkDetector
from talking_head.face.edits import EDIT_NAMES, EDIT_RANGES, EditSettings
from talking_head.nets.model import TalkingHeadModel
from talking_head.web.limits import AppLimits

# What each slider is called on the page, in the order of EditSettings' fields.
EDIT_LABELS: dict[str, str] = {
    "mouth_open": "Mouth open (-1 closed … 1 wide open)",
    "smile": "Smile",
    "pout": "Lip pout",
    "left_eye": "Left eye (as seen; -1 closed … 1 wide)",
    "right_eye": "Right eye (as seen; -1 closed … 1 wide)",
    "brows": "Eyebrows (down … up)",
    "roll": "Head roll (degrees)",
    "yaw": "Head yaw (small turn, 2-D approximation)",
    "pitch": "Head pitch (small nod, 2-D approximation)",
}
_CACHE = PersonCache()  # the page's embedded photos, shared by every request of the process


@dataclass(frozen=True)
class EditOutcome:
    """What the Edit tab shows."""

    image: np.ndarray  # the edited photo at its size (H, W, 3) uint8
    panel: np.ndarray  # the rendered face with the edited landmarks drawn on it (S, S, 3) uint8
    status: str  # one line: what was rendered and how long it took


def check_edit_values(values: dict[str, Any]) -> EditSettings:
    """An :class:`EditSettings` from the sliders' values; ``TalkingHeadError`` naming the slider when one is off."""
    checked = {}
    for name in EDIT_NAMES:
        value = values.get(name, 0.0)
        low, high = EDIT_RANGES[name]
        label = EDIT_LABELS[name].split(" (")[0]
        try:
            number = float(0.0 if value is None else value)
        except (TypeError, ValueError):
            raise TalkingHeadError(f"{label} must be a number between {low:g} and {high:g}, got {value!r}") from None
        if not (math.isfinite(number) and low <= number <= high):
            raise TalkingHeadError(f"{label} must be between {low:g} and {high:g}, got {value!r}; move the slider back into range")
        checked[name] = number
    return EditSettings(**checked)


def edit_request(
    model: TalkingHeadModel,
    photo: str | None,
    values: dict[str, Any],
    detector: LandmarkDetector,
    limits: AppLimits,
    watermark: bool = True,
    cache: PersonCache | None = None,
) -> EditOutcome:
    """Render ``photo`` edited by ``values`` (``{edit name: amount}``), the person embedded once per photo.

    Raises ``TalkingHeadError`` for a missing photo, an unusable face or an amount out of range.
    """
    if not photo:
        raise TalkingHeadError("upload a photo of a face first")
    settings = check_edit_values(values)
    cache = cache if cache is not None else _CACHE
    start = time.perf_counter()
    hits = cache.hits
    person = cache.person(
        model, photo, detector, max_side=limits.max_image_side, max_pixels=int(limits.max_image_megapixels * 1e6)
    )
    embedded = "" if cache.hits > hits else f"; photo embedded in {time.perf_counter() - start:.1f} s (once per photo)"
    result = render_edit(model, person, settings)
    image = mark_synthetic(result.image) if watermark else result.image
    changed = [name for name in EDIT_NAMES if getattr(settings, name)]
    what = ", ".join(f"{name.replace('_', ' ')} {getattr(settings, name):g}" for name in changed) or "no edit"
    height, width = image.shape[:2]
    status = f"{what}: {width}×{height} still rendered in {result.seconds * 1000:.0f} ms{embedded}"
    return EditOutcome(image=image, panel=landmarks_beside(result), status=status)

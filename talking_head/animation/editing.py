"""Expression editing: a photo → its person (embedded once, cached) → one edited still at the photo's size.

The photo's own landmarks are moved by named edits
(:mod:`talking_head.face.edits`), G renders the face for the moved landmarks
(the warp of the photo to them, refined by G, for a warp-guided model), an
eye that an edit closes is painted over with the photo's own lid skin
(:mod:`talking_head.face.lids`: G paints no lid), and the rendered crop is
pasted back into the photo with feathered edges (``framing.paste_back``), so
the still has the photo's resolution. Embedding (landmark detection and E)
costs more than one render, so :class:`PersonCache` keeps the last few
embedded photos: moving a slider re-renders only.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from talking_head.animation.overlay import draw_landmarks
from talking_head.animation.person import Person, embed_person
from talking_head.animation.rendering import rendered_batches, rendering_setup
from talking_head.face.detection import LandmarkDetector
from talking_head.face.edits import EditSettings, apply_edits
from talking_head.face.framing import paste_back, points_from_crop
from talking_head.face.landmarks import get_detector
from talking_head.face.lids import paint_closed_lids
from talking_head.media.images import DEFAULT_MAX_PIXELS, load_image
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.precision import Precision
from talking_head.nets.runtime import Runtime

CACHED_PERSONS = 4  # embedded photos kept by a PersonCache
PANEL_SIZE = 256  # smallest side of the landmark panel (a small model's crop is enlarged for it)


@dataclass(frozen=True)
class EditResult:
    """One edited still and what it was made from."""

    image: np.ndarray  # the edited photo at the photo's size (H, W, 3) uint8
    crop: np.ndarray  # G's output in the face crop (S, S, 3) uint8
    landmarks: np.ndarray  # the edited landmarks in crop pixels (68, 2)
    photo_landmarks: np.ndarray  # the edited landmarks in photo pixels (68, 2)
    seconds: float  # wall time of the render and the paste (not of choosing the runtime)


def edited_landmarks(person: Person, settings: EditSettings) -> np.ndarray:
    """The person's first usable photo's landmarks (crop pixels) moved by ``settings``, ``(68, 2)``."""
    return apply_edits(person.source_landmarks, settings)


def render_edit(
    model: TalkingHeadModel,
    person: Person,
    settings: EditSettings,
    precision: str | Precision | None = None,
    runtime: str | Runtime | None = None,
) -> EditResult:
    """Render ``person`` with its own landmarks moved by ``settings``, pasted into its photo.

    ``precision`` and ``runtime`` as in :func:`talking_head.animation.pipeline.render_landmarks`.
    """
    precision, runtime = rendering_setup(model, precision, runtime)  # may measure, once per process
    start = time.perf_counter()
    points = edited_landmarks(person, settings)
    batches = rendered_batches(model, person, points[None], 1, precision, runtime)
    crop = next(iter(batches)).results[0]
    if settings.left_eye < 0 or settings.right_eye < 0:  # G paints no lid: the photo's lid skin does
        crop = paint_closed_lids(crop, person.shots[0], points, person.source_landmarks)
    image = paste_back(person.source_image, crop, person.source_box)
    in_photo = points_from_crop(points, person.source_box, crop.shape[0]).astype(np.float32)
    return EditResult(image, crop, points, in_photo, time.perf_counter() - start)


def landmarks_beside(result: EditResult, min_size: int = PANEL_SIZE) -> np.ndarray:
    """The rendered crop with the edited landmarks drawn on it (what G was asked for), at least ``min_size`` px."""
    size = result.crop.shape[0]
    scale = max(1.0, min_size / size)
    crop = cv2.resize(result.crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else result.crop
    return draw_landmarks(crop, result.landmarks * scale)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-1 of a file's bytes: the cache key of a photo, whatever its name."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PersonCache:
    """The last ``size`` photos embedded, by their bytes: a slider move re-renders without re-embedding."""

    def __init__(self, size: int = CACHED_PERSONS) -> None:
        self.size = size
        self._persons: OrderedDict[tuple[str, int, int | None], Person] = OrderedDict()
        self.hits = 0  # look-ups answered from the cache (for tests and logs)

    def person(
        self,
        model: TalkingHeadModel,
        photo: str | os.PathLike,
        detector: LandmarkDetector,
        max_side: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Person:
        """The embedded person of ``photo`` (downscaled to ``max_side``) for ``model``: cached, or embedded now."""
        key = (file_digest(photo), id(model), max_side)
        if key in self._persons:
            self._persons.move_to_end(key)
            self.hits += 1
            return self._persons[key]
        name = Path(photo).name
        image = load_image(photo, max_side=max_side, max_pixels=max_pixels, name=name)
        person = embed_person(model, [image], detector, names=[name])
        self._persons[key] = person
        while len(self._persons) > self.size:
            self._persons.popitem(last=False)
        return person


def edit_photo(
    model: TalkingHeadModel,
    photo: str | os.PathLike,
    settings: EditSettings,
    detector: LandmarkDetector | None = None,
    cache: PersonCache | None = None,
    precision: str | Precision | None = None,
    runtime: str | Runtime | None = None,
) -> EditResult:
    """Edit one photo's expression: embed it (or take it from ``cache``) and render the edited still.

    Raises ``NoFaceError`` when the photo has no usable face.
    """
    detector = detector or get_detector()
    person = (cache or PersonCache(1)).person(model, photo, detector)
    return render_edit(model, person, settings, precision=precision, runtime=runtime)

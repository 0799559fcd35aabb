"""68-point face landmarks (iBUG 300-W order) from one image, with two backends.

- ``FanDetector``: face-alignment's FAN 2D network with its S3FD face detector,
  the detector used by the paper. Its weights are downloaded on first use
  (internet needed once); without them construction raises ``WeightsError``.
- ``DlibDetector``: dlib's HOG frontal face detector and 68-point shape
  predictor, with the model file from the ``face_recognition_models`` package.
  Fully offline. (The 68-point model was trained on iBUG 300-W: research use.)

Both return a ``FaceLandmarks`` in the pixel coordinates of the input image, so
everything downstream is backend-agnostic. ``get_detector`` (here) picks and
caches one detector per backend and device; never build a detector per frame.
The backends are :mod:`talking_head.face.fan_detector` and
:mod:`talking_head.face.dlib_detector`; what they share (``FaceLandmarks``, the
``LandmarkDetector`` protocol, ``select_faces``) is :mod:`talking_head.face.detection`.

``detect(image, box_hint=box)`` is the tracking path: it looks for the face
only near ``box`` (a box returned for a previous frame), which is several times
cheaper than a full search, and raises ``NoFaceError`` when the face is not there.
"""

from __future__ import annotations

import logging
import os
import threading

from talking_head.errors import WeightsError
from talking_head.face.detection import FaceLandmarks, LandmarkDetector, resolve_device
from talking_head.face.dlib_detector import DlibDetector
from talking_head.face.fan_detector import FanDetector
from talking_head.media.images import ImageSource

logger = logging.getLogger("talking_head.face.landmarks")
BACKENDS = ("auto", "fan", "dlib")
ENV_BACKEND = "TALKING_HEAD_LANDMARKS"
_cache: dict[tuple[str, str], LandmarkDetector] = {}
_auto_choice: dict[str, str] = {}  # device -> backend picked by "auto" (decided once, logged once)
_cache_lock = threading.Lock()


def resolve_backend_name(backend: str = "auto") -> str:
    """``backend`` if explicit, else ``$TALKING_HEAD_LANDMARKS``, else ``"auto"`` (validated)."""
    name = (backend or "auto").strip().lower()
    source = "backend"
    if name == "auto":
        name = os.environ.get(ENV_BACKEND, "auto").strip().lower() or "auto"
        source = ENV_BACKEND
    if name not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}; got {name!r}")
    return name


def get_detector(backend: str = "auto", device: str | None = None) -> LandmarkDetector:
    """The cached landmark detector for ``backend`` ("auto", "fan" or "dlib") and ``device``.

    "auto" (or the env var ``TALKING_HEAD_LANDMARKS`` when ``backend`` is "auto")
    uses FAN when its weights load and dlib otherwise, logging the choice once.
    Raises ``WeightsError`` when an explicitly requested backend cannot load.
    """
    name = resolve_backend_name(backend)
    with _cache_lock:
        if name != "auto":
            return _cached(name, device)
        key = resolve_device(device)
        if key not in _auto_choice:
            _auto_choice[key] = _choose_automatically(key)
        return _cached(_auto_choice[key], key)


def _cached(name: str, device: str | None) -> LandmarkDetector:
    key = (name, "cpu" if name == "dlib" else resolve_device(device))
    if key not in _cache:
        _cache[key] = DlibDetector() if name == "dlib" else FanDetector(device=key[1])
    return _cache[key]


def _choose_automatically(device: str) -> str:
    try:
        _cached("fan", device)
    except WeightsError as error:
        # One short line; why FAN did not load (and how to get it) is there with --verbose.
        logger.info("landmarks: dlib (FAN weights not available)")
        logger.debug("FAN unavailable: %s", error)
        return "dlib"
    logger.info("landmarks: FAN on %s", device)
    return "fan"


def clear_detector_cache() -> None:
    """Forget cached detectors and the automatic choice (tests; after installing weights)."""
    with _cache_lock:
        _cache.clear()
        _auto_choice.clear()


def detect_landmarks(image: ImageSource, backend: str = "auto") -> FaceLandmarks:
    """Landmarks of the largest face in ``image`` with the cached detector for ``backend``."""
    return get_detector(backend).detect(image)

"""68-point face landmarks (iBUG 300-W order) from one image, with two backends.

- ``FanDetector``: face-alignment's FAN 2D network with its S3FD face detector,
  the detector used by the paper. Its weights are downloaded on first use
  (internet needed once); without them construction raises ``WeightsError``.
- ``DlibDetector``: dlib's HOG frontal face detector and 68-point shape
  predictor, with the model file from the ``face_recognition_models`` package.
  Fully offline. (The 68-point model was trained on iBUG 300-W: research use.)

Both return a ``FaceLandmarks`` in the pixel coordinates of the input image, so
everything downstream is backend-agnostic. ``get_detector`` picks and caches
one detector per backend and device; never build a detector per frame.

``detect(image, box_hint=box)`` is the tracking path: it looks for the face
only near ``box`` (a box returned for a previous frame), which is several times
cheaper than a full search, and raises ``NoFaceError`` when the face is not there.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from talking_head.errors import NoFaceError, WeightsError
from talking_head.media.images import ImageSource, array_to_rgb, load_image

logger = logging.getLogger("talking_head.face.landmarks")

NUM_LANDMARKS = 68
BACKENDS = ("auto", "fan", "dlib")
ENV_BACKEND = "TALKING_HEAD_LANDMARKS"

NO_FACE_MESSAGE = (
    "No face was found in the image. Use a photo where one face is clearly visible, "
    "roughly facing the camera and at least about 80 pixels wide."
)

# face-alignment 1.5.0 downloads these on first use; we fetch them ourselves with a
# timeout (torch.hub's downloader has none and can hang forever without internet).
FAN_WEIGHT_URLS = {
    "fan": "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
    "s3fd": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
}


@dataclass(frozen=True)
class FaceLandmarks:
    """Landmarks of the one face chosen in an image (the largest one)."""

    points: np.ndarray  # (68, 2) float32, pixel (x, y) in the input image, iBUG order
    box: np.ndarray  # (4,) float32 x0, y0, x1, y1: the face box in the detector's own convention
    confidence: float  # in (0, 1): detector probability (FAN) or squashed detector margin (dlib)
    num_faces: int  # faces found in the searched area (the whole image unless box_hint was given)
    backend: str  # "fan" or "dlib"


@runtime_checkable
class LandmarkDetector(Protocol):
    """What every landmark backend provides."""

    name: str

    def detect(self, image: ImageSource, box_hint: np.ndarray | None = None) -> FaceLandmarks:
        """Landmarks of the largest face; near ``box_hint`` only when given. Raises ``NoFaceError``."""
        ...


# --------------------------------------------------------------------------- model files


def dlib_model_path(name: str) -> Path:
    """Path of a dlib model file shipped by the ``face_recognition_models`` package.

    The package is located by file path, not imported: its ``__init__`` needs
    ``pkg_resources``, which recent setuptools no longer provide.
    ``name`` is e.g. ``"shape_predictor_68_face_landmarks.dat"`` or
    ``"dlib_face_recognition_resnet_model_v1.dat"`` (the 128-d face descriptor).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "models" / name
        if path.is_file():
            return path
    raise WeightsError(
        f"The dlib model file {name} was not found. Install it with "
        "`pip install face_recognition_models` (see requirements.txt)."
    )


def fan_weights_dir() -> Path:
    """Where face-alignment looks for its cached weights: ``<torch hub dir>/checkpoints``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def ensure_fan_weights(timeout: float = 30.0) -> dict[str, Path]:
    """Return the local paths of the FAN and S3FD weights, downloading missing ones.

    No download is attempted when ``HF_HUB_OFFLINE`` is set (the usual offline
    switch of this project). Raises ``WeightsError`` when a file is missing and
    cannot be fetched within ``timeout`` seconds per network operation.
    """
    folder = fan_weights_dir()
    paths = {key: folder / url.rsplit("/", 1)[1] for key, url in FAN_WEIGHT_URLS.items()}
    for key, path in paths.items():
        if not path.is_file():
            _download(FAN_WEIGHT_URLS[key], path, timeout)
    return paths


def _download(url: str, path: Path, timeout: float) -> None:
    """Fetch ``url`` into ``path`` atomically; ``WeightsError`` on any failure."""
    hint = (
        f"Connect to the internet once so that it can be downloaded, or copy {path.name} into "
        f"{path.parent}, or use the offline dlib backend (TALKING_HEAD_LANDMARKS=dlib)."
    )
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise WeightsError(f"FAN weights {path.name} are not cached and HF_HUB_OFFLINE is set. {hint}")
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(partial, path)
    except (OSError, ValueError) as error:  # URLError and socket timeouts are OSErrors
        partial.unlink(missing_ok=True)
        raise WeightsError(f"Could not download the FAN weights from {url} ({error}). {hint}") from error


# --------------------------------------------------------------------------- helpers


def _to_rgb(image: ImageSource) -> np.ndarray:
    """RGB uint8 (H, W, 3) from any accepted input, without copying RGB uint8 arrays."""
    if isinstance(image, np.ndarray):
        return array_to_rgb(image)
    return load_image(image)


def _downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscaled copy for face search and the factor that maps it back (coords / factor)."""
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return rgb, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


# Which detections count as faces (select_faces). dlib's HOG detector reports
# weak false detections with margins a tenth of the real face's (e.g. on the
# astronaut's suit in a JPEG: 0.12 next to the face's 1.16), while two real
# faces in one photo score within a factor of ~2 of each other. Faces much
# smaller than the largest (posters, passers-by far behind) are not counted.
DLIB_MIN_RELATIVE_SCORE = 0.5  # a dlib detection below this fraction of the strongest margin is dropped
FAN_MIN_SCORE = 0.8  # an S3FD detection below this probability is dropped (unless it is the only one)
MIN_RELATIVE_FACE_SIZE = 0.4  # a face whose box side is below this fraction of the largest is not counted


def select_faces(
    boxes: np.ndarray,
    min_score: float = -math.inf,
    min_relative_score: float = 0.0,
    min_relative_size: float = MIN_RELATIVE_FACE_SIZE,
) -> np.ndarray:
    """The detections ``(K, 5)`` (x0, y0, x1, y1, score) that count as faces.

    A detection stays when its score is at least ``min_score`` and at least
    ``min_relative_score`` times the strongest score, and its box side is at
    least ``min_relative_size`` times the largest remaining one. The strongest
    detection always stays, so a lone weak face is still found.
    """
    if len(boxes) <= 1:
        return boxes
    scores = boxes[:, 4]
    best = float(scores.max())
    keep = scores >= min_score
    if best > 0:
        keep &= scores >= min_relative_score * best
    keep[int(np.argmax(scores))] = True
    kept = boxes[keep]
    sides = np.sqrt(np.clip((kept[:, 2] - kept[:, 0]) * (kept[:, 3] - kept[:, 1]), 0, None))
    return kept[sides >= min_relative_size * sides.max()]


def _largest(boxes: np.ndarray) -> int:
    """Index of the box with the largest area; boxes (K, 4+)."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(np.argmax(areas))


def _box_of_points(points: np.ndarray) -> np.ndarray:
    """Tight box (4,) around points (N, 2)."""
    return np.concatenate([points.min(axis=0), points.max(axis=0)]).astype(np.float32)


def _check_hint(box_hint: np.ndarray | None) -> np.ndarray | None:
    if box_hint is None:
        return None
    box = np.asarray(box_hint, dtype=np.float32).reshape(-1)[:4]
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box_hint must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box_hint!r}")
    return box


def _resolve_device(device: str | None) -> str:
    if device is not None:
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- dlib

_HOG_WINDOW_PX = 80  # dlib's frontal detector finds faces of at least this size
_PYRAMID_STEP = 1.2  # dlib's pyramid_down<6>: each level is 5/6 of the previous one


@functools.lru_cache(maxsize=1)
def _dlib_models():  # -> (dlib.fhog_object_detector, dlib.shape_predictor)
    """Load dlib's detector and 68-point predictor once per process (about 2 s each)."""
    import dlib

    predictor_path = dlib_model_path("shape_predictor_68_face_landmarks.dat")
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path))


class DlibDetector:
    """dlib HOG face detector + 68-point shape predictor (CPU, offline).

    Full search runs on a copy downscaled to ``detect_max_side``; if nothing is
    found it retries with one 2x pyramid upsampling (finds faces down to ~40 px
    at that scale). The shape predictor always runs at full resolution.
    With ``box_hint`` the detector only scans a window around the hint, rescaled
    so the face is ``hint_face_px`` wide: a few ms instead of tens.
    """

    name = "dlib"

    def __init__(self, detect_max_side: int = 640, hint_margin: float = 0.4, hint_face_px: int = 90) -> None:
        self.detect_max_side = detect_max_side  # longer side of the copy searched for faces
        self.hint_margin = hint_margin  # window around box_hint, as a fraction of the box size per side
        self.hint_face_px = hint_face_px  # face width the hint window is rescaled to (HOG window: 80 px)
        self._detector, self._predictor = _dlib_models()
        self._lock = threading.Lock()  # dlib objects are not documented as thread-safe (Gradio workers)

    def detect(self, image: ImageSource, box_hint: np.ndarray | None = None) -> FaceLandmarks:
        """Landmarks of the largest face in ``image`` (near ``box_hint`` if given)."""
        rgb = _to_rgb(image)
        hint = _check_hint(box_hint)
        with self._lock:
            boxes = self._search_full(rgb) if hint is None else self._search_near(rgb, hint)
            boxes = select_faces(boxes, min_relative_score=DLIB_MIN_RELATIVE_SCORE)
            if len(boxes) == 0:
                raise NoFaceError(NO_FACE_MESSAGE)
            best = boxes[_largest(boxes)]
            points = self._predict(rgb, best[:4])
        return FaceLandmarks(
            points=points,
            box=best[:4].astype(np.float32),
            # dlib scores are SVM margins (0 = decision threshold): squash to (0, 1).
            confidence=float(1.0 / (1.0 + math.exp(-float(best[4])))),
            num_faces=len(boxes),
            backend=self.name,
        )

    def _run(self, rgb: np.ndarray, upsample: int) -> np.ndarray:
        """Detector boxes (K, 5): x0, y0, x1, y1, score in ``rgb`` coordinates."""
        rects, scores, _ = self._detector.run(rgb, upsample, 0.0)
        return np.array(
            [(r.left(), r.top(), r.right() + 1, r.bottom() + 1, s) for r, s in zip(rects, scores)],
            dtype=np.float64,
        ).reshape(-1, 5)

    def _search_full(self, rgb: np.ndarray) -> np.ndarray:
        small, scale = _downscale(rgb, self.detect_max_side)
        boxes = self._run(small, 0)
        if len(boxes) == 0:
            boxes = self._run(small, 1)
        boxes[:, :4] /= scale
        return boxes

    def _search_near(self, rgb: np.ndarray, hint: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        size = float(max(hint[2] - hint[0], hint[3] - hint[1]))
        cx, cy = (hint[0] + hint[2]) / 2, (hint[1] + hint[3]) / 2
        half = size * (0.5 + self.hint_margin)
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(width, math.ceil(cx + half)), min(height, math.ceil(cy + half))
        if x1 - x0 < 8 or y1 - y0 < 8:  # hint (almost) outside the frame
            return np.zeros((0, 5))
        scale = self._window_scale(size, max(height, width))
        window = rgb[y0:y1, x0:x1]
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        window = cv2.resize(window, None, fx=scale, fy=scale, interpolation=interpolation)
        boxes = self._run(window, 0)
        boxes[:, :4] = boxes[:, :4] / scale + np.array([x0, y0, x0, y0])
        return boxes

    def _window_scale(self, face_size: float, longer_side: int) -> float:
        """Scale of the hint window: the full search's scale times a whole number of pyramid steps.

        dlib's HOG pyramid shrinks by 5/6 per level, so box sizes come on a fixed
        lattice. Staying on the full search's lattice keeps hinted boxes the same
        size as full-search boxes (rescaling freely made the box size wander +-10%
        from frame to frame through the feedback of box -> window scale -> box).
        """
        base = min(1.0, self.detect_max_side / longer_side)
        face = face_size * base
        if face < _HOG_WINDOW_PX:
            return base * 2.0  # what the full search's 2x upsampling retry would see
        steps = max(0, math.floor(math.log(face / self.hint_face_px) / math.log(_PYRAMID_STEP)))
        return base / _PYRAMID_STEP**steps

    def _predict(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        import dlib

        shape = self._predictor(rgb, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)  # (68, 2)


# --------------------------------------------------------------------------- FAN


class FanDetector:
    """face-alignment's FAN 2D (4 hourglass stacks) with its S3FD face detector.

    Only face-alignment's network classes are used; the crop and the heatmap
    decoding are done here with numpy/OpenCV (its own helpers are numba-jitted
    and cost tens of seconds of compilation in every new process). The math
    follows face-alignment: a square crop of side ``200 * (w + h) / 195`` around
    the box centre moved up by 12% of the box height, resized to 256x256; the
    arg-max of each 64x64 heatmap moved a quarter cell towards its larger
    neighbour. Points are not rounded to whole pixels.

    Construction loads (and if needed downloads) the weights and raises
    ``WeightsError`` when they are unavailable. ``confidence`` is the S3FD face
    probability after a full search; with ``box_hint`` (no face search) it is
    the mean heatmap peak, and results below ``min_hint_score`` raise
    ``NoFaceError`` so that a tracker re-detects.
    """

    name = "fan"

    def __init__(
        self,
        device: str | None = None,
        detect_max_side: int = 640,
        min_hint_score: float = 0.2,
        download_timeout: float = 30.0,
    ) -> None:
        self.device = _resolve_device(device)
        self.detect_max_side = detect_max_side  # longer side of the copy S3FD searches
        self.min_hint_score = min_hint_score  # mean heatmap peak below which a hinted face counts as lost
        paths = ensure_fan_weights(download_timeout)
        self._network, self._face_detector = self._load(paths)
        self._lock = threading.Lock()

    def _load(self, paths: dict[str, Path]):  # -> (face_alignment FAN, SFDDetector)
        import pickle

        import torch
        from face_alignment.detection.sfd.sfd_detector import SFDDetector
        from face_alignment.models import FAN

        try:
            network = FAN(4)
            network.load_state_dict(torch.load(paths["fan"], map_location=self.device, weights_only=True))
            network.to(self.device).eval()
            face_detector = SFDDetector(device=self.device, path_to_detector=str(paths["s3fd"]))
        except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as error:
            raise WeightsError(
                f"The FAN landmark weights in {paths['fan'].parent} could not be loaded ({error}). "
                "Delete the damaged files so they are downloaded again, or use the dlib backend "
                "(TALKING_HEAD_LANDMARKS=dlib)."
            ) from error
        return network, face_detector

    def detect(self, image: ImageSource, box_hint: np.ndarray | None = None) -> FaceLandmarks:
        """Landmarks of the largest face in ``image`` (at ``box_hint`` if given, no face search)."""
        rgb = _to_rgb(image)
        hint = _check_hint(box_hint)
        with self._lock:
            if hint is None:
                boxes = select_faces(self._search_full(rgb), min_score=FAN_MIN_SCORE)
                if len(boxes) == 0:
                    raise NoFaceError(NO_FACE_MESSAGE)
                box = boxes[_largest(boxes)]
                points, _ = self._align(rgb, box[:4])
                return FaceLandmarks(points, box[:4].astype(np.float32), float(box[4]), len(boxes), self.name)
            points, score = self._align(rgb, hint)
        if not score >= self.min_hint_score:
            raise NoFaceError(NO_FACE_MESSAGE)
        return FaceLandmarks(points, fan_box_from_points(points), score, 1, self.name)

    def _search_full(self, rgb: np.ndarray) -> np.ndarray:
        """S3FD boxes (K, 5): x0, y0, x1, y1, probability, in ``rgb`` coordinates."""
        small, scale = _downscale(rgb, self.detect_max_side)
        found = self._face_detector.detect_from_image(np.ascontiguousarray(small))
        boxes = np.array([np.asarray(b, dtype=np.float64)[:5] for b in found]).reshape(-1, 5)
        boxes[:, :4] /= scale
        return boxes

    def _align(self, rgb: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
        """FAN on one face box -> points (68, 2) and the mean heatmap peak in [0, 1]."""
        import torch

        center, side = _fan_crop_square(box)
        crop = _crop_square(rgb, center, side, _FAN_INPUT_PX)  # (256, 256, 3)
        batch = torch.from_numpy(crop).permute(2, 0, 1)[None].to(self.device, torch.float32) / 255.0
        with torch.no_grad():
            heatmaps = self._network(batch)[-1][0].float().cpu().numpy()  # (68, 64, 64)
        cells, peaks = _decode_heatmaps(heatmaps)  # (68, 2) in heatmap cells
        scale = side / heatmaps.shape[-1]
        points = center + (cells - heatmaps.shape[-1] / 2) * scale - 0.5  # continuous -> pixel-centre coords
        return points.astype(np.float32), float(np.clip(peaks.mean(), 0.0, 1.0))


_FAN_INPUT_PX = 256  # FAN's input resolution
_FAN_REFERENCE_SCALE = 195.0  # face-alignment: S3FD box (w + h) / 195 = crop side / 200
_FAN_CENTER_SHIFT = 0.12  # face-alignment moves the crop centre up by 12% of the box height


def _fan_crop_square(box: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (2,) and side of FAN's square input crop for a face box, in continuous pixel coords."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2 - _FAN_CENTER_SHIFT * (y1 - y0)])
    side = 200.0 * ((x1 - x0) + (y1 - y0)) / _FAN_REFERENCE_SCALE
    return center, side


def _crop_square(rgb: np.ndarray, center: np.ndarray, side: float, size: int) -> np.ndarray:
    """The square (centre, side) of ``rgb`` resampled to (size, size, 3); black outside the image."""
    scale = size / side
    # Continuous coords (pixel i spans [i, i+1)): crop u = (x - centre) * scale + size / 2.
    shift = (0.5 - center) * scale + size / 2 - 0.5
    matrix = np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def _decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-cell peak positions (N, 2) in continuous heatmap coords and peak values (N,).

    heatmaps (N, R, R). The arg-max cell centre is moved a quarter cell towards
    the larger neighbour on each axis (where both neighbours exist).
    """
    count, rows, cols = heatmaps.shape
    flat = heatmaps.reshape(count, -1)
    index = flat.argmax(axis=1)
    peaks = flat[np.arange(count), index]
    y, x = np.divmod(index, cols)
    inner = (x > 0) & (x < cols - 1) & (y > 0) & (y < rows - 1)
    xs, ys = np.clip(x, 1, cols - 2), np.clip(y, 1, rows - 2)
    n = np.arange(count)
    dx = np.sign(heatmaps[n, ys, xs + 1] - heatmaps[n, ys, xs - 1]) * inner
    dy = np.sign(heatmaps[n, ys + 1, xs] - heatmaps[n, ys - 1, xs]) * inner
    cells = np.stack([x + 0.5 + 0.25 * dx, y + 0.5 + 0.25 * dy], axis=1)
    return cells, peaks


def fan_box_from_points(points: np.ndarray) -> np.ndarray:
    """An S3FD-like face box (4,) from FAN landmarks, used as the next frame's ``box_hint``.

    S3FD boxes reach above the brows to the forehead; landmarks stop at the
    brows, so the tight box is extended upwards by a fifth of its height.
    """
    x0, y0, x1, y1 = _box_of_points(points)
    return np.array([x0, y0 - 0.2 * (y1 - y0), x1, y1], dtype=np.float32)


# --------------------------------------------------------------------------- selection

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
        key = _resolve_device(device)
        if key not in _auto_choice:
            _auto_choice[key] = _choose_automatically(key)
        return _cached(_auto_choice[key], key)


def _cached(name: str, device: str | None) -> LandmarkDetector:
    key = (name, "cpu" if name == "dlib" else _resolve_device(device))
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

"""dlib's HOG frontal face detector and 68-point shape predictor (CPU, offline).

The model file comes from the ``face_recognition_models`` package (the
68-point model was trained on iBUG 300-W: research use).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
from pathlib import Path

import cv2
import numpy as np

from talking_head.errors import NoFaceError, WeightsError
from talking_head.face.detection import (
    DLIB_MIN_RELATIVE_SCORE,
    NO_FACE_MESSAGE,
    FaceLandmarks,
    check_box_hint,
    downscale,
    largest_box,
    select_faces,
    to_rgb,
)
from talking_head.media.images import ImageSource


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
        rgb = to_rgb(image)
        hint = check_box_hint(box_hint)
        with self._lock:
            boxes = self._search_full(rgb) if hint is None else self._search_near(rgb, hint)
            boxes = select_faces(boxes, min_relative_score=DLIB_MIN_RELATIVE_SCORE)
            if len(boxes) == 0:
                raise NoFaceError(NO_FACE_MESSAGE)
            best = boxes[largest_box(boxes)]
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
        small, scale = downscale(rgb, self.detect_max_side)
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

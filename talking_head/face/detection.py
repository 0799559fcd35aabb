"""What every landmark backend shares: the result, the detector protocol, which detections count as faces.

Landmarks are ``(68, 2)`` float32 pixel ``(x, y)`` in the iBUG 300-W order, in
the coordinates of the input image (backends: :mod:`talking_head.face.dlib_detector`,
:mod:`talking_head.face.fan_detector`; choosing one: :mod:`talking_head.face.landmarks`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from talking_head.media.images import ImageSource, array_to_rgb, load_image

NUM_LANDMARKS = 68
NO_FACE_MESSAGE = (
    "No face was found in the image. Use a photo where one face is clearly visible, "
    "roughly facing the camera and at least about 80 pixels wide."
)


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


def to_rgb(image: ImageSource) -> np.ndarray:
    """RGB uint8 (H, W, 3) from any accepted input, without copying RGB uint8 arrays."""
    if isinstance(image, np.ndarray):
        return array_to_rgb(image)
    return load_image(image)


def downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
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


def largest_box(boxes: np.ndarray) -> int:
    """Index of the box with the largest area; boxes (K, 4+)."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(np.argmax(areas))


def box_of_points(points: np.ndarray) -> np.ndarray:
    """Tight box (4,) around points (N, 2)."""
    return np.concatenate([points.min(axis=0), points.max(axis=0)]).astype(np.float32)


def check_box_hint(box_hint: np.ndarray | None) -> np.ndarray | None:
    if box_hint is None:
        return None
    box = np.asarray(box_hint, dtype=np.float32).reshape(-1)[:4]
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box_hint must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box_hint!r}")
    return box


def resolve_device(device: str | None) -> str:
    if device is not None:
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

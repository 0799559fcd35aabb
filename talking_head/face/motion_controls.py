"""Motion controls: how strongly, and which parts of, a driver's motion move the photo's face.

Pure numpy on landmark tracks in crop pixels, applied to the retargeted track
(:func:`talking_head.face.motion.retarget_landmarks`) before rendering. Each
retargeted frame ``T_t`` is split, against the photo's landmarks ``S``, into a
head pose ``A_t`` (the similarity that maps ``S``'s stable points, eye
corners and nose, onto ``T_t``'s) and an expression ``E_t = A_t⁻¹(T_t) − S``
(what moves once the head's motion is taken out). The controlled frame is
``A_t(B + m · mask · E_t)`` with

- ``B``: the photo's landmarks, with the lips closed first when
  ``closed_lips`` is set (an open-mouth photo otherwise keeps its mouth open
  under the driver's relative motion);
- ``m``: the multiplier (0: the photo's own expression throughout, 1: the
  driver's, 2: exaggerated);
- ``mask``: the points the region moves (``lips``: mouth and lower jaw;
  ``eyes``: eyes and brows; ``pose``: none, the head pose only;
  ``expression``: all, with the head pose left out; ``all``: all);
- blinks ``none``: the lids never close beyond the photo's (the expression's
  lid motion is clipped to opening only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talking_head.face.edits import BROWS, LEFT_EYE, MOUTH, RIGHT_EYE, close_lips, face_frame
from talking_head.face.motion import STABLE_POINTS, apply_affine, fit_similarity

REGIONS: tuple[str, ...] = ("all", "lips", "eyes", "pose", "expression")
BLINKS: tuple[str, ...] = ("driver", "none")
MAX_MULTIPLIER = 2.0
_LOWER_JAW = list(range(4, 13))  # the jaw moves with the mouth
_UPPER_LIDS, _LOWER_LIDS = [37, 38, 43, 44], [40, 41, 46, 47]
_REGION_POINTS: dict[str, list[int]] = {
    "all": list(range(68)),
    "expression": list(range(68)),
    "lips": MOUTH + _LOWER_JAW,
    "eyes": LEFT_EYE + RIGHT_EYE + BROWS,
    "pose": [],
}


@dataclass(frozen=True)
class MotionControls:
    """What of the driver's motion reaches the photo (the defaults change nothing)."""

    multiplier: float = 1.0  # scale of the driver's expression, 0..2 (0: the photo's own expression)
    region: str = "all"  # all, lips, eyes, pose (head pose only) or expression (no head pose)
    closed_lips: bool = False  # close the photo's lips before the driver's motion is added
    blinks: str = "driver"  # driver: the driver's blinks; none: the eyes never close beyond the photo's

    def __post_init__(self) -> None:
        if not (0.0 <= self.multiplier <= MAX_MULTIPLIER):
            raise ValueError(f"the motion multiplier must be between 0 and {MAX_MULTIPLIER:g}, got {self.multiplier:g}")
        if self.region not in REGIONS:
            raise ValueError(f"the region must be one of {', '.join(REGIONS)}, got {self.region!r}")
        if self.blinks not in BLINKS:
            raise ValueError(f"blinks must be one of {', '.join(BLINKS)}, got {self.blinks!r}")

    def is_default(self) -> bool:
        """True when the controls leave the retargeted motion as it is."""
        return self == MotionControls()


def head_poses(source: np.ndarray, track: np.ndarray) -> np.ndarray:
    """Per frame, the similarity ``(2, 3)`` mapping the photo's stable points onto the frame's: ``(T, 2, 3)``."""
    stable = list(STABLE_POINTS)
    return np.stack([fit_similarity(source[stable], frame[stable]) for frame in track])


def _invert(matrix: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(matrix[:, :2].astype(np.float64))
    return np.hstack([linear, -(linear @ matrix[:, 2:].astype(np.float64))]).astype(np.float32)


def expressions(source: np.ndarray, track: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """``E_t = A_t⁻¹(T_t) − S`` for every frame, ``(T, 68, 2)``, in the photo's frame."""
    return np.stack([apply_affine(frame, _invert(pose)) for frame, pose in zip(track, poses)]) - source[None]


def without_blinks(source: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """The expression with lid motion that would close the eyes beyond the photo's clipped to 0."""
    frame = face_frame(source)
    out = np.array(expression, dtype=np.float32, copy=True)
    vertical = out @ frame.rotation[1]  # (T, 68) motion down the face
    for lids, keep in ((_UPPER_LIDS, np.minimum), (_LOWER_LIDS, np.maximum)):  # upper lid: only up; lower: only down
        clipped = keep(vertical[:, lids], 0.0)
        out[:, lids] += (clipped - vertical[:, lids])[..., None] * frame.rotation[1]
    return out


def apply_motion_controls(source: np.ndarray, track: np.ndarray, controls: MotionControls) -> np.ndarray:
    """The retargeted ``track`` ``(T, 68, 2)`` of the photo's ``source`` landmarks ``(68, 2)`` under ``controls``."""
    source = np.asarray(source, dtype=np.float32)
    track = np.asarray(track, dtype=np.float32)
    if controls.is_default():
        return track.copy()
    poses = head_poses(source, track)
    expression = expressions(source, track, poses)
    if controls.blinks == "none":
        expression = without_blinks(source, expression)
    mask = np.zeros((68, 1), dtype=np.float32)
    mask[_REGION_POINTS[controls.region]] = 1.0
    base = close_lips(source) if controls.closed_lips else source
    faces = base[None] + controls.multiplier * mask[None] * expression  # (T, 68, 2)
    if controls.region in ("expression", "lips", "eyes"):
        return faces.astype(np.float32)
    return np.stack([apply_affine(face, pose) for face, pose in zip(faces, poses)]).astype(np.float32)

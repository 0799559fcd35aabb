"""Named edits of a face's 68 landmarks: open the mouth, smile, close an eye, turn the head.

Pure numpy, no model: each edit is a function ``(68, 2) → (68, 2)`` of iBUG
landmarks in pixels (any frame: photo or crop) and one ``amount``; amount 0
returns the points unchanged. Rendering the edited points with G
(:mod:`talking_head.animation.editing`) changes the face accordingly.

Expression edits work in the face's own upright frame (x along the eye axis,
y down the face, measured from the eye midpoint) and scale with the
inter-ocular distance (outer eye corners, ``iod``), so they do the same to a
small or a tilted face. The pose edits are 2-D approximations of a 3-D turn:
every point has a rough depth in front of the face outline (nose tip most,
jaw line none) and is rotated about the vertical (yaw) or horizontal (pitch)
axis with it. "Left" and "right" are as seen in the image: the left eye is
points 36–41.

:func:`apply_edits` applies an :class:`EditSettings` in a fixed order
(expression first, then yaw, pitch, roll).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

JAW, BROWS = list(range(0, 17)), list(range(17, 27))
LEFT_EYE, RIGHT_EYE = list(range(36, 42)), list(range(42, 48))
MOUTH = list(range(48, 68))
REGIONS: dict[str, list[int]] = {
    "brows": BROWS,
    "eyes": LEFT_EYE + RIGHT_EYE,
    "mouth": MOUTH,
}
_UPPER_INNER, _LOWER_INNER = [61, 62, 63], [67, 66, 65]  # inner-lip points facing each other
_LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
# How much of the lower lip's drop each point follows when the mouth opens (the jaw swings down).
_CHIN_FOLLOW = {4: 0.1, 5: 0.25, 6: 0.45, 7: 0.6, 8: 0.65, 9: 0.6, 10: 0.45, 11: 0.25, 12: 0.1}
_CORNER_FOLLOW = {48: 0.4, 54: 0.4, 60: 0.4, 64: 0.4}
# Upper and lower lid points of each eye, facing each other.
_EYE_LIDS = {"left": ([37, 38], [41, 40]), "right": ([43, 44], [47, 46])}

MAX_MOUTH_OPEN = 0.32  # inner-lip gap added at mouth_open = 1, in iod
MAX_SMILE = 0.09  # corner shift (out and up) at smile = 1, in iod
MAX_POUT = 0.22  # fraction the mouth narrows at pout = 1
MAX_EYE_WIDEN = 0.6  # fraction the eye opens further at eye = 1
MAX_BROW = 0.12  # brow lift at brows = 1, in iod
MAX_YAW_DEGREES = 20.0  # yaw at yaw = ±1
MAX_PITCH_DEGREES = 15.0  # pitch at pitch = ±1


@dataclass(frozen=True)
class EditSettings:
    """How far each named edit goes; every amount 0 leaves the face as it is."""

    mouth_open: float = 0.0  # -1 closes the lips, 1 opens the mouth by 0.32 iod
    smile: float = 0.0  # 1 lifts and widens the mouth corners, -1 lowers them
    pout: float = 0.0  # 1 narrows and pushes up the lips, -1 stretches them wide
    left_eye: float = 0.0  # eye on the image's left (36-41): -1 closed, 1 wide open
    right_eye: float = 0.0  # eye on the image's right (42-47): -1 closed, 1 wide open
    brows: float = 0.0  # 1 raises the eyebrows by 0.12 iod, -1 lowers them
    roll: float = 0.0  # head roll in degrees, positive clockwise in the image (-30..30)
    yaw: float = 0.0  # head turn, -1..1 (±20°), positive towards the image's right
    pitch: float = 0.0  # head nod, -1..1 (±15°), positive chin up

    def is_identity(self) -> bool:
        """True when no edit moves anything."""
        return all(getattr(self, f.name) == 0 for f in fields(self))


EDIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(EditSettings))
# Range of each amount (roll is in degrees); the CLI and the page check values against it.
EDIT_RANGES: dict[str, tuple[float, float]] = {name: (-1.0, 1.0) for name in EDIT_NAMES} | {"roll": (-30.0, 30.0)}


# ----- the face frame -------------------------------------------------------------------


@dataclass(frozen=True)
class FaceFrame:
    """The face's upright frame: origin at the eye midpoint, x along the eye axis, in pixels."""

    origin: np.ndarray  # (2,) eye midpoint
    rotation: np.ndarray  # (2, 2) image → face axes
    iod: float  # inter-ocular distance (outer corners 36, 45), pixels

    def to_face(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.origin) @ self.rotation.T

    def to_image(self, local: np.ndarray) -> np.ndarray:
        return (local @ self.rotation + self.origin).astype(np.float32)


def face_frame(points: np.ndarray) -> FaceFrame:
    """The upright frame of ``(68, 2)`` landmarks (see :class:`FaceFrame`)."""
    points = np.asarray(points, dtype=np.float64)
    axis = points[45] - points[36]
    iod = float(np.linalg.norm(axis))
    if iod < 1e-6:
        raise ValueError("the outer eye corners coincide; these are not face landmarks")
    cos, sin = axis / iod
    rotation = np.array([[cos, sin], [-sin, cos]])
    return FaceFrame(origin=(points[36] + points[45]) / 2, rotation=rotation, iod=iod)


def _checked(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)
    if points.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got shape {points.shape}")
    return points


def _edit_in_face(points: np.ndarray, move) -> np.ndarray:
    """Apply ``move(local, iod) → local`` in the face frame and map back."""
    frame = face_frame(_checked(points))
    return frame.to_image(move(frame.to_face(points), frame.iod))


# ----- mouth ----------------------------------------------------------------------------


def _drop_lower_lip(local: np.ndarray, drop: float) -> np.ndarray:
    """Move the lower lip down by ``drop`` (face pixels; negative = up), chin and corners partly."""
    out = local.copy()
    out[_LOWER_LIP, 1] += drop
    for index, share in {**_CHIN_FOLLOW, **_CORNER_FOLLOW}.items():
        out[index, 1] += share * drop
    return out


def inner_lip_gap(points: np.ndarray) -> float:
    """Mean gap between facing inner-lip points of ``(68, 2)`` landmarks, in iod (0 = closed)."""
    points = np.asarray(points, dtype=np.float64)
    gap = np.linalg.norm(points[_LOWER_INNER] - points[_UPPER_INNER], axis=1).mean()
    return float(gap / max(np.linalg.norm(points[45] - points[36]), 1e-6))


def open_mouth(points: np.ndarray, amount: float) -> np.ndarray:
    """Open the mouth (amount > 0: the lower lip and chin drop by up to 0.32 iod) or close it (amount -1: lips meet)."""

    def move(local: np.ndarray, iod: float) -> np.ndarray:
        if amount >= 0:
            return _drop_lower_lip(local, amount * MAX_MOUTH_OPEN * iod)
        gap = float(np.mean(local[_LOWER_INNER, 1] - local[_UPPER_INNER, 1]))
        return _drop_lower_lip(local, amount * max(gap, 0.0))

    return _edit_in_face(points, move)


def close_lips(points: np.ndarray) -> np.ndarray:
    """The same face with its inner lips closed (``open_mouth(points, -1)``)."""
    return open_mouth(points, -1.0)


def smile(points: np.ndarray, amount: float) -> np.ndarray:
    """Lift and widen the mouth corners (amount 1: by 0.09 iod), or lower them (amount < 0)."""

    def move(local: np.ndarray, iod: float) -> np.ndarray:
        out = local.copy()
        centre_x = local[MOUTH, 0].mean()
        shift = amount * MAX_SMILE * iod
        for corners, share in (((48, 54, 60, 64), 1.0), ((49, 53, 59, 55), 0.5), ((61, 63, 67, 65), 0.3)):
            for index in corners:
                side = np.sign(local[index, 0] - centre_x)
                out[index] += (side * shift * share, -shift * share)
        return out

    return _edit_in_face(points, move)


def pout(points: np.ndarray, amount: float) -> np.ndarray:
    """Purse the lips: narrow the mouth by up to 22 % towards its centre and lift it a little (amount < 0 widens)."""

    def move(local: np.ndarray, iod: float) -> np.ndarray:
        out = local.copy()
        centre = local[MOUTH].mean(0)
        out[MOUTH, 0] = centre[0] + (local[MOUTH, 0] - centre[0]) * (1 - amount * MAX_POUT)
        out[MOUTH, 1] -= amount * 0.03 * iod
        return out

    return _edit_in_face(points, move)


# ----- eyes and brows ---------------------------------------------------------------------


def open_eye(points: np.ndarray, amount: float, side: str) -> np.ndarray:
    """Close (amount -1: the lids meet) or widen (amount 1: 60 % more open) the ``side`` ("left"/"right") eye."""
    if side not in _EYE_LIDS:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    upper, lower = _EYE_LIDS[side]

    def move(local: np.ndarray, iod: float) -> np.ndarray:
        out = local.copy()
        gap = local[lower, 1] - local[upper, 1]  # (2,) per facing pair
        if amount < 0:  # the upper lid does most of the closing, as in a blink
            out[upper, 1] += -amount * 0.8 * gap
            out[lower, 1] -= -amount * 0.2 * gap
        else:
            out[upper, 1] -= amount * MAX_EYE_WIDEN * 0.8 * gap
            out[lower, 1] += amount * MAX_EYE_WIDEN * 0.2 * gap
        return out

    return _edit_in_face(points, move)


def eyelid_gap(points: np.ndarray, side: str) -> float:
    """Mean gap between facing lid points of one eye, in iod (0 = closed)."""
    points = np.asarray(points, dtype=np.float64)
    upper, lower = _EYE_LIDS[side]
    gap = np.linalg.norm(points[lower] - points[upper], axis=1).mean()
    return float(gap / max(np.linalg.norm(points[45] - points[36]), 1e-6))


def raise_brows(points: np.ndarray, amount: float) -> np.ndarray:
    """Raise the eyebrows (amount 1: by 0.12 iod, the inner ends a little more) or lower them."""

    def move(local: np.ndarray, iod: float) -> np.ndarray:
        out = local.copy()
        lift = amount * MAX_BROW * iod * np.array([0.8, 0.9, 1.0, 1.05, 1.1, 1.1, 1.05, 1.0, 0.9, 0.8])
        out[BROWS, 1] -= lift
        return out

    return _edit_in_face(points, move)


# ----- head pose --------------------------------------------------------------------------

# Rough depth of each point in front of the jaw outline, in iod (nose tip most).
_DEPTH = np.concatenate(
    [
        0.1 * np.cos(np.linspace(-np.pi / 2, np.pi / 2, 17)),  # jaw: 0 at the ears, 0.1 at the chin
        np.full(10, 0.35),  # brows
        [0.4, 0.5, 0.6, 0.7],  # nose bridge down to the tip
        [0.5, 0.55, 0.6, 0.55, 0.5],  # lower nose
        np.full(12, 0.3),  # eyes
        np.full(20, 0.45),  # lips
    ]
)


def roll_head(points: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the face about its nose bridge (point 27..30 mean) by ``degrees``, clockwise in the image."""
    points = _checked(points)
    centre = points[27:31].mean(0)
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])  # y points down
    return ((points - centre) @ rotation.T + centre).astype(np.float32)


def _turn(points: np.ndarray, degrees: float, axis: int) -> np.ndarray:
    """Rotate the face about its vertical (axis 0: x changes) or horizontal (axis 1: y changes) axis."""

    def move(local: np.ndarray, iod: float) -> np.ndarray:
        out = local.copy()
        angle = np.radians(degrees)
        centre = local[27:36, axis].mean()
        out[:, axis] = centre + (local[:, axis] - centre) * np.cos(angle) + _DEPTH * iod * np.sin(angle)
        return out

    return _edit_in_face(points, move)


def yaw_head(points: np.ndarray, amount: float) -> np.ndarray:
    """Turn the head (amount ±1: ±20°), positive towards the image's right (the nose moves right)."""
    return _turn(points, amount * MAX_YAW_DEGREES, axis=0)


def pitch_head(points: np.ndarray, amount: float) -> np.ndarray:
    """Nod the head (amount ±1: ±15°), positive chin up (points in front move up)."""
    return _turn(points, -amount * MAX_PITCH_DEGREES, axis=1)


# ----- all together -----------------------------------------------------------------------


def apply_edits(points: np.ndarray, settings: EditSettings) -> np.ndarray:
    """The landmarks with every edit of ``settings`` applied: expression, then yaw, pitch, roll."""
    out = _checked(points).copy()
    steps = (
        (settings.mouth_open, open_mouth),
        (settings.smile, smile),
        (settings.pout, pout),
        (settings.left_eye, lambda p, a: open_eye(p, a, "left")),
        (settings.right_eye, lambda p, a: open_eye(p, a, "right")),
        (settings.brows, raise_brows),
        (settings.yaw, yaw_head),
        (settings.pitch, pitch_head),
        (settings.roll, roll_head),
    )
    for amount, edit in steps:
        if amount:
            out = edit(out, float(amount))
    return out


def check_edit_settings(values: dict[str, float]) -> EditSettings:
    """An :class:`EditSettings` from ``{name: amount}``; ``ValueError`` naming the edit for an unknown name or out-of-range amount."""
    for name, value in values.items():
        if name not in EDIT_RANGES:
            raise ValueError(f"unknown edit {name!r}; the edits are {', '.join(EDIT_NAMES)}")
        low, high = EDIT_RANGES[name]
        if not (low <= float(value) <= high):
            raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return EditSettings(**{name: float(value) for name, value in values.items()})

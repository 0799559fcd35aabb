"""Single-frame landmark jumps: found, and replaced by interpolation.

A landmark detector sometimes places the face a few pixels off for one frame
(dlib's face box moves in coarse steps, so the 68 points shift with it). In a
driving motion that is a visible jerk: one example track moved its landmarks
10.75 px between two frames where the clip's median motion is 1.56 px.

Jumps are measured on the rigid part of the face only (:func:`rigid_motion`:
the centre and spread of the nose and eye points, 27–47), so that an
expression (a mouth opening, a brow raised) is never taken for one, while a
shifted or rescaled face box, which moves every point, is. A frame step is a
*jump* when that motion is :data:`JUMP_FACTOR` times the median step around
it (the steps within :data:`JUMP_WINDOW_S` seconds) and at least
:data:`JUMP_MIN_FACE_FRACTION` of the face size. Two shapes are repaired:

- an *outlier*: two jumps in a row whose outer frames agree (the face goes
  away for one frame and comes back); the middle frame is replaced by the
  interpolation of its neighbours;
- a *step*: one jump of at most :data:`STEP_MAX_FACE_FRACTION` of the face
  size, with the steps on either side at most 1 / :data:`JUMP_NEIGHBOUR_FACTOR`
  of it (the face is displaced by one step, then moves on as before); the two
  frames of that step are replaced by the interpolation between the frames
  around them, which spreads the jump over three steps. A larger step is a
  cut or another face, not a detector's wobble, and is kept.

Fast real motion is left alone: a head turn moves the landmarks by several
large steps in a row, and in a fast clip the median around a large step is
large too.
"""

from __future__ import annotations

import numpy as np

JUMP_FACTOR = 5.0  # a jump is this many times the median step within JUMP_WINDOW_S
JUMP_MIN_FACE_FRACTION = 0.03  # ... and at least this fraction of the face size (a still clip's noise is no jump)
JUMP_NEIGHBOUR_FACTOR = 2.5  # a step jump is this many times the steps on either side of it (a quick nod: about 2)
JUMP_WINDOW_S = 1.0  # half-width of the window the median step is taken over, seconds
STEP_MAX_FACE_FRACTION = 0.25  # a larger single step is a cut or another face: kept as it is
OUTLIER_RETURN = 0.5  # an outlier's neighbours are closer to each other than this fraction of its jumps


def step_motion(points: np.ndarray) -> np.ndarray:
    """(T − 1,) mean displacement of the 68 points from each frame to the next, pixels; points (T, 68, 2)."""
    if len(points) < 2:
        return np.zeros(0, dtype=np.float32)
    return np.linalg.norm(np.diff(points, axis=0), axis=-1).mean(axis=-1)


RIGID_POINTS = slice(27, 48)  # nose bridge, lower nose and both eyes: they move with the head, not with expressions


def rigid_motion(points: np.ndarray) -> np.ndarray:
    """(T − 1,) motion of the rigid points from each frame to the next, pixels: centre shift + spread change.

    points (T, 68, 2). The spread is the RMS distance of the points from their centre.
    """
    rigid = points[:, RIGID_POINTS].astype(np.float64)  # (T, 21, 2)
    centre = rigid.mean(axis=1)  # (T, 2)
    spread = np.sqrt(((rigid - centre[:, None]) ** 2).sum(axis=-1).mean(axis=1))  # (T,)
    if len(points) < 2:
        return np.zeros(0)
    return np.linalg.norm(np.diff(centre, axis=0), axis=-1) + np.abs(np.diff(spread))


def _local_median(steps: np.ndarray, valid: np.ndarray, half_width: int) -> np.ndarray:
    """(S,) median of the valid steps within ``half_width`` of each step, the step itself left out."""
    medians = np.full(len(steps), np.inf, dtype=np.float64)
    for index in range(len(steps)):
        window = np.r_[max(0, index - half_width) : index, index + 1 : min(len(steps), index + half_width + 1)]
        around = steps[window][valid[window]]
        if len(around):
            medians[index] = np.median(around)
    return medians


def find_jumps(points: np.ndarray, found: np.ndarray, face_size: float, fps: float) -> np.ndarray:
    """(T,) bool: frames to replace because the landmarks jump there for one frame.

    points (T, 68, 2) pixels, found (T,) bool (only steps between found frames
    count), ``face_size`` the face's size in pixels, ``fps`` the frame rate.
    """
    steps = rigid_motion(points)  # (T − 1,)
    reject = np.zeros(len(points), dtype=bool)
    if len(steps) < 3:
        return reject
    valid = found[:-1] & found[1:]
    half_width = max(3, round(JUMP_WINDOW_S * fps))
    threshold = np.maximum(JUMP_FACTOR * _local_median(steps, valid, half_width), JUMP_MIN_FACE_FRACTION * face_size)
    big = valid & (steps > threshold)
    for index in np.flatnonzero(big):
        if index > 0 and big[index - 1] and _returns(points, index, steps):
            reject[index] = True  # an outlier frame between steps index − 1 and index
        elif steps[index] <= STEP_MAX_FACE_FRACTION * face_size and _is_lone_step(index, steps, valid, big):
            reject[index : index + 2] = True
    return reject


def _returns(points: np.ndarray, frame: int, steps: np.ndarray) -> bool:
    """The frames on either side of ``frame`` agree: it went away and came back."""
    across = float(rigid_motion(points[[frame - 1, frame + 1]])[0])
    return across < OUTLIER_RETURN * min(steps[frame - 1], steps[frame])


def _is_lone_step(index: int, steps: np.ndarray, valid: np.ndarray, big: np.ndarray) -> bool:
    """Step ``index`` is large alone: frames exist on both sides and the steps around are much smaller."""
    if index == 0 or index + 1 >= len(steps) or not (valid[index - 1] and valid[index + 1]):
        return False
    if big[index - 1] or big[index + 1]:
        return False  # several large steps in a row: fast motion, or an outlier handled above
    return bool(steps[index] >= JUMP_NEIGHBOUR_FACTOR * max(steps[index - 1], steps[index + 1]))


def interpolate_frames(array: np.ndarray, replace: np.ndarray) -> None:
    """Replace the frames ``replace`` (T,) bool of ``array`` (T, ...) in place, linearly from the kept ones."""
    kept = np.flatnonzero(~replace)
    if len(kept) == 0 or not replace.any():
        return
    flat = array.reshape(len(array), -1).astype(np.float64)  # (T, F)
    targets = np.flatnonzero(replace)
    for column in range(flat.shape[1]):
        flat[targets, column] = np.interp(targets, kept, flat[kept, column])
    array[...] = flat.reshape(array.shape)

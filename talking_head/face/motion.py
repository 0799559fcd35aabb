"""Driving motion: temporal smoothing and relative/absolute landmark retargeting.

Pure numpy, no model. Landmarks are ``float32`` ``(68, 2)`` / ``(T, 68, 2)``
arrays of ``(x, y)`` pixels in the iBUG 68-point order; in the pipeline both the
source's and the driver's landmarks are already in crop coordinates
(``framing.points_to_crop`` at ``config.image_size``).

Two modes (DESIGN §3):

- ``absolute`` (the paper): the driver's landmarks, framed by the same crop
  function as the source, are given to G as they are. The driver's face shape
  (jaw width, eye distance) leaks into the result.
- ``relative`` (default): keep the source's landmarks S and add the driver's
  motion relative to a reference driving frame D_ref, expressed in the
  source's scale: ``S_t = S + A(D_t) - A(D_ref)`` where A is the similarity
  transform (scale, rotation, translation) that maps D_ref onto S on points
  that expressions barely move (eye corners and nose). The translation of A
  cancels, so ``S_t = S + s·R·(D_t - D_ref)``.

Reference frame: by default the *most neutral* driving frame (mouth closed,
eyes as open as usual in the clip, face frontal), because the source photo is
usually neutral; with the first frame a clip that starts mid-word would
push the source's closed mouth shut "beyond closed". ``"first"`` or a frame
index can be chosen instead.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

MotionMode = Literal["relative", "absolute"]
MOTION_MODES: tuple[str, ...] = ("relative", "absolute")

# Points that expressions barely move: eye corners, nose bridge, nostrils.
STABLE_POINTS: tuple[int, ...] = (36, 39, 42, 45, 27, 28, 29, 30, 31, 33, 35)

# iBUG 68 mirror pairs: index i becomes FLIP_PERMUTATION[i] after a left/right flip.
_MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    *((i, 16 - i) for i in range(8)),  # jaw
    *((17 + i, 26 - i) for i in range(5)),  # brows
    (31, 35),
    (32, 34),  # nostrils
    (36, 45),
    (37, 44),
    (38, 43),
    (39, 42),
    (40, 47),
    (41, 46),  # eyes
    (48, 54),
    (49, 53),
    (50, 52),
    (59, 55),
    (58, 56),  # outer lips
    (60, 64),
    (61, 63),
    (67, 65),  # inner lips
)


def _flip_permutation() -> np.ndarray:
    perm = np.arange(68)
    for a, b in _MIRROR_PAIRS:
        perm[a], perm[b] = b, a
    return perm


FLIP_PERMUTATION: np.ndarray = _flip_permutation()


def flip_landmarks(points: np.ndarray, width: float) -> np.ndarray:
    """Mirror landmarks left/right in an image ``width`` pixels wide.

    x becomes ``width - 1 - x`` (pixel centres) and left/right indices are
    swapped, so the flipped points describe the flipped image in iBUG order.
    Works on ``(68, 2)`` and ``(..., 68, 2)``.
    """
    flipped = np.array(points, dtype=np.float32, copy=True)
    flipped[..., 0] = (width - 1) - flipped[..., 0]
    return flipped[..., FLIP_PERMUTATION, :]


def smooth_landmarks(points: np.ndarray, strength: float) -> np.ndarray:
    """Gaussian smoothing of a landmark track along time.

    ``points``: ``(T, 68, 2)``. ``strength`` is the Gaussian's sigma in frames;
    0 turns smoothing off (a copy is returned). The ends are padded by odd
    reflection (``2·x0 - x_k``) so that a steady motion is not pulled back at
    the first and last frames.
    """
    track = np.asarray(points, dtype=np.float32)
    if track.ndim != 3:
        raise ValueError(f"expected a (T, 68, 2) track, got shape {track.shape}")
    if strength < 0:
        raise ValueError("smoothing strength must be >= 0")
    num_frames = track.shape[0]
    radius = min(int(np.ceil(3.0 * strength)), num_frames - 1)
    if strength == 0 or radius < 1:
        return track.copy()
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (taps / strength) ** 2)
    weights /= weights.sum()
    head = 2.0 * track[:1] - track[radius:0:-1]
    tail = 2.0 * track[-1:] - track[-2 : -radius - 2 : -1]
    padded = np.concatenate([head, track, tail]).astype(np.float64)  # (T + 2r, 68, 2)
    out = np.zeros(track.shape, dtype=np.float64)
    for k, w in enumerate(weights):
        out += w * padded[k : k + num_frames]
    return out.astype(np.float32)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) mapping ``src`` points onto ``dst``.

    Returns a ``(2, 3)`` matrix ``[s·R | t]``; apply with :func:`apply_affine`.
    Reflections are excluded.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_src, mu_dst = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    cov = dst_c.T @ src_c / len(src)
    u, sv, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = float(np.trace(np.diag(sv) @ sign) / max(var_src, 1e-12))
    translation = mu_dst - scale * rotation @ mu_src
    return np.hstack([scale * rotation, translation[:, None]]).astype(np.float32)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to points of shape ``(..., 2)``."""
    points = np.asarray(points, dtype=np.float32)
    return points @ matrix[:, :2].T + matrix[:, 2]


def interocular_distance(points: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners (36, 45); shape ``(...)``."""
    points = np.asarray(points, dtype=np.float32)
    return np.linalg.norm(points[..., 45, :] - points[..., 36, :], axis=-1)


_YAW_DEPTH = 0.85


def estimate_yaw(points: np.ndarray) -> np.ndarray:
    """Rough head yaw in degrees from the nose tip's position between the jaw ends.

    0 for a frontal face; the sign says to which side of the image the nose
    points (positive: image right). Distances are measured along the eye axis
    so that head roll does not read as yaw. A rough reading of the 2D outline,
    good enough to flag a turned-away photo, not a pose estimator. Works on
    ``(..., 68, 2)``.
    """
    points = np.asarray(points, dtype=np.float64)
    axis = points[..., 45, :] - points[..., 36, :]
    axis /= np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)
    left = np.sum((points[..., 30, :] - points[..., 0, :]) * axis, axis=-1)
    right = np.sum((points[..., 16, :] - points[..., 30, :]) * axis, axis=-1)
    # The nose tip stands in front of the jaw outline, so its offset grows
    # about like tan(yaw); 0.85 makes a nose that reaches the jaw's outline
    # read as ~50°, as measured on photos of known pose.
    return np.degrees(np.arctan2(left - right, _YAW_DEPTH * np.maximum(left + right, 1e-9)))


def _mean_gap(points: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    upper = points[..., [a for a, _ in pairs], :]
    lower = points[..., [b for _, b in pairs], :]
    return np.linalg.norm(upper - lower, axis=-1).mean(-1)


def neutral_frame_index(track: np.ndarray) -> int:
    """Index of the most neutral frame of a ``(T, 68, 2)`` track.

    Score (lower is more neutral), all in units of the inter-ocular distance:
    inner-lip opening + |yaw| as a fraction of 90° + distance of the eye
    opening from the clip's median (so a blink is never the reference).
    """
    track = np.asarray(track, dtype=np.float32)
    iod = np.maximum(interocular_distance(track), 1e-6)
    mouth = _mean_gap(track, [(61, 67), (62, 66), (63, 65)]) / iod
    eyes = _mean_gap(track, [(37, 41), (38, 40), (43, 47), (44, 46)]) / iod
    yaw = np.abs(estimate_yaw(track)) / 90.0
    score = mouth + yaw + np.abs(eyes - np.median(eyes))
    return int(np.argmin(score))


def reference_frame_index(track: np.ndarray, reference: int | str = "neutral") -> int:
    """Resolve ``reference`` (``"neutral"``, ``"first"`` or a frame index) for a track."""
    num_frames = len(track)
    if reference == "neutral":
        return neutral_frame_index(track)
    if reference == "first":
        return 0
    if isinstance(reference, (int, np.integer)) and -num_frames <= reference < num_frames:
        return int(reference) % num_frames
    raise ValueError(
        f"reference must be 'neutral', 'first' or a frame index below {num_frames}, got {reference!r}"
    )


def retarget_relative(
    source: np.ndarray, driving: np.ndarray, reference: int | str = "neutral"
) -> np.ndarray:
    """Relative mode: ``S_t = S + A(D_t) - A(D_ref)`` (see the module docstring).

    ``source``: ``(68, 2)``; ``driving``: ``(T, 68, 2)``. Returns ``(T, 68, 2)``.
    """
    source = np.asarray(source, dtype=np.float32)
    driving = np.asarray(driving, dtype=np.float32)
    ref = driving[reference_frame_index(driving, reference)]
    align = fit_similarity(ref[list(STABLE_POINTS)], source[list(STABLE_POINTS)])
    linear = align[:, :2]  # translation cancels in A(D_t) - A(D_ref)
    motion = (driving - ref) @ linear.T  # (T, 68, 2)
    return (source[None] + motion).astype(np.float32)


def retarget_landmarks(
    source: np.ndarray,
    driving: np.ndarray,
    mode: str = "relative",
    reference: int | str = "neutral",
) -> np.ndarray:
    """Landmarks to give G, ``(T, 68, 2)``, for ``mode`` ``"relative"`` or ``"absolute"``.

    Both inputs are in crop coordinates at the model's image size. In
    ``absolute`` mode ``source`` is ignored and the driver's landmarks are
    returned unchanged (the paper's behaviour).
    """
    if mode == "relative":
        return retarget_relative(source, driving, reference)
    if mode == "absolute":
        return np.array(driving, dtype=np.float32, copy=True)
    raise ValueError(f"mode must be one of {MOTION_MODES}, got {mode!r}")

"""Where the motion controls let G repaint the face, and the warp everywhere else.

G is warp-guided: it starts from the photo warped to the frame's landmarks
and repaints what the landmarks ask for. Where the motion controls say a
part of the face keeps the photo's expression (the eyes and brows under
region ``lips``, the whole face under ``pose`` or multiplier 0), the
landmarks given to G there are exactly the photo's (moved by the head pose),
so the ideal output there is the warp itself: the photo's own pixels moved
by the head pose, with nothing repainted. G still re-renders those parts a
little differently from the photo (enough for dlib's re-detected eyes to
move up to 0.04 inter-ocular distances, ``scripts/measure_edits.py``).

So each frame is composited as ``warp + m · (G − warp)`` with ``m`` a
feathered mask of the parts whose expression the controls move
(:func:`rendered_regions`): the hull of each part's landmarks in the frame,
widened by :data:`MARGIN` and fading to 0 over :data:`FEATHER` inter-ocular
distances beyond it (:func:`rendered_mask`). Where ``m`` is 0 the output is
the warp exactly; where it is 1, G's output exactly. Controls that move the
whole expression (``all``, ``expression`` at a multiplier above 0) give no
mask: G's output as it is.
"""

from __future__ import annotations

import cv2
import numpy as np

from talking_head.face.edits import MOUTH
from talking_head.face.motion_controls import MotionControls

MARGIN = 0.1  # each part's hull is widened by this × the inter-ocular distance ...
FEATHER = 0.2  # ... and G's share fades to 0 over this × the inter-ocular distance beyond it
# The parts G may repaint, each a list of landmark groups (one hull each).
PARTS: dict[str, list[list[int]]] = {
    "lips": [MOUTH + list(range(4, 13))],  # the mouth and the lower jaw, which moves with it
    "eyes": [
        list(range(36, 42)) + list(range(17, 22)),
        list(range(42, 48)) + list(range(22, 27)),
    ],  # eye + brow
}


def rendered_regions(controls: MotionControls | None) -> tuple[str, ...] | None:
    """The parts (:data:`PARTS`) whose expression ``controls`` move; ``None`` when G renders the whole face.

    The lips are among them whenever ``closed_lips`` closes them.
    """
    if controls is None or controls.is_default():
        return None
    lips = ("lips",) if controls.closed_lips else ()
    if controls.multiplier == 0.0:
        return lips
    if controls.region == "lips":
        return ("lips",)
    if controls.region == "eyes":
        return ("eyes",) + lips
    if controls.region == "pose":
        return lips
    return None  # all, expression: the whole expression moves


def rendered_mask(points: np.ndarray, regions: tuple[str, ...], size: int) -> np.ndarray:
    """G's share of each pixel, ``(size, size)`` float32 in [0, 1], for a frame's landmarks ``(68, 2)`` (crop pixels)."""
    points = np.asarray(points, dtype=np.float32)
    outside = np.full((size, size), 255, np.uint8)  # 0 inside a part's hull
    for region in regions:
        for group in PARTS[region]:
            hull = cv2.convexHull(points[group])
            cv2.fillConvexPoly(outside, np.round(hull[:, 0] * 16).astype(np.int32), 0, cv2.LINE_AA, shift=4)
    if not regions:
        return np.zeros((size, size), np.float32)
    iod = max(1.0, float(np.linalg.norm(points[45] - points[36])))
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
    t = np.clip(1.0 - (distance - MARGIN * iod) / (FEATHER * iod), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep


def keep_warp(result: np.ndarray, warp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``warp + mask · (result − warp)``: G's ``result`` ``(S, S, 3)`` uint8 where ``mask`` ``(S, S)`` is 1, the warp where 0."""
    if not mask.any():
        return np.array(warp, dtype=np.uint8, copy=True)
    warp_f = np.asarray(warp, np.float32)
    out = warp_f + mask[..., None] * (np.asarray(result, np.float32) - warp_f)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def controlled_result(
    result: np.ndarray, warp: np.ndarray | None, points: np.ndarray, regions: tuple[str, ...] | None
) -> np.ndarray:
    """G's ``result`` kept only in the ``regions`` (:func:`rendered_regions`) the controls move, the warp elsewhere.

    ``result`` as it is when ``regions`` is ``None`` (the whole face moves) or
    there is no ``warp`` (a model that is not warp-guided).
    """
    if regions is None or warp is None:
        return result
    return keep_warp(result, warp, rendered_mask(points, regions, result.shape[0]))

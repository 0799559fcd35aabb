"""Scoring predicted crops against real ones: image, mouth, landmark and identity metrics per frame, averaged.

Landmarks and face descriptors of a prediction come from one detection per
crop (:func:`read_face`); a crop without a face is left out of the landmark
error and CSIM and counted in ``face_detected``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from talking_head.errors import NoFaceError
from talking_head.evaluation import metrics


@dataclass
class FaceReading:
    """What the detectors see in one crop: landmarks and identity descriptor (``None`` = no face)."""

    points: np.ndarray | None
    descriptor: np.ndarray | None


def read_face(crop: np.ndarray, detector: Any, identity: metrics.FaceIdentity) -> FaceReading:
    """Detect landmarks in a crop; describe the face in the detector's box (one detection per crop)."""
    try:
        face = detector.detect(crop)
    except NoFaceError:
        return FaceReading(None, None)
    return FaceReading(np.asarray(face.points, dtype=np.float32), identity.descriptor(crop, box=face.box))


def score_frames(
    predictions: Sequence[np.ndarray],
    target_points: Sequence[np.ndarray],
    detector: Any,
    identity: metrics.FaceIdentity,
    real_crops: Sequence[np.ndarray] | None = None,
    real_descriptors: Sequence[np.ndarray | None] | None = None,
    identity_reference: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Mean metrics of predicted crops against targets.

    ``real_crops`` enables SSIM/PSNR/L1 and the mouth metrics (in the square
    of ``target_points``); sharpness is always measured. CSIM compares each prediction with
    ``real_descriptors[k]`` (self-reenactment) or with one
    ``identity_reference`` descriptor (cross-reenactment).
    """
    rows: dict[str, list[float | None]] = {
        "ssim": [],
        "psnr": [],
        "l1": [],
        "mouth_ssim": [],
        "mouth_l1": [],
        "landmark_error": [],
        "csim": [],
        "sharpness": [],
    }
    found = 0
    cache: dict[int, FaceReading] = {}  # the copy baseline repeats one array: measure it once
    for k, (pred, target) in enumerate(zip(predictions, target_points)):
        if real_crops is not None:
            real = real_crops[k]
            scores = metrics.image_metrics(pred, real) | metrics.mouth_metrics(pred, real, target)
            for key, value in scores.items():
                rows[key].append(value)
        rows["sharpness"].append(metrics.sharpness(pred))
        reading = cache.get(id(pred)) or read_face(pred, detector, identity)
        cache[id(pred)] = reading
        if reading.points is None:
            continue
        found += 1
        rows["landmark_error"].append(metrics.landmark_error(reading.points, target))
        reference = identity_reference if real_descriptors is None else real_descriptors[k]
        if reading.descriptor is not None and reference is not None:
            rows["csim"].append(metrics.identity_similarity(reading.descriptor, reference))
    result = {
        key: metrics.mean_or_none(values)
        for key, values in rows.items()
        if values or key in ("landmark_error", "csim")
    }
    result["face_detected"] = found / max(1, len(predictions))
    return result

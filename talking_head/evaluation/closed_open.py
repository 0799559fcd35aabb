"""The hard case of a talking head: a closed-mouth photo whose mouth must open.

Most portraits have a closed mouth, and that is where a model gives itself
away: the warp can only stretch the lips, so the teeth and the dark inside of
the mouth must be painted. Per clip:

- the landmarks of every ``frame_stride``-th frame are found and each frame's
  mouth opening measured (:func:`mouth_opening`: the inner lips' gap over the
  inter-ocular distance);
- the shot is the frame whose inner lips are most closed, the targets its
  ``targets`` most open frames, none within ``min_gap`` frames of the shot
  (:func:`select_closed_open`);
- warp, FF and each FT row render the targets from their own landmarks, and
  are scored in the lip square (evaluate's mouth region, 64²): mouth SSIM,
  mouth L1 and mouth sharpness (variance of the Laplacian), beside the real
  frames' mouth sharpness and how open the targets are.

The means over clips go into the report under ``closed_to_open``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from talking_head.errors import NoFaceError, TalkingHeadError
from talking_head.evaluation import metrics

log = logging.getLogger(__name__)

_UPPER_INNER, _LOWER_INNER = [61, 62, 63], [67, 66, 65]  # iBUG inner-lip points facing each other


@dataclass(frozen=True)
class ClosedOpenConfig:
    """How shots and targets are chosen for the closed-to-open part."""

    targets: int = 8  # most open frames scored per clip
    min_gap: int = 5  # no target within this many frames of the shot
    frame_stride: int = 1  # landmarks of every n-th frame (1: all)
    max_seconds: float | None = None  # read at most this much of each clip


def mouth_opening(points: np.ndarray) -> float:
    """Mean gap between the inner lips of ``(68, 2)`` landmarks, over the inter-ocular distance (0 = closed)."""
    points = np.asarray(points, dtype=np.float64)
    gap = np.linalg.norm(points[_LOWER_INNER] - points[_UPPER_INNER], axis=1).mean()
    return float(gap / max(metrics.inter_ocular_distance(points), 1e-6))


def select_closed_open(openings: Sequence[float], targets: int, min_gap: int) -> tuple[int, list[int]]:
    """The position of the most closed opening and those of the ``targets`` most open ones ``min_gap`` away."""
    openings = np.asarray(openings, dtype=np.float64)
    shot = int(np.argmin(openings))
    order = [int(i) for i in np.argsort(-openings, kind="stable") if abs(int(i) - shot) > min_gap]
    return shot, sorted(order[:targets])


def _track_openings(path: Path, config: ClosedOpenConfig, detector: Any) -> dict[int, np.ndarray]:
    """Frame index → (68, 2) landmarks of every ``frame_stride``-th frame with a face (one streaming pass)."""
    from talking_head.media.video_reader import VideoReader

    found: dict[int, np.ndarray] = {}
    with VideoReader(path, max_seconds=config.max_seconds) as reader:
        for index, frame in enumerate(reader):
            if index % config.frame_stride:
                continue
            try:
                found[index] = np.asarray(detector.detect(frame).points, dtype=np.float32)
            except NoFaceError:
                continue
    return found


def _read_frames(path: Path, wanted: set[int], max_seconds: float | None) -> dict[int, np.ndarray]:
    from talking_head.media.video_reader import VideoReader

    kept: dict[int, np.ndarray] = {}
    with VideoReader(path, max_seconds=max_seconds) as reader:
        for index, frame in enumerate(reader):
            if index in wanted:
                kept[index] = frame
            if index >= max(wanted):
                break
    return kept


def _mouth_scores(preds: Sequence[np.ndarray], reals: Sequence[np.ndarray], targets: np.ndarray) -> dict[str, float]:
    rows = []
    for pred, real, points in zip(preds, reals, targets):
        box = metrics.mouth_box(points, real.shape[0])
        row = metrics.mouth_metrics(pred, real, points)
        row["mouth_sharpness"] = metrics.sharpness(metrics.mouth_crop(pred, box))
        rows.append(row)
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def score_clip(
    path: Path,
    name: str,
    runner: Any,
    methods: dict[str, int],
    image_size: int,
    config: ClosedOpenConfig,
    detector: Any,
) -> dict[str, Any]:
    """The closed-to-open scores of one clip for warp and each method (name → fine-tuning steps).

    Raises ``TalkingHeadError`` when the clip is unusable.
    """
    from talking_head.face.framing import crop_box_from_landmarks, crop_image, points_to_crop
    from talking_head.nets.warp import warp_person_crops

    tracked = _track_openings(path, config, detector)
    if len(tracked) < config.targets + 2 * config.min_gap + 2:
        raise TalkingHeadError(f"a face in only {len(tracked)} frames: too few for the closed-to-open part")
    indices = sorted(tracked)
    openings = [mouth_opening(tracked[i]) for i in indices]
    shot_pos, target_pos = select_closed_open(openings, config.targets, config.min_gap)
    shot, targets = indices[shot_pos], [indices[p] for p in target_pos]
    frames = _read_frames(path, {shot, *targets}, config.max_seconds)
    crops, points = {}, {}
    for index in (shot, *targets):
        box = crop_box_from_landmarks(tracked[index])
        crops[index] = crop_image(frames[index], box, image_size)
        points[index] = np.asarray(points_to_crop(tracked[index], box, image_size), dtype=np.float32)
    target_points = np.stack([points[i] for i in targets])
    reals = [crops[i] for i in targets]
    result: dict[str, Any] = {
        "clip": name,
        "shot_frame": shot,
        "target_frames": targets,
        "shot_opening": openings[shot_pos],
        "target_opening": float(np.mean([openings[p] for p in target_pos])),
        "real": {"mouth_sharpness": _mouth_scores(reals, reals, target_points)["mouth_sharpness"]},
    }
    warps = warp_person_crops(crops[shot][None], points[shot][None], target_points)
    result["warp"] = _mouth_scores(list(warps), reals, target_points)
    base = runner.embed([frames[shot]])
    for method, count in methods.items():
        person = runner.finetune(base, count)
        result[method] = _mouth_scores(runner.render(person, target_points), reals, target_points)
    return result


def closed_to_open(
    runner: Any,
    clips: Sequence[tuple[Path, str]],
    methods: dict[str, int],
    image_size: int,
    detector: Any,
    config: ClosedOpenConfig = ClosedOpenConfig(),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score every clip (``(path, name)`` pairs) for warp and ``methods`` (name → fine-tuning steps).

    Returns the per-clip results and their means per method.
    """
    results, skipped = [], []
    for k, (path, name) in enumerate(clips):
        if progress:
            progress(f"closed-to-open [{k + 1}/{len(clips)}] {name}")
        try:
            results.append(score_clip(path, name, runner, methods, image_size, config, detector))
        except (TalkingHeadError, ValueError) as err:
            skipped.append({"clip": name, "skipped": str(err)})
    overall: dict[str, dict[str, float]] = {}
    for result in results:
        for method, scores in result.items():
            if isinstance(scores, dict):
                for key, value in scores.items():
                    overall.setdefault(method, {}).setdefault(key, []).append(value)
    means = {m: {k: float(np.mean(v)) for k, v in scores.items()} for m, scores in overall.items()}
    for method in means:
        means[method]["clips"] = len(results)
    return {
        "config": {**config.__dict__},
        "clips": results + skipped,
        "overall": means,
        "shot_opening": float(np.mean([r["shot_opening"] for r in results])) if results else None,
        "target_opening": float(np.mean([r["target_opening"] for r in results])) if results else None,
    }

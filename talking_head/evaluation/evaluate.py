"""The paper's evaluation protocol on a folder of clips: self- and cross-reenactment.

Self-reenactment (Zakharov et al. 2019, §4): for every clip, T shot frames
are taken from the first part of the clip and ``holdout`` frames (32 in the
paper) evenly from the rest, never overlapping. The person is embedded (and
fine-tuned for N steps) from the shots; every hold-out frame is rendered from
its own landmarks (absolute mode: same person) and compared with the real crop:

- SSIM, PSNR and L1 on the crops (see :mod:`talking_head.evaluation.metrics`);
- mouth SSIM and L1: the same in the square around the target's lip
  landmarks (48–67, padded 25%), resized to 64×64 (DESIGN §7);
- sharpness: variance of the Laplacian of the gray crop, also of the real
  hold-out frames (row ``real``): SSIM rewards blur, so read it beside this;
- landmark error: landmarks re-detected on the generated crop against the
  driving ones, over the inter-ocular distance;
- CSIM: cosine of dlib face descriptors, generated vs real hold-out frame;
- face detected %: generated frames where the detector found a face (those
  that have none are left out of the landmark error and CSIM).

Cross-reenactment: the person of clip i (A, embedded from its shots) is driven
by ``cross_frames`` (16) of the hold-out landmarks of clip i+1 (B) in relative mode; CSIM is measured
against A's real hold-out frames (mean descriptor) and the landmark error
against B's motion retargeted to A (what G was given).

Methods, in the same run and table, for each number of shots T:
``copy`` (no model: the first shot crop is the prediction for every frame),
``warp`` (no network: the shot crops warped to each frame's landmarks by
:func:`talking_head.nets.warp.warp_person_crops`, what a warp-guided G starts from),
``FF`` (0 fine-tuning steps: ψ̂ = P·ê as the paper's feed-forward use of
the model) and ``FT<N>`` (N fine-tuning steps). With one set of weights FF
and FT differ only in fine-tuning; the paper's FF was also trained without
the match loss.

Frames are read once per clip, streaming, keeping only the sampled ones; they
are framed by the ONE crop function (``framing.crop_box_from_landmarks``) at
the model's resolution, so all metrics are computed on ``image_size`` crops.
Overall numbers are means over clips of the per-clip means. The per-frame
scores are :mod:`talking_head.evaluation.scoring`; the JSON and Markdown
files, :mod:`talking_head.evaluation.report`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talking_head.errors import NoFaceError, TalkingHeadError, VideoReadError
from talking_head.evaluation import metrics
from talking_head.evaluation.scoring import read_face, score_frames

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
COPY = "copy"
WARP = "warp"
REAL = "real"  # the real hold-out frames: only their sharpness is reported


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how; written into the report."""

    shots: tuple[int, ...] = (1, 8)  # T values: shot frames per person
    steps: tuple[int, ...] = (0, 40)  # fine-tuning steps; 0 is the feed-forward (FF) use
    holdout: int = 32  # hold-out frames per clip (the paper: 32)
    shot_fraction: float = 0.25  # shots come from this first fraction of each clip
    max_clips: int | None = None  # evaluate at most this many clips (sorted by path)
    max_seconds: float | None = None  # read at most this much of each clip
    cross: bool = True  # also run cross-reenactment (clip i driven by clip i+1)
    cross_frames: int = 16  # driving frames per cross pair, evenly from B's hold-out frames
    baseline_copy: bool = True  # include the "copy the shot frame" baseline
    baseline_warp: bool = True  # include the "warp the shot crops, no network" baseline
    landmarks_backend: str = "auto"  # detector for driving and re-detected landmarks
    seed: int = 0  # seeds torch before each fine-tuning
    precision: str | None = (
        None  # auto, bf16 or fp32 for fine-tuning and rendering (None: $TALKING_HEAD_PRECISION)
    )
    half: str | None = None  # "select" or "report": one fixed half of the clips (val_half); None: all
    ordinary: bool = True  # run the self-/cross-reenactment protocol
    closed_to_open: bool = False  # also run the closed-to-open part (talking_head.evaluation.closed_open)

    def __post_init__(self) -> None:
        if not self.shots or min(self.shots) < 1:
            raise ValueError("shots must be positive numbers of frames, e.g. 1,8")
        if not self.steps or min(self.steps) < 0:
            raise ValueError("steps must be numbers ≥ 0, e.g. 0,40")
        if self.holdout < 1 or self.cross_frames < 1:
            raise ValueError("holdout and cross_frames must be at least 1 frame")
        if not 0.0 < self.shot_fraction < 1.0:
            raise ValueError("shot_fraction must be between 0 and 1")
        if self.half not in (None, *HALVES):
            raise ValueError(f"half must be one of {', '.join(HALVES)}, got {self.half!r}")


HALVES = ("select", "report")  # choose recipes and defaults on one half of val, report on the other


def val_half(clips: Sequence[Path], half: str | None) -> list[Path]:
    """One fixed half of ``clips`` (sorted): "select" the 1st, 3rd, ... clip, "report" the 2nd, 4th, ...; all for None."""
    ordered = sorted(clips)
    return ordered if half is None else ordered[HALVES.index(half) :: 2]


def method_name(steps: int) -> str:
    """Row name of a model method: ``FF`` for 0 steps, ``FT<N>`` otherwise."""
    return "FF" if steps == 0 else f"FT{steps}"


def method_names(config: EvalConfig) -> list[str]:
    """Methods in table order for one value of T (the ``real`` reference row comes before them)."""
    names = [COPY] if config.baseline_copy else []
    names += [WARP] if config.baseline_warp else []
    return names + [method_name(s) for s in config.steps]


def find_clips(videos: str | Path, max_clips: int | None = None) -> list[Path]:
    """Video files under ``videos`` (any depth: ``id/clip.mp4`` or ``id/video/clip.mp4``), sorted."""
    root = Path(videos)
    if not root.is_dir():
        raise VideoReadError(f"{root} is not a folder; pass --videos a folder of <identity>/<clip>.mp4 files")
    clips = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not clips:
        raise VideoReadError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) found under {root}")
    return clips[:max_clips] if max_clips else clips


def select_frames(
    num_frames: int, shots: Sequence[int], holdout: int, shot_fraction: float = 0.25
) -> tuple[dict[int, list[int]], list[int]]:
    """Shot frame indices for each T and the hold-out indices; the two never overlap.

    Shots are spread evenly over the first part of the clip (``shot_fraction``
    of it, at least ``max(shots)`` frames); hold-out frames evenly over the
    rest (fewer than ``holdout`` when the rest is shorter).

    Raises:
        NoFaceError: never; ``ValueError`` when the clip is too short for one
        shot part and one hold-out frame.
    """
    max_shots = max(shots)
    part = max(max_shots, round(num_frames * shot_fraction))
    if num_frames - part < 1:
        raise ValueError(
            f"the clip has {num_frames} frames: too short for {max_shots} shots plus hold-out frames"
        )
    shot_sets = {t: sorted({int(i) for i in np.linspace(0, part - 1, t).round()}) for t in shots}
    rest = np.linspace(part, num_frames - 1, min(holdout, num_frames - part)).round()
    return shot_sets, sorted({int(i) for i in rest})


# ----- reading and framing -------------------------------------------------


@dataclass
class FramedClip:
    """The sampled frames of one clip, framed at the model resolution."""

    name: str  # path relative to the videos folder
    num_frames: int  # frames read from the clip
    fps: float
    crops: dict[int, np.ndarray]  # frame index → (S, S, 3) uint8 crop (faces only)
    points: dict[int, np.ndarray]  # frame index → (68, 2) landmarks in crop pixels
    frames: dict[int, np.ndarray]  # frame index → full frame (shots only, for the person API)
    shots: dict[int, list[int]]  # T → shot frame indices that have a face
    holdout: list[int]  # hold-out frame indices that have a face
    missing: list[int] = field(default_factory=list)  # sampled frames without a face


def _read_sampled_frames(
    path: Path, wanted: set[int], max_seconds: float | None
) -> tuple[dict[int, np.ndarray], int, float]:
    """One streaming pass over the clip keeping only the ``wanted`` frame indices."""
    from talking_head.media.video_reader import VideoReader

    kept: dict[int, np.ndarray] = {}
    count = 0
    with VideoReader(path, max_seconds=max_seconds) as reader:
        fps = float(reader.info.fps)
        last = max(wanted)
        for index, frame in enumerate(reader):
            count = index + 1
            if index in wanted:
                kept[index] = frame
            if index >= last:
                break
    return kept, count, fps


def frame_clip(path: Path, name: str, config: EvalConfig, image_size: int, detector: Any) -> FramedClip:
    """Read, sample, detect and frame one clip (see :func:`select_frames`)."""
    from talking_head.face.framing import crop_box_from_landmarks, crop_image, points_to_crop
    from talking_head.media.video import probe_video

    info = probe_video(path, max_seconds=config.max_seconds)
    shot_sets, holdout = select_frames(info.num_frames, config.shots, config.holdout, config.shot_fraction)
    shot_indices = {i for s in shot_sets.values() for i in s}
    raw, count, fps = _read_sampled_frames(path, shot_indices | set(holdout), config.max_seconds)
    clip = FramedClip(name, count, fps, {}, {}, {}, {}, [])
    for index in sorted(raw):
        try:
            face = detector.detect(raw[index])
        except NoFaceError:
            clip.missing.append(index)
            continue
        box = crop_box_from_landmarks(face.points)
        clip.crops[index] = crop_image(raw[index], box, image_size)
        clip.points[index] = np.asarray(points_to_crop(face.points, box, image_size), dtype=np.float32)
        if index in shot_indices:
            clip.frames[index] = raw[index]
    clip.shots = {t: [i for i in s if i in clip.crops] for t, s in shot_sets.items()}
    clip.holdout = [i for i in holdout if i in clip.crops]
    return clip


# ----- the model side ------------------------------------------------------


@dataclass
class ModelRunner:
    """The pipeline calls evaluation needs, behind three small functions."""

    model: Any  # TalkingHeadModel
    detector: Any  # LandmarkDetector used to embed the shots
    seed: int = 0
    precision: str | None = None  # auto, bf16 or fp32 (None: $TALKING_HEAD_PRECISION)

    def embed(self, frames: Sequence[np.ndarray]) -> Any:
        """A person embedded from full frames (the app's path: detect, frame, embed)."""
        from talking_head.animation.person import embed_person

        return embed_person(self.model, list(frames), detector=self.detector)

    def finetune(self, person: Any, steps: int) -> Any:
        """The person fine-tuned for ``steps`` steps (0: returned unchanged)."""
        if steps == 0:
            return person
        import torch

        from talking_head.animation.finetune import FinetuneConfig, finetune_person

        torch.manual_seed(self.seed)
        return finetune_person(
            self.model, person, steps=steps, config=FinetuneConfig(seed=self.seed), precision=self.precision
        )

    def render(self, person: Any, points: np.ndarray) -> list[np.ndarray]:
        """Crops rendered from ``(T, 68, 2)`` landmarks in crop pixels."""
        from talking_head.animation.pipeline import render_landmarks

        return list(render_landmarks(self.model, person, points, precision=self.precision))


# ----- one clip ------------------------------------------------------------


@dataclass
class _Context:
    config: EvalConfig
    runner: ModelRunner
    detector: Any
    identity: metrics.FaceIdentity


def _real_descriptors(clip: FramedClip, ctx: _Context) -> list[np.ndarray | None]:
    return [read_face(clip.crops[i], ctx.detector, ctx.identity).descriptor for i in clip.holdout]


def _real_row(crops: Sequence[np.ndarray]) -> dict[str, float | None]:
    """The ``real`` reference row: sharpness of real crops (their other metrics would be trivially 1 or 0)."""
    return {"sharpness": metrics.mean_or_none(metrics.sharpness(c) for c in crops)}


def _warp_baseline(
    clip: FramedClip, shot_ids: list[int], targets: np.ndarray
) -> tuple[list[np.ndarray], float]:
    """The clip's shot crops warped to ``targets`` ``(B, 68, 2)`` with no network, and the seconds it took."""
    from talking_head.nets.warp import warp_person_crops

    started = time.perf_counter()
    warped = warp_person_crops(
        np.stack([clip.crops[i] for i in shot_ids]), np.stack([clip.points[i] for i in shot_ids]), targets
    )
    return list(warped), time.perf_counter() - started


def _self_reenactment(clip: FramedClip, ctx: _Context, real_desc: list, persons: dict) -> dict[str, Any]:
    """Metrics of every method for every T on one clip; fills ``persons[(T, steps)]``."""
    targets = [clip.points[i] for i in clip.holdout]
    reals = [clip.crops[i] for i in clip.holdout]
    real_row = _real_row(reals)
    results: dict[str, Any] = {}
    for t, shot_ids in clip.shots.items():
        if not shot_ids:
            results[f"T={t}"] = {"skipped": "no shot frame has a face"}
            continue
        per_t: dict[str, Any] = {REAL: real_row}
        if ctx.config.baseline_copy:
            copies = [clip.crops[shot_ids[0]]] * len(targets)
            per_t[COPY] = score_frames(copies, targets, ctx.detector, ctx.identity, reals, real_desc) | {
                "seconds": 0.0
            }
        if ctx.config.baseline_warp:
            warps, warp_s = _warp_baseline(clip, shot_ids, np.stack(targets))
            per_t[WARP] = score_frames(warps, targets, ctx.detector, ctx.identity, reals, real_desc) | {
                "seconds": warp_s,
                "render_seconds_per_frame": warp_s / len(warps),
            }
        try:
            started = time.perf_counter()
            base = ctx.runner.embed([clip.frames[i] for i in shot_ids])
            embed_s = time.perf_counter() - started
        except NoFaceError as err:
            results[f"T={t}"] = per_t | {"skipped": str(err)}
            continue
        for steps in ctx.config.steps:
            started = time.perf_counter()
            person = ctx.runner.finetune(base, steps)
            tuned_s = time.perf_counter() - started
            started = time.perf_counter()
            preds = ctx.runner.render(person, np.stack(targets))
            render_s = time.perf_counter() - started
            persons[(t, steps)] = person
            scores = score_frames(preds, targets, ctx.detector, ctx.identity, reals, real_desc)
            per_t[method_name(steps)] = scores | {
                "seconds": embed_s + tuned_s + render_s,
                "finetune_seconds": tuned_s,
                "render_seconds_per_frame": render_s / max(1, len(preds)),
            }
        results[f"T={t}"] = per_t
    return results


def _cross_reenactment(
    source: FramedClip, driver: FramedClip, ctx: _Context, source_desc: list, persons: dict
) -> dict[str, Any]:
    """Person A (``source``) driven by B's (``driver``) hold-out motion in relative mode."""
    from talking_head.face.motion import retarget_landmarks

    reference = metrics.mean_descriptor(source_desc)
    # B's frames are no ground truth for A: the reference row is A's real hold-out frames.
    real_row = _real_row([source.crops[i] for i in source.holdout])
    chosen = np.linspace(
        0, len(driver.holdout) - 1, min(ctx.config.cross_frames, len(driver.holdout))
    ).round()
    driving = np.stack([driver.points[driver.holdout[int(k)]] for k in sorted(set(chosen))])  # (K, 68, 2)
    results: dict[str, Any] = {"driver": driver.name}
    for t, shot_ids in source.shots.items():
        if not shot_ids or not any(key[0] == t for key in persons):
            continue
        source_points = source.points[shot_ids[0]]
        targets = retarget_landmarks(source_points, driving, mode="relative")
        per_t: dict[str, Any] = {REAL: real_row}
        if ctx.config.baseline_copy:
            copies = [source.crops[shot_ids[0]]] * len(targets)
            per_t[COPY] = score_frames(
                copies, targets, ctx.detector, ctx.identity, identity_reference=reference
            )
        if ctx.config.baseline_warp:
            warps, _ = _warp_baseline(source, shot_ids, targets)
            per_t[WARP] = score_frames(
                warps, targets, ctx.detector, ctx.identity, identity_reference=reference
            )
        for steps in ctx.config.steps:
            person = persons.get((t, steps))
            if person is None:
                continue
            # G is given the retargeted landmarks in A's own crop frame, so the
            # person's own landmarks (not the shot frame's) anchor the motion.
            targets_t = retarget_landmarks(person.source_landmarks, driving, mode="relative")
            preds = ctx.runner.render(person, targets_t)
            per_t[method_name(steps)] = score_frames(
                preds, targets_t, ctx.detector, ctx.identity, identity_reference=reference
            )
        results[f"T={t}"] = per_t
    return results


# ----- the whole run -------------------------------------------------------


def _overall(clips: list[dict[str, Any]], part: str) -> dict[str, dict[str, dict[str, float | None]]]:
    """Means over clips of the per-clip metrics, per T and method."""
    collected: dict[str, dict[str, dict[str, list]]] = {}
    for clip in clips:
        for t_key, per_t in (clip.get(part) or {}).items():
            if not isinstance(per_t, dict):
                continue
            for method, scores in per_t.items():
                if not isinstance(scores, dict):
                    continue
                bucket = collected.setdefault(t_key, {}).setdefault(method, {})
                for key, value in scores.items():
                    bucket.setdefault(key, []).append(value)
    return {
        t_key: {
            method: {key: metrics.mean_or_none(values) for key, values in scores.items()}
            | {"clips": len(next(iter(scores.values()), []))}
            for method, scores in per_t.items()
        }
        for t_key, per_t in collected.items()
    }


def evaluate(
    model: Any,
    videos: str | Path,
    config: EvalConfig = EvalConfig(),
    detector: Any | None = None,
    runner: ModelRunner | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run self- (and cross-) reenactment over every clip under ``videos``; return the report dict.

    Clips that cannot be used (too short, unreadable, no face in the sampled
    frames) are listed with the reason and left out of the means.
    """
    from talking_head.face.landmarks import get_detector

    started = time.perf_counter()
    detector = detector or get_detector(config.landmarks_backend)
    runner = runner or ModelRunner(model, detector, seed=config.seed, precision=config.precision)
    ctx = _Context(config, runner, detector, metrics.get_face_identity())
    root = Path(videos)
    paths = val_half(find_clips(root), config.half)[: config.max_clips]
    timings = {"framing_s": 0.0, "evaluation_s": 0.0}

    framed: list[FramedClip] = []
    reports: list[dict[str, Any]] = []
    for path in paths if config.ordinary else []:
        name = str(path.relative_to(root))
        tick = time.perf_counter()
        try:
            clip = frame_clip(path, name, config, model.config.image_size, detector)
        except (ValueError, TalkingHeadError) as err:
            reports.append({"clip": name, "skipped": str(err)})
            continue
        finally:
            timings["framing_s"] += time.perf_counter() - tick
        if not clip.holdout:
            reports.append({"clip": name, "skipped": "no hold-out frame has a face"})
            continue
        framed.append(clip)

    for k, clip in enumerate(framed):
        if progress:
            progress(f"[{k + 1}/{len(framed)}] {clip.name}")
        tick = time.perf_counter()
        persons: dict = {}
        real_desc = _real_descriptors(clip, ctx)
        entry: dict[str, Any] = {
            "clip": clip.name,
            "frames": clip.num_frames,
            "fps": clip.fps,
            "shot_frames": {str(t): s for t, s in clip.shots.items()},
            "holdout_frames": clip.holdout,
            "frames_without_face": clip.missing,
            "real_face_described": sum(d is not None for d in real_desc) / len(real_desc),
            "self": _self_reenactment(clip, ctx, real_desc, persons),
        }
        if config.cross and len(framed) > 1:
            driver = framed[(k + 1) % len(framed)]
            entry["cross"] = _cross_reenactment(clip, driver, ctx, real_desc, persons)
        entry["seconds"] = time.perf_counter() - tick
        timings["evaluation_s"] += entry["seconds"]
        reports.append(entry)

    extra = {}
    if config.closed_to_open:
        tick = time.perf_counter()
        extra["closed_to_open"] = _closed_to_open_part(model, root, paths, config, runner, detector, progress)
        timings["closed_to_open_s"] = time.perf_counter() - tick
    timings["total_s"] = time.perf_counter() - started
    return extra | {
        "config": dataclasses.asdict(config),
        "model_config": model.config.to_dict(),
        "landmarks_backend": getattr(detector, "name", str(detector)),
        "clips": reports,
        "clips_evaluated": len(framed),
        "clips_skipped": len(reports) - len(framed),
        "overall": {"self": _overall(reports, "self"), "cross": _overall(reports, "cross")},
        "timings": timings,
    }


def _closed_to_open_part(model, root, paths, config, runner, detector, progress) -> dict[str, Any]:  # noqa: ANN001
    """:func:`talking_head.evaluation.closed_open.closed_to_open` on ``paths`` with this run's methods."""
    from talking_head.evaluation.closed_open import ClosedOpenConfig, closed_to_open

    named = [(p, str(p.relative_to(root))) for p in paths]
    methods = {method_name(s): s for s in config.steps}
    part = ClosedOpenConfig(max_seconds=config.max_seconds)
    return closed_to_open(runner, named, methods, model.config.image_size, detector, part, progress)

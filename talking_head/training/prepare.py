"""Dataset preparation for meta-learning: clips → framed crops + landmarks + manifest.

Input: a folder of clips laid out as ``<identity>/<clip>.mp4`` or VoxCeleb2's
``<id>/<video>/<clip>.mp4`` (any depth: the first folder is the identity, the
rest of the path, without the suffix, names the clip).

For each clip (see :mod:`talking_head.training.data` for the stored format):

1. ``max_frames`` frames are sampled evenly over the whole clip (the decoder
   streams; only the sampled frames are kept in memory).
2. Landmarks: the landmark backend from ``get_detector()`` (FAN, or dlib
   offline) through ``track_landmarks`` over the sampled frames, without gap
   filling: frames where no face was found are dropped.
3. Framing: the one framing function used for photos and driving clips too
   (``crop_box_from_landmarks`` → ``smooth_crop_boxes`` → ``crop_image`` and
   ``points_to_crop``). The sampled frames lie far apart in time, so boxes are
   smoothed only lightly (``smooth`` argument, default 0: per-frame boxes, as
   for a photo).
4. Crops at ``image_size`` (256, the model resolution; the episode dataset
   resizes for smaller presets), JPEG quality 90, and landmarks in crop pixels
   go to ``clips/<identity>/<clip>.npz``; a line goes to ``manifest.jsonl``.

A clip is skipped, with its reason in the manifest, when it cannot be read,
when fewer than ``min_frames`` sampled frames show a face, or when the face is
smaller than ``min_face_size`` pixels. The run is resumable: clips that
already have a manifest line are not processed again (``retry_skipped``
re-runs the skipped ones; the newest line of a clip wins).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talking_head.errors import TalkingHeadError
from talking_head.training.data import CLIPS_DIR, MANIFEST_NAME, read_manifest, save_prepared_clip

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


@dataclass(frozen=True)
class PrepareOptions:
    """How each clip is prepared."""

    image_size: int = 256  # side of the stored crops (the model resolution)
    max_frames: int = 32  # frames sampled evenly per clip
    min_frames: int = 4  # fewer sampled frames with a face: skip the clip
    min_face_size: float = 48.0  # median crop side below this (source pixels): skip the clip
    jpeg_quality: int = 90  # JPEG quality of the stored crops
    smooth: float = 0.0  # strength passed to smooth_crop_boxes over the sampled frames
    backend: str = "auto"  # landmark backend: "auto", "fan" or "dlib"


@dataclass(frozen=True)
class ClipTask:
    """One source clip: where it is and what it is called."""

    source: Path  # absolute path of the video
    relative: str  # path relative to the videos folder (posix)
    identity: str  # first folder
    clip: str  # rest of the path without suffix


@dataclass
class PrepareSummary:
    """What a ``prepare`` run did."""

    total: int = 0  # clips found in the videos folder
    already_done: int = 0  # clips with a manifest line from an earlier run
    kept: int = 0  # clips prepared in this run
    skipped: int = 0  # clips skipped in this run
    reasons: Counter = field(default_factory=Counter)  # skip reason category → count (this run)
    frames: int = 0  # frames stored in this run
    bytes: int = 0  # bytes of .npz written in this run
    seconds: float = 0.0  # wall time
    kept_total: int = 0  # kept clips in the manifest after the run
    skipped_total: int = 0  # skipped clips in the manifest after the run

    def describe(self) -> str:
        """A few human-readable lines."""
        lines = [
            (
                f"{self.total} clips found, {self.already_done} already done; this run kept {self.kept} "
                f"({self.frames} frames, {self.bytes / 1e6:.1f} MB) and skipped {self.skipped} in {self.seconds:.0f} s"
            ),
            f"manifest now: {self.kept_total} kept, {self.skipped_total} skipped",
        ]
        lines += [f"  skipped ({count}): {reason}" for reason, count in self.reasons.most_common()]
        return "\n".join(lines)


def find_clips(videos_dir: str | Path) -> list[ClipTask]:
    """Every video below ``videos_dir``, sorted; the first folder names the identity."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise TalkingHeadError(
            f"{root} is not a folder: give --videos a folder of <identity>/<clip>.mp4 files"
        )
    tasks = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()):
        relative = path.relative_to(root)
        parts = relative.with_suffix("").parts
        identity, clip = (parts[0], "/".join(parts[1:])) if len(parts) > 1 else (parts[0], parts[0])
        tasks.append(ClipTask(path.resolve(), relative.as_posix(), identity, clip))
    if not tasks:
        raise TalkingHeadError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found below {root}")
    return tasks


def prepare_dataset(
    videos_dir: str | Path,
    out_dir: str | Path,
    options: PrepareOptions | None = None,
    workers: int = 1,
    retry_skipped: bool = False,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> PrepareSummary:
    """Prepare every clip below ``videos_dir`` into ``out_dir`` (resumable); return a summary.

    ``workers`` > 1 prepares clips in that many processes, each with its own
    detector. ``progress`` wraps the stream of finished clips (e.g.
    ``lambda it, total: tqdm(it, total=total)``).
    """
    options = options or PrepareOptions()
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = find_clips(videos_dir)
    done = _finished_sources(out_dir, retry_skipped)
    todo = [t for t in tasks if t.relative not in done]
    summary = PrepareSummary(total=len(tasks), already_done=len(tasks) - len(todo))
    results = _run_tasks(todo, out_dir, options, workers)
    if progress is not None:
        results = progress(results, len(todo))
    manifest_path = out_dir / MANIFEST_NAME
    cut_short = manifest_path.exists() and not manifest_path.read_bytes().endswith(b"\n")
    with manifest_path.open("a", encoding="utf-8") as manifest:
        if cut_short and manifest_path.stat().st_size:
            manifest.write("\n")  # end a line left unfinished by an interrupted run (readers skip it)
        for entry in results:
            manifest.write(json.dumps(entry) + "\n")
            manifest.flush()  # a crash loses at most the clip in flight
            _count(summary, entry)
    latest = _latest_entries(read_manifest(out_dir))
    summary.kept_total = sum(e["skipped"] is None for e in latest.values())
    summary.skipped_total = len(latest) - summary.kept_total
    summary.seconds = time.perf_counter() - start
    return summary


def _finished_sources(out_dir: Path, retry_skipped: bool) -> set[str]:
    if not (out_dir / MANIFEST_NAME).exists():
        return set()
    latest = _latest_entries(read_manifest(out_dir))
    return {s for s, e in latest.items() if not (retry_skipped and e["skipped"] is not None)}


def _latest_entries(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["source"]: e for e in entries}


def _count(summary: PrepareSummary, entry: dict[str, Any]) -> None:
    if entry["skipped"] is None:
        summary.kept += 1
        summary.frames += entry["frames_used"]
        summary.bytes += entry.get("bytes", 0)
    else:
        summary.skipped += 1
        summary.reasons[entry["skipped"].split(":")[0]] += 1


def _run_tasks(
    tasks: list[ClipTask], out_dir: Path, options: PrepareOptions, workers: int
) -> Iterator[dict[str, Any]]:
    """Manifest entries of ``tasks`` as they finish (in a pool when workers > 1)."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield prepare_clip(task, out_dir, options)
        return
    # spawn: a fresh interpreter per worker, safe with torch/CUDA (FAN) and dlib.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(options.backend,)) as pool:
        yield from pool.imap_unordered(_prepare_clip_star, [(t, out_dir, options) for t in tasks])


def _init_worker(backend: str) -> None:
    """Per worker: one thread for torch (workers already use the cores) and the detector built once."""
    import torch

    from talking_head.face.landmarks import get_detector

    torch.set_num_threads(1)
    get_detector(backend)


def _prepare_clip_star(args: tuple[ClipTask, Path, PrepareOptions]) -> dict[str, Any]:
    return prepare_clip(*args)


def prepare_clip(
    task: ClipTask, out_dir: str | Path, options: PrepareOptions | None = None
) -> dict[str, Any]:
    """Prepare one clip; return its manifest entry (``skipped`` holds the reason when it was not kept)."""
    options = options or PrepareOptions()
    start = time.perf_counter()
    entry: dict[str, Any] = {
        "identity": task.identity,
        "clip": task.clip,
        "source": task.relative,
        "file": None,
        "frames_used": 0,
        "frames_total": 0,
        "fps": None,
        "frame_size": None,
        "face_size": None,
        "backend": None,
        "skipped": None,
    }
    try:
        _prepare_clip_checked(task, Path(out_dir), options, entry)
    except TalkingHeadError as err:
        entry["skipped"] = _reason(err)
    except Exception as err:
        logger.exception("unexpected error preparing %s", task.relative)
        entry["skipped"] = f"unexpected error: {type(err).__name__}: {err}"
    entry["seconds"] = round(time.perf_counter() - start, 3)
    return entry


class _SkipClip(TalkingHeadError):
    """A clip that is readable but unusable for training (reason in the message)."""


def _reason(err: TalkingHeadError) -> str:
    """``category: detail`` for the manifest; the category is what the summary counts."""
    if isinstance(err, _SkipClip):
        return str(err)
    category = {
        "NoFaceError": "no face",
        "EmptyVideoError": "empty video",
        "NoVideoStreamError": "no video stream",
        "CorruptVideoError": "unreadable video",
        "VideoReadError": "unreadable video",
    }.get(type(err).__name__, "error")
    return f"{category}: {err}"


def _prepare_clip_checked(
    task: ClipTask, out_dir: Path, options: PrepareOptions, entry: dict[str, Any]
) -> None:
    """The work of :func:`prepare_clip`, filling ``entry`` as facts become known; raises ``TalkingHeadError`` to skip."""
    from talking_head.face.framing import (
        crop_box_from_landmarks,
        crop_image,
        points_to_crop,
        smooth_crop_boxes,
    )
    from talking_head.face.landmarks import get_detector
    from talking_head.face.tracking import track_landmarks
    from talking_head.media.video_reader import VideoReader

    detector = get_detector(options.backend)
    with VideoReader(task.source) as reader:
        info = reader.info
        entry.update(frames_total=info.num_frames, fps=round(info.fps, 3), frame_size=list(info.size))
        wanted = sample_frame_indices(info.num_frames, options.max_frames)
        frames, indices = _collect_frames(reader, wanted)
    if not frames:
        raise _SkipClip("empty video: no frame could be decoded")
    step = (indices[-1] - indices[0]) / max(1, len(indices) - 1) if len(indices) > 1 else 1
    # Single-frame jumps can only be told from motion between consecutive frames (all frames sampled).
    consecutive = len(indices) > 1 and indices[-1] - indices[0] == len(indices) - 1
    track = track_landmarks(frames, detector, fps=info.fps / max(step, 1), max_gap=0, reject_jumps=consecutive)
    keep = np.flatnonzero(track.found)
    entry["backend"] = track.backend
    if len(keep) < options.min_frames:
        raise _SkipClip(
            f"too few faces: a face in {len(keep)} of {len(frames)} sampled frames (need {options.min_frames})"
        )
    boxes = [crop_box_from_landmarks(track.points[i]) for i in keep]
    if options.smooth > 0:
        boxes = smooth_crop_boxes(boxes, options.smooth)
    face_size = float(np.median([b.size for b in boxes]))
    entry["face_size"] = round(face_size, 1)
    if face_size < options.min_face_size:
        raise _SkipClip(f"face too small: median crop {face_size:.0f} px < {options.min_face_size:.0f} px")
    size = options.image_size
    crops = [crop_image(frames[i], box, size) for i, box in zip(keep, boxes)]
    landmarks = np.stack([points_to_crop(track.points[i], box, size) for i, box in zip(keep, boxes)])
    box_array = np.array([[b.x0, b.y0, b.size] for b in boxes], dtype=np.float32)
    relative_file = f"{CLIPS_DIR}/{task.identity}/{task.clip}.npz"
    nbytes = save_prepared_clip(
        out_dir / relative_file, crops, landmarks, box_array, np.asarray(indices)[keep], options.jpeg_quality
    )
    entry.update(file=relative_file, frames_used=len(keep), bytes=nbytes)


def sample_frame_indices(num_frames: int, max_frames: int) -> np.ndarray:
    """Up to ``max_frames`` distinct frame indices spread evenly over ``num_frames`` (first and last included)."""
    if num_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    count = min(num_frames, max_frames)
    return np.unique(np.round(np.linspace(0, num_frames - 1, count)).astype(np.int64))


def _collect_frames(frames: Iterable[np.ndarray], wanted: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
    """Keep the frames whose index is in ``wanted`` from a stream (stops after the last one)."""
    wanted_set = {int(i) for i in wanted}
    last = int(wanted[-1]) if len(wanted) else -1
    kept, indices = [], []
    for index, frame in enumerate(frames):
        if index in wanted_set:
            kept.append(frame)
            indices.append(index)
        if index >= last:
            break
    return kept, indices

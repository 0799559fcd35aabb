"""Landmarks for every frame of a clip: tracking, gap filling, saving.

``track_landmarks`` runs a ``LandmarkDetector`` frame by frame. After the first
face is found it passes the previous frame's face box as ``box_hint``, which
only searches near that box (dlib: a small window instead of the whole frame;
FAN: no face detector at all). A full-frame search runs when

- the hinted search finds no face (the face moved out of the window, or left),
- the hinted landmarks are implausible for the hint box (centre moved by more
  than half the box size, or size changed by more than 2x: the lost-test),
- or every ``redetect_every`` frames, so that drift cannot accumulate.

Landmarks that jump for one frame (``face.jumps``: an outlier frame, or one
step many times the motion around it) are replaced by interpolation of the
frames around them, and those frames are no longer counted as ``found``.

Frames where no face is found are filled afterwards. Gaps of at most
``max_gap`` frames between two found frames are linearly interpolated; gaps at
the start or end of the clip (nothing to interpolate from) hold the nearest
found frame. Longer gaps are listed in ``LandmarkTrack.long_gaps`` and hold the
nearest found frame's points (so every value is finite) but should not be used
for driving or training: see ``LandmarkTrack.usable``. ``found`` is True only
for frames where the detector actually found the face.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talking_head.errors import EmptyVideoError, NoFaceError, TrackFormatError
from talking_head.face.detection import NUM_LANDMARKS, FaceLandmarks, LandmarkDetector
from talking_head.face.jumps import find_jumps, interpolate_frames
from talking_head.media.frame_rate import frame_rate_indices

TRACK_FORMAT_VERSION = 1
DEFAULT_MAX_GAP_SECONDS = 0.5  # default max_gap: half a second of frames
DEFAULT_REDETECT_EVERY = 30  # frames between forced full-frame searches

# Called with the number of frames done, or a tqdm-like object (its .update(1) is called).
Progress = Callable[[int], Any] | Any | None


@dataclass
class LandmarkTrack:
    """Per-frame landmarks of one face through a clip."""

    points: np.ndarray  # (T, 68, 2) float32 pixel (x, y); filled in frames without a face
    boxes: np.ndarray  # (T, 4) float32 x0, y0, x1, y1: the detector's face box, filled like points
    found: np.ndarray  # (T,) bool: the detector found the face in this frame
    fps: float  # frames per second of the clip
    backend: str  # landmark backend that produced the track ("fan" or "dlib")
    frame_size: tuple[int, int]  # (H, W) of the frames, in pixels
    long_gaps: list[tuple[int, int]] = field(default_factory=list)  # inclusive (start, end) of unfilled gaps

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float32)
        self.boxes = np.asarray(self.boxes, dtype=np.float32)
        self.found = np.asarray(self.found, dtype=bool)
        self.fps = float(self.fps)
        self.frame_size = (int(self.frame_size[0]), int(self.frame_size[1]))
        self.long_gaps = [(int(start), int(end)) for start, end in self.long_gaps]
        length = len(self.found)
        if self.points.shape != (length, NUM_LANDMARKS, 2) or self.boxes.shape != (length, 4):
            raise ValueError(
                f"inconsistent track shapes: points {self.points.shape}, boxes {self.boxes.shape}, "
                f"found {self.found.shape}; expected ({length}, 68, 2), ({length}, 4), ({length},)"
            )

    def __len__(self) -> int:
        return len(self.found)

    @property
    def face_fraction(self) -> float:
        """Fraction of frames where the detector found the face (0 for an empty track)."""
        return float(self.found.mean()) if len(self) else 0.0

    @property
    def usable(self) -> np.ndarray:
        """(T,) bool: frames with found or interpolated landmarks, i.e. outside ``long_gaps``."""
        mask = np.ones(len(self), dtype=bool)
        for start, end in self.long_gaps:
            mask[start : end + 1] = False
        return mask

    def head(self, count: int) -> LandmarkTrack:
        """The first ``count`` frames (at least one), with ``long_gaps`` clipped to them."""
        keep = max(1, min(int(count), len(self)))
        return LandmarkTrack(
            self.points[:keep],
            self.boxes[:keep],
            self.found[:keep],
            self.fps,
            self.backend,
            self.frame_size,
            [(start, min(end, keep - 1)) for start, end in self.long_gaps if start < keep],
        )

    def without_jumps(self) -> tuple[LandmarkTrack, list[int]]:
        """The track with single-frame landmark jumps interpolated (``face.jumps``), and the frames replaced.

        Replaced frames are marked not ``found``; the track itself is returned when there is no jump.
        """
        sizes = (self.boxes[:, 2:] - self.boxes[:, :2]).max(axis=1)[self.found]
        face_size = float(np.median(sizes)) if len(sizes) else 0.0
        reject = find_jumps(self.points, self.found & self.usable, face_size, self.fps)
        if not reject.any():
            return self, []
        points, boxes = self.points.copy(), self.boxes.copy()
        interpolate_frames(points, reject)
        interpolate_frames(boxes, reject)
        found = self.found & ~reject
        track = LandmarkTrack(points, boxes, found, self.fps, self.backend, self.frame_size, self.long_gaps)
        return track, [int(i) for i in np.flatnonzero(reject)]

    def save(self, path: str | os.PathLike) -> None:
        """Write the track to ``path`` as a compressed .npz (plain arrays, no pickles)."""
        gaps = np.array(self.long_gaps, dtype=np.int64).reshape(-1, 2)
        with open(path, "wb") as file:  # a file object: np.savez would otherwise append ".npz"
            np.savez_compressed(
                file,
                format_version=np.int64(TRACK_FORMAT_VERSION),
                points=self.points,
                boxes=self.boxes,
                found=self.found,
                fps=np.float64(self.fps),
                backend=np.array(self.backend),
                frame_size=np.array(self.frame_size, dtype=np.int64),
                long_gaps=gaps,
            )

    def resample(self, max_fps: float) -> LandmarkTrack:
        """The track at no more than ``max_fps`` (nearest frames, same duration); itself when slower."""
        indices, fps = frame_rate_indices(len(self), self.fps, max_fps)
        if fps == self.fps:
            return self
        usable = self.usable[indices]
        return LandmarkTrack(
            self.points[indices],
            self.boxes[indices],
            self.found[indices],
            fps,
            self.backend,
            self.frame_size,
            [(int(start), int(end)) for start, end in _runs(~usable)],
        )

    @classmethod
    def load(cls, path: str | os.PathLike, name: str | None = None) -> LandmarkTrack:
        """Read a track written by ``save``, checking every array.

        ``name`` is how messages call the file (default: its file name, never
        its folder). Raises ``TrackFormatError`` (an ``UnsupportedFileError``)
        saying what is wrong: not an .npz archive, damaged, pickled objects,
        missing arrays, wrong shapes, non-finite points, a bad frame rate.
        """
        label = name or Path(path).name
        try:
            arrays = _read_npz(Path(path))
        except FileNotFoundError as error:
            raise TrackFormatError(f"Landmark track file not found: {label}. Check the path.") from error
        except _TrackProblem as problem:
            raise _not_a_track(label, str(problem)) from None
        try:
            return _track_from_arrays(arrays)
        except _TrackProblem as problem:
            raise _not_a_track(label, str(problem)) from None


class _TrackProblem(Exception):
    """What is wrong with a track file, in words for the user (internal)."""


TRACK_HINT = "Make one from a clip with `python -m talking_head landmarks CLIP --save TRACK.npz`."
REQUIRED_ARRAYS = ("points", "fps")
MAX_TRACK_FPS = 1000.0  # a larger frame rate is no real motion: the file is broken
MAX_TRACK_ARRAY_BYTES = 64 * 2**20  # ~120 000 frames of points (over an hour at 25 fps)


def _not_a_track(label: str, problem: str) -> TrackFormatError:
    return TrackFormatError(f"{label} is not a landmark track: {problem}. {TRACK_HINT}")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz archive; ``_TrackProblem`` for other files, damage or pickled objects.

    Each array's header is read before its data, so an array that would
    decompress to more than :data:`MAX_TRACK_ARRAY_BYTES` is refused unread.
    """
    with open(path, "rb") as file:
        if file.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise _TrackProblem("it is not an .npz archive (a landmark track is a NumPy .npz file)")
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.filename.endswith(".npy"):
                    arrays[member.filename[: -len(".npy")]] = _read_member(archive, member)
    except _TrackProblem:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError):
        raise _TrackProblem("the archive is damaged or incomplete") from None
    return arrays


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> np.ndarray:
    name = member.filename[: -len(".npy")]
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read_header(stream)
    if dtype.hasobject:
        raise _TrackProblem(f"its '{name}' array holds Python objects (pickled data), which are never loaded")
    if math.prod(shape) * dtype.itemsize > MAX_TRACK_ARRAY_BYTES:
        raise _TrackProblem(
            f"its '{name}' array of shape {shape} is larger than {MAX_TRACK_ARRAY_BYTES // 2**20} MB"
        )
    with archive.open(member) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _scalar(arrays: dict[str, np.ndarray], key: str, kind: type) -> Any:
    value = arrays[key]
    if value.size != 1:
        raise _TrackProblem(f"'{key}' should be one value, not an array of shape {value.shape}")
    try:
        return kind(value.reshape(()).item())
    except (TypeError, ValueError):
        raise _TrackProblem(f"'{key}' should be a {kind.__name__}, not {value.dtype}") from None


def _track_from_arrays(arrays: dict[str, np.ndarray]) -> LandmarkTrack:
    """Check the arrays of a track file and build the track; ``_TrackProblem`` naming what is wrong."""
    missing = [key for key in REQUIRED_ARRAYS if key not in arrays]
    if missing:
        raise _TrackProblem(f"it has no {' and no '.join(repr(key) for key in missing)} array")
    points = arrays["points"]
    if points.dtype.kind not in "fiu":
        raise _TrackProblem(f"'points' holds {points.dtype} values, not numbers")
    if points.ndim != 3 or points.shape[1:] != (NUM_LANDMARKS, 2) or len(points) == 0:
        raise _TrackProblem(f"'points' has shape {points.shape}; a track's points are (frames ≥ 1, 68, 2)")
    finite = np.isfinite(points).all(axis=(1, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise _TrackProblem(
            f"'points' holds NaN or infinite values in {len(bad)} of {len(points)} frames "
            f"(the first is frame {bad[0]})"
        )
    length = len(points)
    fps = _scalar(arrays, "fps", float)
    if not (math.isfinite(fps) and 0 <= fps <= MAX_TRACK_FPS) or (fps == 0 and length > 1):
        raise _TrackProblem(
            f"its frame rate 'fps' is {fps:g}; it must be a number of frames per second above 0 "
            f"and at most {MAX_TRACK_FPS:g} (0 only for the one frame of a photo)"
        )
    boxes = arrays.get("boxes")
    if boxes is None:
        boxes = np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1)
    if boxes.shape != (length, 4) or boxes.dtype.kind not in "fiu":
        raise _TrackProblem(f"'boxes' has shape {boxes.shape}; expected ({length}, 4) numbers")
    found = arrays.get("found", np.ones(length, dtype=bool))
    if found.shape != (length,):
        raise _TrackProblem(f"'found' has shape {found.shape}; expected ({length},)")
    gaps = arrays.get("long_gaps", np.zeros((0, 2), dtype=np.int64))
    if gaps.dtype.kind not in "iu" or gaps.size % 2 or np.any(gaps < 0) or np.any(gaps >= length):
        raise _TrackProblem(f"'long_gaps' must be (start, end) frame pairs within the {length} frames")
    frame_size = arrays.get("frame_size")
    if frame_size is None:
        frame_size = np.ceil(points.max(axis=(0, 1))[::-1] + 1).clip(1)
    if frame_size.shape != (2,) or frame_size.dtype.kind not in "fiu" or np.any(frame_size <= 0):
        raise _TrackProblem("'frame_size' must be two positive numbers (height, width)")
    backend = str(arrays["backend"].reshape(-1)[0]) if "backend" in arrays and arrays["backend"].size else ""
    return LandmarkTrack(
        points=points,
        boxes=boxes,
        found=found.astype(bool),
        fps=fps,
        backend=backend or "unknown",
        frame_size=tuple(int(v) for v in frame_size),
        long_gaps=[tuple(gap) for gap in gaps.reshape(-1, 2).tolist()],
    )


def check_driving_track(track: LandmarkTrack, name: str) -> None:
    """Refuse a track that cannot drive a video: empty, or a photo's landmarks (fps 0).

    ``name`` is how the message calls it, e.g. "the driving motion ('talk.npz')".
    """
    if len(track) == 0:
        raise TrackFormatError(f"{name} has no frames; use a motion of at least one second")
    if not (math.isfinite(track.fps) and track.fps > 0):
        raise TrackFormatError(
            f"{name} has no frame rate (fps {track.fps:g}): it holds a photo's landmarks, not a motion. "
            f"Use the track of a clip. {TRACK_HINT}"
        )


def track_landmarks(
    frames: Iterable[np.ndarray],
    detector: LandmarkDetector,
    fps: float,
    max_gap: int | None = None,
    progress: Progress = None,
    redetect_every: int = DEFAULT_REDETECT_EVERY,
    reject_jumps: bool = True,
) -> LandmarkTrack:
    """Track the landmarks of the (largest) face through ``frames``.

    Args:
        frames: RGB uint8 frames (H, W, 3), all the same size; consumed as a stream.
        detector: a landmark detector, e.g. ``get_detector()``.
        fps: frame rate of the clip (stored in the track).
        max_gap: longest run of faceless frames that is interpolated; default
            half a second of frames (at least 1).
        progress: called with the number of frames done after each frame, or a
            tqdm-like object whose ``update(1)`` is called. Exceptions it raises
            (e.g. ``CancelledError``) propagate.
        redetect_every: force a full-frame search after this many hinted frames.
        reject_jumps: replace single-frame landmark jumps by interpolation
            (:meth:`LandmarkTrack.without_jumps`); turn it off for frames that
            are not consecutive (frames sampled far apart move a lot between them).

    Raises:
        NoFaceError: no frame contains a face.
        EmptyVideoError: ``frames`` is empty.
    """
    if max_gap is None:
        max_gap = max(1, round(DEFAULT_MAX_GAP_SECONDS * fps))
    points, boxes, found = [], [], []
    frame_size: tuple[int, int] | None = None
    box: np.ndarray | None = None  # face box of the last frame with a face
    since_full = 0  # frames since the last full-frame search
    for index, frame in enumerate(frames):
        frame_size = _check_frame_size(frame, frame_size, index)
        result, full = _detect_frame(detector, frame, box, force_full=since_full >= redetect_every)
        since_full = 0 if full else since_full + 1
        if result is None:
            points.append(np.full((NUM_LANDMARKS, 2), np.nan, dtype=np.float32))
            boxes.append(np.full(4, np.nan, dtype=np.float32))
        else:
            box = result.box
            points.append(result.points)
            boxes.append(result.box)
        found.append(result is not None)
        _report(progress, index + 1)
    if frame_size is None:
        raise EmptyVideoError("The clip has no frames. Please use another video.")
    found_arr = np.array(found, dtype=bool)
    if not found_arr.any():
        raise NoFaceError(
            f"No face was found in any of the {len(found_arr)} frames. Use a clip where one face is "
            "clearly visible and roughly facing the camera."
        )
    points_arr, boxes_arr = np.stack(points), np.stack(boxes)
    long_gaps = fill_gaps(points_arr, boxes_arr, found_arr, max_gap)
    track = LandmarkTrack(points_arr, boxes_arr, found_arr, fps, detector.name, frame_size, long_gaps)
    return track.without_jumps()[0] if reject_jumps else track


def _check_frame_size(frame: np.ndarray, frame_size: tuple[int, int] | None, index: int) -> tuple[int, int]:
    size = (int(frame.shape[0]), int(frame.shape[1]))
    if frame_size is not None and size != frame_size:
        raise ValueError(f"frame {index} has size {size}, the clip's first frame {frame_size}")
    return size


def _detect_frame(
    detector: LandmarkDetector, frame: np.ndarray, box: np.ndarray | None, force_full: bool
) -> tuple[FaceLandmarks | None, bool]:
    """Landmarks for one frame (or None) and whether a full-frame search ran."""
    if box is not None and not force_full:
        hinted = _try_detect(detector, frame, box)
        if hinted is not None and is_plausible(hinted, box):
            return hinted, False
    result = _try_detect(detector, frame, None)
    if result is None and box is not None and force_full:
        # The periodic search missed (e.g. a hard pose): the hinted search may still hold on.
        hinted = _try_detect(detector, frame, box)
        if hinted is not None and is_plausible(hinted, box):
            return hinted, True
    return result, True


def _try_detect(
    detector: LandmarkDetector, frame: np.ndarray, box: np.ndarray | None
) -> FaceLandmarks | None:
    try:
        return detector.detect(frame, box_hint=box)
    except NoFaceError:
        return None


def is_plausible(
    result: FaceLandmarks, hint: np.ndarray, max_shift: float = 0.5, max_scale: float = 2.0
) -> bool:
    """Lost-test: do hinted landmarks still look like the face in ``hint``?

    The landmarks' extent must be centred within ``max_shift`` box sizes of the
    hint's centre and its size within a factor ``max_scale`` of the hint's size.
    """
    points = result.points
    if not np.all(np.isfinite(points)):
        return False
    extent = np.concatenate([points.min(axis=0), points.max(axis=0)])
    hint_size = max(float(hint[2] - hint[0]), float(hint[3] - hint[1]), 1e-6)
    size = max(float(extent[2] - extent[0]), float(extent[3] - extent[1]))
    shift = np.hypot(*((extent[:2] + extent[2:]) / 2 - (hint[:2] + hint[2:]) / 2))
    return bool(shift <= max_shift * hint_size and 1 / max_scale <= size / hint_size <= max_scale)


def fill_gaps(
    points: np.ndarray, boxes: np.ndarray, found: np.ndarray, max_gap: int
) -> list[tuple[int, int]]:
    """Fill frames without a face in place; return the long gaps as inclusive (start, end).

    points (T, 68, 2), boxes (T, 4), found (T,) with at least one True.
    """
    long_gaps = []
    valid = np.flatnonzero(found)
    for start, end in _runs(~found):
        before = start - 1 if start > 0 else None
        after = end + 1 if end + 1 < len(found) else None
        if end - start + 1 > max_gap:
            long_gaps.append((start, end))
        elif before is not None and after is not None:
            weights = (np.arange(start, end + 1) - before) / (after - before)  # (G,)
            for array in (points, boxes):
                shape = (-1,) + (1,) * (array.ndim - 1)
                array[start : end + 1] = (1 - weights).reshape(shape) * array[before] + weights.reshape(
                    shape
                ) * array[after]
            continue
        # Long gaps and gaps at the clip's ends: hold the nearest found frame.
        for index in range(start, end + 1):
            nearest = valid[np.argmin(np.abs(valid - index))]
            points[index], boxes[index] = points[nearest], boxes[nearest]
    return long_gaps


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) of each run of True in a 1-D bool array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(s), int(e) - 1) for s, e in zip(edges[::2], edges[1::2])]


def _report(progress: Progress, done: int) -> None:
    if progress is None:
        return
    update = getattr(progress, "update", None)
    if callable(update):
        update(1)
    else:
        progress(done)

"""Landmark overlays: each frame with its landmark drawing, beside the rasterized landmark image y.

An overlay frame is ``(H, 2W, 3)``: on the left the input frame with the 68
points, the part polylines (same colours as :data:`~talking_head.face.raster.LANDMARK_PARTS`)
and the face box drawn on it; on the right ``rasterize_landmarks`` of the same
points at the frame's size, i.e. exactly what the networks see.

Clips are processed in two streamed passes, so a clip is never held in memory:

1. ``track_landmarks`` over a :class:`~talking_head.media.video_reader.VideoReader` (the
   track is small: ``(T, 68, 2)`` floats);
2. the clip is read again and each frame is drawn with its row of the *final*
   track (gap-filled) and written to a :class:`~talking_head.media.video_writer.VideoWriter`
   with the input's fps and audio.

The second decode costs a few ms per frame, far less than detection, and it
lets the overlay show exactly what was saved, including interpolated frames
(which a single pass cannot know until the face is found again).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from talking_head.errors import NoFaceError, TalkingHeadError, UnsupportedFileError
from talking_head.face.detection import NO_FACE_MESSAGE, LandmarkDetector
from talking_head.face.raster import LANDMARK_PARTS, line_width_for, rasterize_landmarks
from talking_head.face.tracking import LandmarkTrack, track_landmarks
from talking_head.media.images import IMAGE_EXTENSIONS, ImageSource, load_image
from talking_head.media.video_reader import VideoReader
from talking_head.media.video_writer import VideoWriter

__all__ = [
    "VIDEO_EXTENSIONS",
    "PHOTO_OVERLAY_SUFFIXES",
    "CLIP_OVERLAY_SUFFIXES",
    "MediaKind",
    "FrameState",
    "OverlayProgress",
    "OverlayResult",
    "media_kind",
    "check_overlay_path",
    "frame_states",
    "draw_landmarks",
    "compose_overlay",
    "photo_landmarks",
    "track_clip",
    "write_clip_overlay",
    "landmark_overlay",
    "describe_track",
]

MediaKind = Literal["photo", "clip"]
# How a frame's landmarks came about: detected, interpolated/held over a short
# gap, or held over a long gap (not usable for driving or training).
FrameState = Literal["found", "filled", "lost"]
# Called as progress(stage, done, total) with stage "landmarks" or "overlay";
# exceptions it raises (e.g. CancelledError) stop the work.
OverlayProgress = Callable[[str, int, int], Any]

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts", ".ogv"}
)
PHOTO_OVERLAY_SUFFIXES = (".png", ".jpg", ".jpeg")
CLIP_OVERLAY_SUFFIXES = (".mp4",)
ACCEPTED_INPUTS = "a photo (JPEG, PNG, WebP, BMP, TIFF, GIF) or a clip (MP4, MOV, WebM, MKV, AVI)"

# Overlay colours (RGB): the face box says how the frame's landmarks came about.
_STATE_COLORS: dict[str, tuple[int, int, int]] = {
    "found": (0, 255, 0),
    "filled": (255, 200, 0),
    "lost": (255, 0, 0),
}
_STATE_LABELS = {"found": "", "filled": "interpolated", "lost": "no face"}
_SNIFF_BYTES = 64


# --------------------------------------------------------------------------- input type


def _sniff(head: bytes) -> MediaKind | None:
    """Photo or clip from a file's first bytes (magic numbers), None when unknown."""
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")):
        return "photo"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "photo"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "clip"
    # ISO base media (MP4, MOV, 3GP): a box size, then 'ftyp' (or an older top-level box).
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "clip"
    if head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"OggS")):
        return "clip"  # Matroska/WebM, FLV, MPEG program/elementary stream, Ogg (Theora)
    return None


def media_kind(path: str | os.PathLike) -> MediaKind:
    """Whether ``path`` is a photo or a clip, from its content (magic bytes), else its extension.

    Raises:
        TalkingHeadError: the file does not exist or is not a file.
        UnsupportedFileError: the file is neither a photo nor a clip (e.g. a text file).
    """
    path = Path(path)
    if not path.exists():
        raise TalkingHeadError(f"Input file '{path}' does not exist. Check the path and try again.")
    if not path.is_file():
        raise TalkingHeadError(f"'{path}' is not a file. Give {ACCEPTED_INPUTS}.")
    with open(path, "rb") as file:
        kind = _sniff(file.read(_SNIFF_BYTES))
    if kind is not None:
        return kind
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "clip"  # formats without a simple signature (e.g. MPEG-TS): ffmpeg decides
    if suffix in IMAGE_EXTENSIONS:
        return "photo"  # load_image reports what is wrong with it
    raise UnsupportedFileError(
        f"'{path.name}' is neither a photo nor a video clip. Give {ACCEPTED_INPUTS}."
    )


def check_overlay_path(out: str | os.PathLike, kind: MediaKind) -> Path:
    """Validate the overlay's file name for the input kind: .png/.jpg for photos, .mp4 for clips.

    Raises:
        UnsupportedFileError: the suffix does not fit the input (e.g. a photo into .mp4).
        TalkingHeadError: the output folder does not exist.
    """
    out = Path(out)
    allowed = PHOTO_OVERLAY_SUFFIXES if kind == "photo" else CLIP_OVERLAY_SUFFIXES
    if out.suffix.lower() not in allowed:
        wanted = " or ".join(allowed)
        raise UnsupportedFileError(
            f"The input is a {kind}, so its overlay must be a {wanted} file, not '{out.name}'. "
            f"Change the output name, e.g. '{out.with_suffix(allowed[0]).name}'."
        )
    if not out.parent.is_dir():
        raise TalkingHeadError(f"Cannot write '{out}': folder '{out.parent}' does not exist. Create it first.")
    return out


# --------------------------------------------------------------------------- drawing


def frame_states(track: LandmarkTrack) -> list[FrameState]:
    """Per frame: "found" (detected), "filled" (interpolated/held over a short gap) or "lost"."""
    usable = track.usable
    return ["found" if found else ("filled" if ok else "lost") for found, ok in zip(track.found, usable)]


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray | None,
    box: np.ndarray | None = None,
    state: FrameState = "found",
) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) with the landmark polylines, points and face box drawn on it.

    ``points`` (68, 2) in pixels, or None when there is nothing to draw (a
    "no face" label is shown). ``state`` colours the box (green found, amber
    interpolated, red lost) and labels frames whose landmarks were not detected.
    """
    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    height, width = canvas.shape[:2]
    thickness = max(1, line_width_for(height, width) // 2)
    if points is not None and np.isfinite(points).all():
        _draw_parts(canvas, np.asarray(points, dtype=np.float64))
    else:
        state = "lost"
    if box is not None and np.isfinite(box).all():
        x0, y0, x1, y1 = (round(v) for v in box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), _STATE_COLORS[state], thickness, cv2.LINE_AA)
    label = _STATE_LABELS[state]
    if label:
        scale = max(0.4, min(height, width) / 512)
        origin = (max(2, width // 64), max(12, int(24 * scale)))
        cv2.putText(canvas, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, _STATE_COLORS[state],
                    max(1, round(2 * scale)), cv2.LINE_AA)
    return canvas


def _draw_parts(canvas: np.ndarray, points: np.ndarray) -> None:
    """Part polylines and a dot per point, sized by the face (not the frame) so small faces stay legible."""
    shift = 4  # sub-pixel coordinates in 1/16 px, as the rasterizer draws them
    limit = 4 * max(canvas.shape[:2])  # far-off points clamped: keeps fixed-point ints small
    fixed = np.round(np.clip(points, -limit, limit) * (1 << shift)).astype(np.int32)  # (68, 2)
    face_size = float(np.ptp(np.clip(points, -limit, limit), axis=0).max())
    thickness = max(1, round(face_size / 160))
    radius = round(max(1.0, face_size / 100) * (1 << shift))
    for part in LANDMARK_PARTS:
        polyline = fixed[list(part.indices)]
        cv2.polylines(canvas, [polyline.reshape(-1, 1, 2)], part.closed, part.color, thickness, cv2.LINE_AA, shift)
        for x, y in polyline:
            cv2.circle(canvas, (int(x), int(y)), radius, part.color, -1, cv2.LINE_AA, shift)


def compose_overlay(
    image: np.ndarray,
    points: np.ndarray | None,
    box: np.ndarray | None = None,
    state: FrameState = "found",
) -> np.ndarray:
    """The overlay frame ``(H, 2W, 3)``: the drawn frame, then ``rasterize_landmarks`` at (H, W).

    With no (finite) points the right half stays black.
    """
    height, width = image.shape[:2]
    drawn = draw_landmarks(image, points, box, state)
    if points is not None and np.isfinite(points).all():
        raster = rasterize_landmarks(points, (height, width))
    else:
        raster = np.zeros((height, width, 3), dtype=np.uint8)
    return np.concatenate([drawn, raster], axis=1)  # (H, 2W, 3)


# --------------------------------------------------------------------------- photos and clips


def photo_landmarks(image: ImageSource, detector: LandmarkDetector) -> tuple[np.ndarray, LandmarkTrack]:
    """The RGB photo and its landmarks as a one-frame track (``fps`` 0: a still).

    Raises:
        NoFaceError: no face in the photo.
        UnsupportedFileError, ImageReadError: the photo cannot be read.
    """
    rgb = load_image(image)
    try:
        face = detector.detect(rgb)
    except NoFaceError as error:
        raise NoFaceError(NO_FACE_MESSAGE) from error
    track = LandmarkTrack(
        points=face.points[None],  # (1, 68, 2)
        boxes=face.box[None],  # (1, 4)
        found=np.ones(1, dtype=bool),
        fps=0.0,
        backend=detector.name,
        frame_size=rgb.shape[:2],
    )
    return rgb, track


def track_clip(
    path: str | os.PathLike,
    detector: LandmarkDetector,
    max_seconds: float | None = None,
    progress: OverlayProgress | None = None,
    max_fps: float | None = None,
) -> LandmarkTrack:
    """Landmark track of a clip, streamed from disk (first ``max_seconds`` only, when given).

    ``max_fps``: a faster clip is tracked on its frames nearest to that rate
    (``VideoReader(max_fps=...)``), and the track has that fps.
    """
    with VideoReader(path, max_seconds=max_seconds, max_fps=max_fps) as reader:
        total = reader.info.num_frames
        report = None if progress is None else (lambda done: progress("landmarks", done, total))
        return track_landmarks(reader, detector, reader.info.fps, progress=report)


def write_clip_overlay(
    path: str | os.PathLike,
    track: LandmarkTrack,
    out: str | os.PathLike,
    max_seconds: float | None = None,
    progress: OverlayProgress | None = None,
) -> int:
    """Stream the overlay of ``track`` on the clip ``path`` into the MP4 ``out``; return frames written.

    Same fps as the clip, its audio copied (cut to the frames written).
    """
    states = frame_states(track)
    written = 0
    with VideoReader(path, max_seconds=max_seconds) as reader:
        with VideoWriter(out, reader.info.fps, audio_from=path, audio_max_seconds=max_seconds) as writer:
            for index, frame in enumerate(reader):
                if index >= len(track):
                    break  # a decoder yielding one frame more than on the first pass
                writer.write(compose_overlay(frame, track.points[index], track.boxes[index], states[index]))
                written += 1
                if progress is not None:
                    progress("overlay", written, len(track))
    return written


@dataclass
class OverlayResult:
    """What :func:`landmark_overlay` produced."""

    kind: MediaKind  # "photo" or "clip"
    track: LandmarkTrack  # (T, 68, 2) points etc.; T = 1 for a photo
    overlay_path: Path | None  # the written overlay file, if an output was given
    overlay_image: np.ndarray | None  # (H, 2W, 3) overlay of a photo; None for clips
    frames_in: int  # frames read from the input (1 for a photo)
    frames_out: int  # frames in the written overlay (0 when none was written)


def landmark_overlay(
    path: str | os.PathLike,
    detector: LandmarkDetector,
    out: str | os.PathLike | None = None,
    max_seconds: float | None = None,
    progress: OverlayProgress | None = None,
) -> OverlayResult:
    """Detect/track the landmarks of a photo or clip and (optionally) write its overlay to ``out``.

    The input type comes from the file's content (:func:`media_kind`); ``out``
    must be .png/.jpg for a photo and .mp4 for a clip. ``max_seconds`` limits
    how much of a clip is read (ignored for photos).

    Raises:
        UnsupportedFileError: the input is not a photo or clip, or ``out`` has the wrong suffix.
        NoFaceError: no face in the photo / in any frame of the clip.
        VideoReadError, ImageReadError, VideoWriteError: reading or writing failed.
    """
    kind = media_kind(path)
    out_path = check_overlay_path(out, kind) if out is not None else None
    if kind == "photo":
        rgb, track = photo_landmarks(path, detector)
        overlay = compose_overlay(rgb, track.points[0], track.boxes[0])
        if out_path is not None:
            _write_image(out_path, overlay)
        return OverlayResult(kind, track, out_path, overlay, 1, 1 if out_path is not None else 0)
    track = track_clip(path, detector, max_seconds=max_seconds, progress=progress)
    frames_out = 0
    if out_path is not None:
        frames_out = write_clip_overlay(path, track, out_path, max_seconds=max_seconds, progress=progress)
    return OverlayResult(kind, track, out_path, None, len(track), frames_out)


def _write_image(path: Path, rgb: np.ndarray) -> None:
    # cv2 writes BGR; imencode + write keeps non-ASCII paths working, unlike cv2.imwrite.
    ok, data = cv2.imencode(path.suffix.lower(), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise TalkingHeadError(f"Could not encode the overlay as '{path.suffix}'. Use a .png output.")
    try:
        path.write_bytes(data.tobytes())
    except OSError as error:
        raise TalkingHeadError(f"Cannot write '{path}': {error.strerror}. Check the folder's permissions.") from error


def describe_track(track: LandmarkTrack) -> str:
    """One-line summary: frames, faces found %, backend, long gaps."""
    found = int(track.found.sum())
    total = len(track)
    gaps = ", ".join(f"{start}-{end}" for start, end in track.long_gaps) or "none"
    fps = f"{track.fps:g} fps" if track.fps > 0 else "still"
    return (
        f"{total} frame{'s' if total != 1 else ''} ({fps}), face found in {100 * track.face_fraction:.1f}% "
        f"({found}/{total}), backend {track.backend}, long gaps: {gaps}"
    )

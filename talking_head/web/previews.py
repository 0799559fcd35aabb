"""Previews: each photo with its face box and landmarks, a motion's landmark sketch, a file's landmark overlay."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from talking_head.animation.overlay import (
    OverlayProgress,
    describe_track,
    draw_landmarks,
    landmark_overlay,
    media_kind,
)
from talking_head.animation.person import PhotoReport, analyze_photo
from talking_head.animation.pipeline import CROP_SMOOTHING, SYNTHETIC_METADATA
from talking_head.errors import TalkingHeadError
from talking_head.face.detection import LandmarkDetector
from talking_head.face.framing import (
    crop_box_from_landmarks,
    points_from_crop,
    points_to_crop,
    smooth_crop_boxes,
)
from talking_head.face.landmarks import get_detector
from talking_head.face.raster import rasterize_landmarks
from talking_head.face.tracking import LandmarkTrack, check_driving_track
from talking_head.media.video_writer import VideoWriter
from talking_head.web.files import OUTPUT_DIR, new_output_path
from talking_head.web.inputs import TRACK_SUFFIX, check_upload, load_photo, photo_label
from talking_head.web.limits import AppLimits

PREVIEW_MAX_SIDE = 512  # photo previews are shrunk to this longer side (they are only shown)


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _caption(label: str, name: str, report: PhotoReport) -> str:
    if not report.face_found:
        return f"⚠ {label} ({name}): {report.reason}"
    if not report.usable:
        return f"⚠ {label} ({name}) will be skipped: {report.reason}"
    remark = f"; {report.reason}" if report.reason else ""
    return f"{label} ({name}): face {report.box_size:.0f} px, yaw {report.yaw:+.0f}°{remark}"


def preview_photos(
    photos: Sequence[str | os.PathLike],
    detector: LandmarkDetector,
    limits: AppLimits,
    image_size: int = 256,
) -> tuple[list[tuple[np.ndarray, str]], list[str]]:
    """Each photo with its crop box (green usable, red not) and landmarks drawn, and a caption.

    Returns ``(gallery items, warnings)``: one ``(image, caption)`` per
    readable photo, and one warning per photo that cannot be used (unreadable,
    wrong type, no face, too small, turned away, blurry), naming the photo.
    Nothing is raised for a bad photo: the preview shows what it can.
    """
    items: list[tuple[np.ndarray, str]] = []
    warnings: list[str] = []
    for index, path in enumerate(list(photos)[: limits.max_photos]):
        label, name = photo_label(index), Path(path).name
        try:
            image = load_photo(path, label, limits)
        except TalkingHeadError as error:
            warnings.append(str(error))
            continue
        report, shot = analyze_photo(image, name, detector, image_size)
        drawn = image
        if shot is not None:
            points = points_from_crop(shot.points, shot.box, image_size)
            drawn = draw_landmarks(image, points)
            color = (0, 200, 0) if report.usable else (230, 0, 0)
            x0, y0, x1, y1 = (round(float(v)) for v in shot.box.as_xyxy())
            cv2.rectangle(drawn, (x0, y0), (x1, y1), color, max(2, max(image.shape[:2]) // 256), cv2.LINE_AA)
        caption = _caption(label, name, report)
        if not report.usable:
            warnings.append(caption.lstrip("⚠ "))
        items.append((_shrink(drawn, PREVIEW_MAX_SIDE), caption))
    if len(photos) > limits.max_photos:
        warnings.append(
            f"only the first {limits.max_photos} photos are previewed; the limit is {limits.max_photos} per request"
        )
    return items, warnings


MOTION_PREVIEW_SIZE = 256  # side of a motion's landmark-sketch preview, pixels


def sketch_frames(track: LandmarkTrack, size: int = MOTION_PREVIEW_SIZE) -> Iterator[np.ndarray]:
    """A track framed like a driving clip and rasterized: ``(size, size, 3)`` uint8 sketches (no video pixels)."""
    boxes = smooth_crop_boxes([crop_box_from_landmarks(p) for p in track.points], CROP_SMOOTHING)
    for points, box in zip(track.points, boxes):
        yield rasterize_landmarks(points_to_crop(points, box, size), size)


def write_motion_preview(
    track: LandmarkTrack, path: str | os.PathLike, size: int = MOTION_PREVIEW_SIZE
) -> Path:
    """Write the landmark-sketch preview MP4 of a track (at the track's fps, tagged synthetic)."""
    with VideoWriter(path, track.fps if track.fps > 0 else 25.0, metadata=SYNTHETIC_METADATA) as writer:
        for frame in sketch_frames(track, size):
            writer.write(frame)
    return Path(path)


def motion_preview(path: str | os.PathLike, limits: AppLimits, output_dir: Path = OUTPUT_DIR) -> Path:
    """The preview of a motion file: ``<name>.mp4`` next to it when present, else a sketch rendered now.

    Raises ``UnsupportedFileError`` when the file is not a landmark track.
    """
    path = check_upload(path, "the driving motion", limits)
    shipped = path.with_suffix(".mp4")
    if shipped.is_file():
        return shipped
    label = f"the driving motion ('{path.name}')"
    track = LandmarkTrack.load(path, name=label)
    check_driving_track(track, label)
    seconds = limits.max_driving_seconds
    if len(track) > seconds * track.fps:
        track = track.head(math.ceil(seconds * track.fps - 1e-6))
    track = track.resample(limits.max_fps).head(limits.max_frames)
    return write_motion_preview(track, new_output_path("motion", folder=output_dir))


def example_motions(folder: str | os.PathLike) -> list[tuple[Path, Path | None]]:
    """The example motions in ``folder``: ``(<name>.npz, <name>.mp4 preview or None)``, sorted by name."""
    folder = Path(folder)
    motions = []
    for track in sorted(folder.glob(f"*{TRACK_SUFFIX}")):
        preview = track.with_suffix(".mp4")
        motions.append((track, preview if preview.is_file() else None))
    return motions


def landmark_preview(
    path: str | os.PathLike, backend: str, max_seconds: float, progress: OverlayProgress | None = None
) -> tuple[np.ndarray | None, Path | None, str]:
    """The landmarks tab: ``(photo overlay or None, clip overlay MP4 or None, status line)`` for one file.

    ``backend`` names the landmark detector (``auto``, ``fan``, ``dlib``);
    at most ``max_seconds`` of a clip are read. Raises ``TalkingHeadError``
    subclasses for files that are not a photo or clip, or have no face.
    """
    kind = media_kind(path)
    out = new_output_path("landmarks") if kind == "clip" else None
    detector = get_detector(backend)
    result = landmark_overlay(path, detector, out=out, max_seconds=max_seconds, progress=progress)
    status = f"{Path(path).name}: {describe_track(result.track)}"
    if result.kind == "photo":
        return result.overlay_image, None, status
    return None, result.overlay_path, status

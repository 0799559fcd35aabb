"""Synthetic inputs for benchmarks: the example photo moving its head, landmarks nodding, a prepared dataset.

Made on the spot from ``examples/astronaut.png``, so a benchmark needs no data
set and measures the same frames everywhere (for throughput, not quality).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"


def synthetic_talking_frames(num_frames: int, size: int = 512, seed: int = 0) -> Iterator[np.ndarray]:
    """The example photo with small head motions (shift, scale, roll): ``size``² RGB frames."""
    import cv2

    from talking_head.media.images import load_image

    photo = cv2.resize(load_image(REPO_EXAMPLE), (size, size), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 4)
    for t in range(num_frames):
        angle = 3.0 * np.sin(0.21 * t + phase[0])
        scale = 1.0 + 0.03 * np.sin(0.13 * t + phase[1])
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
        matrix[:, 2] += size * 0.02 * np.sin([0.17 * t + phase[2], 0.11 * t + phase[3]])
        yield cv2.warpAffine(photo, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)


def write_synthetic_clip(path: Path, seconds: float, fps: float, size: int) -> Path:
    """Write :func:`synthetic_talking_frames` as an MP4 (no audio) of ``seconds`` at ``fps``."""
    from talking_head.media.video_writer import VideoWriter

    with VideoWriter(path, fps) as writer:
        for frame in synthetic_talking_frames(max(1, round(seconds * fps)), size):
            writer.write(frame)
    return path


def moving_track(source_landmarks: np.ndarray, num_frames: int) -> np.ndarray:
    """``(T, 68, 2)`` crop landmarks: ``source_landmarks`` nodding and opening the mouth."""
    t = np.arange(num_frames)[:, None, None]
    track = np.repeat(source_landmarks[None], num_frames, 0) + np.array([0.0, 1.0]) * 3 * np.sin(t / 5)
    track[:, 56:59, 1] += 4 * np.abs(np.sin(t[:, :, 0] / 3))  # lower lip
    return track.astype(np.float32)


def write_synthetic_dataset(
    folder: Path, image_size: int, num_videos: int, num_frames: int, landmarks_backend: str = "auto"
) -> Path:
    """A prepared folder of ``num_videos`` clips: the example face with moving landmarks (for throughput only).

    The example photo is framed once, as ``embed_person`` frames a photo;
    every frame reuses that crop with :func:`moving_track` landmarks.
    """
    from talking_head.animation.person import analyze_photo
    from talking_head.face.landmarks import get_detector
    from talking_head.training.data import MANIFEST_NAME, save_prepared_clip

    photo = next(synthetic_talking_frames(1, 512))
    _, shot = analyze_photo(photo, "example", get_detector(landmarks_backend), image_size)
    if shot is None:
        raise RuntimeError("no face found in the example photo")
    track = moving_track(shot.points, num_frames)
    lines = []
    for v in range(num_videos):
        rel = f"clips/video{v:02d}/clip.npz"
        boxes = np.tile([0.0, 0.0, float(image_size)], (num_frames, 1))
        save_prepared_clip(folder / rel, [shot.crop] * num_frames, track, boxes, np.arange(num_frames))
        lines.append(
            {
                "identity": f"video{v:02d}",
                "clip": "clip",
                "source": rel,
                "file": rel,
                "frames_used": num_frames,
                "frames_total": num_frames,
                "fps": 25.0,
                "frame_size": [image_size, image_size],
                "face_size": float(image_size),
                "backend": "synthetic",
                "skipped": None,
                "seconds": 0.0,
            }
        )
    (folder / MANIFEST_NAME).write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return folder

"""Synthetic data for tests: landmark templates, cartoon faces, prepared folders and clips.

Everything is made on the fly (no research clips, ``docs/DATA.md``). Other test
modules may import these helpers.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# A mirror-symmetric iBUG-68 face in a unit square (x, y in [0, 1]); the flip
# of this shape is itself, which the flip tests rely on.
_HALF_JAW = [
    (0.10, 0.35),
    (0.11, 0.46),
    (0.13, 0.57),
    (0.16, 0.67),
    (0.21, 0.76),
    (0.28, 0.84),
    (0.36, 0.90),
    (0.44, 0.94),
]
_HALF_BROW = [(0.18, 0.30), (0.24, 0.26), (0.31, 0.25), (0.38, 0.26), (0.44, 0.28)]
_NOSE_BRIDGE = [(0.5, 0.34), (0.5, 0.41), (0.5, 0.48), (0.5, 0.55)]
_HALF_NOSTRIL = [(0.41, 0.60), (0.45, 0.61)]
_HALF_EYE = [(0.22, 0.38), (0.27, 0.35), (0.33, 0.35), (0.38, 0.38), (0.33, 0.40), (0.27, 0.40)]
_HALF_OUTER_LIP = [(0.35, 0.74), (0.40, 0.71), (0.46, 0.70)]
_HALF_OUTER_LIP_LOW = [(0.46, 0.79), (0.40, 0.78)]
_HALF_INNER_LIP = [(0.38, 0.745), (0.45, 0.735)]
_HALF_INNER_LIP_LOW = [(0.45, 0.755)]


def _mirror(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(1.0 - x, y) for x, y in points]


def template_landmarks(size: int = 256, mouth_open: float = 0.0) -> np.ndarray:
    """A symmetric 68-point face filling a ``size``² crop, ``(68, 2)`` float32 in pixels.

    ``mouth_open`` in [0, 1] moves the lower lips down, for clips that "talk".
    """
    jaw = _HALF_JAW + [(0.5, 0.96)] + _mirror(_HALF_JAW)[::-1]
    brows = _HALF_BROW + _mirror(_HALF_BROW)[::-1]
    nose = _NOSE_BRIDGE + _HALF_NOSTRIL + [(0.5, 0.62)] + _mirror(_HALF_NOSTRIL)[::-1]
    right_eye = _HALF_EYE
    # Left eye in iBUG order: 42 is the inner corner (mirror of 39), 45 the outer one.
    left_eye = [_mirror(_HALF_EYE)[i] for i in (3, 2, 1, 0, 5, 4)]
    outer = (
        _HALF_OUTER_LIP
        + [(0.5, 0.71)]
        + _mirror(_HALF_OUTER_LIP)[::-1]
        + _mirror(_HALF_OUTER_LIP_LOW)[::-1]
        + [(0.5, 0.80)]
        + _HALF_OUTER_LIP_LOW
    )
    inner = (
        _HALF_INNER_LIP
        + [(0.5, 0.735)]
        + _mirror(_HALF_INNER_LIP)[::-1]
        + _mirror(_HALF_INNER_LIP_LOW)
        + [(0.5, 0.755)]
        + _HALF_INNER_LIP_LOW
    )
    points = np.array(jaw + brows + nose + right_eye + left_eye + outer + inner, dtype=np.float32)
    assert points.shape == (68, 2)
    lower = [55, 56, 57, 58, 59, 65, 66, 67, 7, 8, 9]
    points[lower, 1] += 0.06 * mouth_open
    # Map the unit square so that x = 0 and x = 1 land on pixel centres 0 and size - 1 mirrored exactly.
    return (points * (size - 1)).astype(np.float32)


def draw_face(
    points: np.ndarray, size: int, skin: tuple[int, int, int], background: tuple[int, int, int]
) -> np.ndarray:
    """A cartoon face drawn along ``points``: RGB uint8 ``(size, size, 3)``."""
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    hull = [tuple(p) for p in points[0:17]] + [tuple(p) for p in points[26:16:-1]]
    draw.polygon(hull, fill=skin)
    dark = tuple(int(c * 0.4) for c in skin)
    width = max(1, size // 64)
    for part in (range(17, 22), range(22, 27), range(27, 31), range(31, 36)):
        draw.line([tuple(points[i]) for i in part], fill=dark, width=width)
    for part in (range(36, 42), range(42, 48)):
        draw.polygon([tuple(points[i]) for i in part], fill=(250, 250, 250), outline=dark)
    draw.polygon([tuple(points[i]) for i in range(48, 60)], fill=(170, 40, 50))
    draw.polygon([tuple(points[i]) for i in range(60, 68)], fill=(60, 10, 10))
    return np.asarray(img, dtype=np.uint8)


def make_prepared_dataset(
    root: str | Path, num_videos: int = 2, num_frames: int = 10, size: int = 64, seed: int = 0
) -> Path:
    """Write a prepared folder (``manifest.jsonl`` + ``clips/``) of cartoon "videos" that talk.

    Each video has its own skin and background colour and head position; its
    frames differ in mouth opening and a small jitter. Returns ``root``.
    """
    from talking_head.training.data import MANIFEST_NAME, save_prepared_clip

    root = Path(root)
    rng = np.random.default_rng(seed)
    lines = []
    for v in range(num_videos):
        skin = tuple(int(c) for c in rng.integers(120, 230, 3))
        background = tuple(int(c) for c in rng.integers(0, 100, 3))
        shift = rng.uniform(-0.05, 0.05, 2) * size
        crops, landmarks = [], []
        for f in range(num_frames):
            points = template_landmarks(size, mouth_open=(f % 5) / 4) + shift + rng.normal(0, 0.3, (68, 2))
            crops.append(draw_face(points, size, skin, background))
            landmarks.append(points)
        rel = f"clips/person{v:02d}/talk.npz"
        save_prepared_clip(
            root / rel,
            crops,
            np.stack(landmarks),
            np.tile([0, 0, size], (num_frames, 1)),
            np.arange(num_frames),
        )
        lines.append(
            {
                "identity": f"person{v:02d}",
                "clip": "talk",
                "source": f"person{v:02d}/talk.mp4",
                "file": rel,
                "frames_used": num_frames,
                "frames_total": num_frames,
                "fps": 25.0,
                "frame_size": [size, size],
                "face_size": float(size),
                "backend": "synthetic",
                "skipped": None,
                "seconds": 0.0,
            }
        )
    (root / MANIFEST_NAME).write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return root


def write_clip(path: str | Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """Encode RGB uint8 frames as an H.264 MP4 with imageio-ffmpeg (no project code involved)."""
    import imageio_ffmpeg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        quality=8,
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def make_photo_clip(
    path: str | Path, photo: np.ndarray, num_frames: int = 12, size: int = 256, fps: float = 25.0
) -> Path:
    """A clip that slowly pans and zooms over ``photo`` (a real face the detectors find)."""
    img = Image.fromarray(photo).convert("RGB")
    frames = []
    for t in range(num_frames):
        zoom = 1.0 + 0.05 * t / max(1, num_frames - 1)
        w, h = img.size
        cw, ch = w / zoom, h / zoom
        dx = (w - cw) * t / max(1, num_frames - 1)
        frame = img.crop((dx, (h - ch) / 2, dx + cw, (h + ch) / 2)).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        frames.append(np.asarray(frame, dtype=np.uint8))
    return write_clip(path, frames, fps)


def write_tone(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """A 440 Hz mono WAV file: an audio track for driving clips made in tests."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path

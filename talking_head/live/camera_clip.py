"""Camera-like clips made by the model itself, for measuring live mode without anyone's recording.

:func:`mouth_track` holds a photo's face still and opens and closes its mouth
on a slow cycle (a clean signal to follow); :func:`face_clip` renders any
driving motion into the whole photo at its own size (only the head moves).
Together they give a talking face that a detector finds in every frame, from
a photo the project may ship (``examples/astronaut.png``), so the live-mode
benchmark and the browser test need no research clip. :func:`write_y4m`
writes frames in the format Chromium's fake camera plays
(``--use-file-for-fake-video-capture``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from talking_head.animation.compositing import NativeCompositor
from talking_head.animation.person import Person
from talking_head.animation.pipeline import animate_person, load_driving
from talking_head.face.detection import box_of_points
from talking_head.face.edits import open_mouth
from talking_head.face.tracking import LandmarkTrack
from talking_head.nets.model import TalkingHeadModel


def mouth_amounts(num_frames: int, fps: float, period_s: float) -> np.ndarray:
    """Mouth opening per frame, 0 (closed) … 1 (wide), a raised cosine of ``period_s`` seconds starting closed."""
    times = np.arange(num_frames) / fps
    return (0.5 - 0.5 * np.cos(2 * math.pi * times / period_s)).astype(np.float32)


def mouth_track(
    points: np.ndarray, frame_size: tuple[int, int], seconds: float, fps: float = 25.0, period_s: float = 2.0
) -> LandmarkTrack:
    """A track of the face ``points`` ``(68, 2)`` (pixels of a ``(H, W)`` image) opening its mouth every ``period_s``."""
    num_frames = max(1, round(seconds * fps))
    frames = np.stack(
        [open_mouth(points, float(amount)) for amount in mouth_amounts(num_frames, fps, period_s)]
    )
    boxes = np.stack([box_of_points(frame) for frame in frames])
    return LandmarkTrack(frames, boxes, np.ones(num_frames, bool), fps, "edit", frame_size)


def face_clip(
    model: TalkingHeadModel, person: Person, track: LandmarkTrack, runtime: str | None = None
) -> list[np.ndarray]:
    """``person`` driven by ``track`` in relative mode, as whole-photo frames (RGB uint8, the photo's size)."""
    motion = load_driving(track, model.config.image_size, smoothing=0.0)
    frames = animate_person(model, person, motion, reference="first", runtime=runtime)
    compositor = NativeCompositor.for_person(person, "photo")
    return [image for _, image in compositor.frames(frames)]


def write_y4m(frames: list[np.ndarray], path: str | os.PathLike, fps: int = 25) -> Path:
    """RGB uint8 frames of one even size as a 4:2:0 Y4M file (uncompressed: about 0.4 MB a 512² frame)."""
    height, width = frames[0].shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"Y4M 4:2:0 needs an even frame size, got {width}x{height}")
    path = Path(path)
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        out.writelines(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes() for frame in frames)
    return path

"""Single-frame landmark jumps: rejected in tracked clips, kept out of the example motions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _landmark_helpers import blank_frame, face_crop, paste

from talking_head.animation.overlay import track_clip
from talking_head.face.dlib_detector import DlibDetector
from talking_head.face.jumps import find_jumps, step_motion
from talking_head.face.tracking import LandmarkTrack
from talking_head.media.video_writer import VideoWriter

EXAMPLE_MOTIONS = sorted((Path(__file__).resolve().parent.parent / "examples" / "motions").glob("*.npz"))


def _face_points(centres: list[tuple[float, float]]) -> np.ndarray:
    """(T, 68, 2): a rigid 40-px face at each centre."""
    offsets = np.stack([np.linspace(-20, 20, 68), np.sin(np.linspace(0, 6, 68)) * 20], axis=1)
    return np.stack([np.float32(c) + offsets for c in centres]).astype(np.float32)


def _drift(count: int, speed: float = 0.5) -> list[tuple[float, float]]:
    return [(100.0 + speed * i, 100.0) for i in range(count)]


def test_an_outlier_frame_is_found() -> None:
    centres = _drift(30)
    centres[12] = (centres[12][0] + 8.0, centres[12][1])  # away for one frame, then back
    reject = find_jumps(_face_points(centres), np.ones(30, bool), face_size=40.0, fps=25.0)
    assert np.flatnonzero(reject).tolist() == [12]


def test_an_expression_in_one_frame_is_no_jump() -> None:
    points = _face_points(_drift(30))
    points[12, 48:68, 1] += 12.0  # the mouth opens wide for one frame: the nose and eyes stay
    assert not find_jumps(points, np.ones(30, bool), face_size=40.0, fps=25.0).any()


def test_a_lone_step_is_found_on_both_of_its_frames() -> None:
    centres = [(x + (6.0 if i >= 15 else 0.0), y) for i, (x, y) in enumerate(_drift(30))]
    reject = find_jumps(_face_points(centres), np.ones(30, bool), face_size=40.0, fps=25.0)
    assert np.flatnonzero(reject).tolist() == [14, 15]


@pytest.mark.parametrize(
    "centres",
    [
        _drift(30, speed=4.0),  # fast, steady motion
        [(100.0 + 6.0 * min(max(i - 10, 0), 4), 100.0) for i in range(30)],  # a quick move over 4 frames
        [(100.0, 100.0)] * 15 + [(300.0, 100.0)] * 15,  # a cut: far larger than the face
    ],
    ids=["fast", "quick-move", "cut"],
)
def test_real_motion_is_not_a_jump(centres: list[tuple[float, float]]) -> None:
    assert not find_jumps(_face_points(centres), np.ones(len(centres), bool), face_size=40.0, fps=25.0).any()


def _clip_with(path: Path, offset_of_frame) -> Path:
    """A 30-frame clip of the astronaut's face drifting 1 px a frame, plus ``offset_of_frame(i)`` px in x."""
    patch = face_crop()
    with VideoWriter(path, 25) as writer:
        for index in range(30):
            frame = blank_frame(320, 360)
            paste(frame, patch, x=60 + index + offset_of_frame(index), y=40, scale=1.0)
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def dlib_detector() -> DlibDetector:
    return DlibDetector()


def test_a_tracked_clip_with_an_outlier_frame_is_repaired(tmp_path: Path, dlib_detector: DlibDetector) -> None:
    clip = _clip_with(tmp_path / "outlier.mp4", lambda i: 16 if i == 14 else 0)
    track = track_clip(clip, dlib_detector)
    assert not track.found[14] and track.found[[13, 15]].all()
    expected = (track.points[13] + track.points[15]) / 2
    assert np.abs(track.points[14] - expected).max() < 1e-3
    assert step_motion(track.points).max() < 5.0  # the 16 px jump is gone


def test_a_tracked_clip_with_a_lone_step_is_smoothed(tmp_path: Path, dlib_detector: DlibDetector) -> None:
    clip = _clip_with(tmp_path / "step.mp4", lambda i: 14 if i >= 15 else 0)
    track = track_clip(clip, dlib_detector)
    assert not track.found[[14, 15]].any() and track.found[[13, 16]].all()
    assert step_motion(track.points).max() < 0.6 * 14  # spread over three steps


@pytest.mark.parametrize("path", EXAMPLE_MOTIONS, ids=lambda p: p.stem)
def test_no_example_motion_has_a_single_frame_jump(path: Path) -> None:
    """No step is both 5x the clip's median step and 2x each step next to it (calm-talking had 10.75 px at frame 94)."""
    steps = step_motion(LandmarkTrack.load(path).points)
    median = float(np.median(steps))
    lone = [
        (index + 1, round(float(steps[index]), 2))
        for index in range(1, len(steps) - 1)
        if steps[index] > 5 * median and steps[index] > 2 * max(steps[index - 1], steps[index + 1])
    ]
    assert not lone, f"single-frame jumps (frame, px) with median step {median:.2f} px: {lone}"

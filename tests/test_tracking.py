"""Landmark tracking: hinted search, re-detection, gap filling, saving; on a synthetic moving face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _bad_inputs import write_track_npz
from _landmark_helpers import FACE_CROP, astronaut, moving_face_clip

from talking_head.errors import EmptyVideoError, NoFaceError, TrackFormatError, UnsupportedFileError
from talking_head.face.detection import FaceLandmarks
from talking_head.face.dlib_detector import DlibDetector
from talking_head.face.tracking import LandmarkTrack, check_driving_track, fill_gaps, track_landmarks

# Frames: face, short gap (2 blank), face, long gap (3 blank), face; tracked with max_gap=2.
PATTERN = "FFFFF..FFFFF...FFFF"


@pytest.fixture(scope="module")
def dlib_detector() -> DlibDetector:
    return DlibDetector()


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], list]:
    return moving_face_clip(PATTERN)


@pytest.fixture(scope="module")
def track(clip, dlib_detector: DlibDetector) -> LandmarkTrack:
    frames, _ = clip
    return track_landmarks(iter(frames), dlib_detector, fps=25.0, max_gap=2)


def test_track_shapes_and_found(track: LandmarkTrack) -> None:
    assert len(track) == len(PATTERN)
    assert track.points.shape == (len(PATTERN), 68, 2) and track.points.dtype == np.float32
    assert track.boxes.shape == (len(PATTERN), 4) and track.boxes.dtype == np.float32
    np.testing.assert_array_equal(track.found, [c == "F" for c in PATTERN])
    assert track.fps == 25.0 and track.backend == "dlib" and track.frame_size == (320, 360)
    assert track.face_fraction == pytest.approx(PATTERN.count("F") / len(PATTERN))
    assert np.isfinite(track.points).all() and np.isfinite(track.boxes).all()


def test_points_follow_the_moving_face(clip, track: LandmarkTrack, dlib_detector: DlibDetector) -> None:
    _, transforms = clip
    reference = dlib_detector.detect(astronaut()).points - np.float32(FACE_CROP[:2])  # in crop coords
    for index, transform in enumerate(transforms):
        if transform is None:
            continue
        scale, dx, dy = transform
        expected = reference * scale + np.float32([dx, dy])
        assert np.abs(track.points[index] - expected).mean() < 3.0, f"frame {index}"


def test_short_gap_is_interpolated(track: LandmarkTrack) -> None:
    before, after = track.points[4], track.points[7]
    np.testing.assert_allclose(track.points[5], before + (after - before) / 3, atol=1e-3)
    np.testing.assert_allclose(track.points[6], before + 2 * (after - before) / 3, atol=1e-3)
    assert not track.found[5:7].any() and track.usable[5:7].all()


def test_long_gap_is_reported_and_holds_nearest(track: LandmarkTrack) -> None:
    assert track.long_gaps == [(12, 14)]
    np.testing.assert_array_equal(track.points[12], track.points[11])
    np.testing.assert_array_equal(track.points[13], track.points[11])  # ties go to the earlier frame
    np.testing.assert_array_equal(track.points[14], track.points[15])
    np.testing.assert_array_equal(track.boxes[14], track.boxes[15])
    assert not track.usable[12:15].any() and track.usable[15:].all()


def test_save_load_round_trip(track: LandmarkTrack, tmp_path: Path) -> None:
    path = tmp_path / "clip_landmarks"  # no suffix: written exactly where asked
    track.save(path)
    assert path.is_file()
    loaded = LandmarkTrack.load(path)
    np.testing.assert_array_equal(loaded.points, track.points)
    np.testing.assert_array_equal(loaded.boxes, track.boxes)
    np.testing.assert_array_equal(loaded.found, track.found)
    assert (loaded.fps, loaded.backend, loaded.frame_size, loaded.long_gaps) == (
        track.fps,
        track.backend,
        track.frame_size,
        track.long_gaps,
    )
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert {"points", "boxes", "found", "fps", "backend", "frame_size", "long_gaps"} <= set(data.files)


def test_load_rejects_other_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("not numpy")
    with pytest.raises(UnsupportedFileError, match="not a landmark track"):
        LandmarkTrack.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(UnsupportedFileError):
        LandmarkTrack.load(other)
    with pytest.raises(UnsupportedFileError, match="not found"):
        LandmarkTrack.load(tmp_path / "missing.npz")


def test_no_face_anywhere_raises(dlib_detector: DlibDetector) -> None:
    frames, _ = moving_face_clip("..", height=200, width=200)
    with pytest.raises(NoFaceError, match="2 frames"):
        track_landmarks(frames, dlib_detector, fps=25.0)


def test_empty_clip_raises(dlib_detector: DlibDetector) -> None:
    with pytest.raises(EmptyVideoError):
        track_landmarks([], dlib_detector, fps=25.0)


# --------------------------------------------------------------------------- tracker logic with a scripted detector


class ScriptedDetector:
    """A fake detector: frame i (pixel [0, 0, 0] == i) has a face at ``faces[i]`` (x, y) or none.

    With a hint it only finds the face when the hint box contains the face centre, like a
    windowed search. Records every call as (frame index, hinted?).
    """

    name = "scripted"

    def __init__(self, faces: list[tuple[float, float] | None]) -> None:
        self.faces = faces
        self.calls: list[tuple[int, bool]] = []

    def detect(self, image: np.ndarray, box_hint: np.ndarray | None = None) -> FaceLandmarks:
        index = int(image[0, 0, 0])
        self.calls.append((index, box_hint is not None))
        face = self.faces[index]
        if face is None:
            raise NoFaceError("no face")
        box = np.float32([face[0] - 20, face[1] - 20, face[0] + 20, face[1] + 20])
        inside = box_hint is None or (
            box_hint[0] <= face[0] <= box_hint[2] and box_hint[1] <= face[1] <= box_hint[3]
        )
        if not inside:
            raise NoFaceError("not near the hint")
        offsets = np.linspace(-20, 20, 68, dtype=np.float32)
        points = np.stack([face[0] + offsets, face[1] + offsets[::-1]], axis=1)
        return FaceLandmarks(points, box, 0.9, 1, self.name)


def _index_frames(count: int) -> list[np.ndarray]:
    frames = []
    for index in range(count):
        frame = np.zeros((8, 8, 3), np.uint8)
        frame[0, 0, 0] = index
        frames.append(frame)
    return frames


def test_hinted_search_after_first_face_and_periodic_full_search() -> None:
    faces = [(100.0 + i, 100.0) for i in range(12)]
    detector = ScriptedDetector(faces)
    track_landmarks(_index_frames(12), detector, fps=10.0, redetect_every=5)
    full = [index for index, hinted in detector.calls if not hinted]
    assert full == [0, 6]  # the first frame, then after 5 hinted frames
    assert len(detector.calls) == 12  # one call per frame: the hinted search always succeeded


def test_lost_face_triggers_full_search() -> None:
    faces = [(100.0, 100.0)] * 3 + [(300.0, 200.0)] * 3  # the face jumps away at frame 3
    detector = ScriptedDetector(faces)
    track = track_landmarks(_index_frames(6), detector, fps=10.0)
    assert (3, True) in detector.calls and (3, False) in detector.calls
    assert track.found.all()
    np.testing.assert_allclose(track.points[3].mean(axis=0), [300, 200], atol=1e-4)


def test_implausible_hinted_result_is_rejected() -> None:
    class Shrinking(ScriptedDetector):
        def detect(self, image, box_hint=None):
            result = super().detect(image, box_hint)
            if box_hint is not None:  # hinted result collapses to a point: must be rejected
                return FaceLandmarks(np.full((68, 2), 100, np.float32), result.box, 0.9, 1, self.name)
            return result

    detector = Shrinking([(100.0, 100.0)] * 3)
    track = track_landmarks(_index_frames(3), detector, fps=10.0)
    assert [hinted for _, hinted in detector.calls] == [False, True, False, True, False]
    assert np.ptp(track.points[2], axis=0).min() > 30  # the full search's points were kept


def test_edge_gaps_hold_nearest_and_default_max_gap() -> None:
    faces = [None, None] + [(50.0, 60.0), (60.0, 60.0)] + [None] * 30
    track = track_landmarks(_index_frames(len(faces)), ScriptedDetector(faces), fps=20.0)
    np.testing.assert_array_equal(track.points[0], track.points[2])
    assert track.long_gaps == [(4, 33)]  # 30 frames > half a second at 20 fps
    assert track.usable[:4].all()


def test_progress_callable_and_tqdm_like() -> None:
    seen: list[int] = []
    track_landmarks(_index_frames(4), ScriptedDetector([(9.0, 9.0)] * 4), fps=10.0, progress=seen.append)
    assert seen == [1, 2, 3, 4]

    class Bar:
        count = 0

        def update(self, n: int) -> None:
            self.count += n

    bar = Bar()
    track_landmarks(_index_frames(4), ScriptedDetector([(9.0, 9.0)] * 4), fps=10.0, progress=bar)
    assert bar.count == 4


def test_frames_of_different_sizes_are_rejected() -> None:
    frames = _index_frames(2) + [np.zeros((9, 8, 3), np.uint8)]
    with pytest.raises(ValueError, match="size"):
        track_landmarks(frames, ScriptedDetector([(9.0, 9.0)] * 3), fps=10.0)


def test_fill_gaps_interpolates_boxes_too() -> None:
    points = np.zeros((4, 68, 2), np.float32)
    points[3] = 3.0
    boxes = np.zeros((4, 4), np.float32)
    boxes[3] = 30.0
    found = np.array([True, False, False, True])
    assert fill_gaps(points, boxes, found, max_gap=2) == []
    np.testing.assert_allclose(points[1:3, 0, 0], [1.0, 2.0])
    np.testing.assert_allclose(boxes[1:3, 0], [10.0, 20.0])
    assert fill_gaps(points.copy(), boxes.copy(), found, max_gap=1) == [(1, 2)]


def test_track_validates_shapes() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        LandmarkTrack(np.zeros((3, 68, 2)), np.zeros((2, 4)), np.ones(3, bool), 25.0, "dlib", (10, 10))


def test_head_keeps_the_first_frames_and_clips_long_gaps():
    count = 10
    track = LandmarkTrack(
        points=np.arange(count * 68 * 2, dtype=np.float32).reshape(count, 68, 2),
        boxes=np.zeros((count, 4), np.float32),
        found=np.ones(count, bool),
        fps=25.0,
        backend="dlib",
        frame_size=(64, 64),
        long_gaps=[(2, 5), (7, 9)],
    )
    head = track.head(6)
    assert len(head) == 6
    np.testing.assert_array_equal(head.points, track.points[:6])
    assert head.long_gaps == [(2, 5)]
    assert track.head(4).long_gaps == [(2, 3)]
    assert len(track.head(0)) == 1 and len(track.head(99)) == count


# ----- loading checks every array, with the true reason and the user's name for the file ------


def _load_error(path: Path, name: str | None = None) -> str:
    with pytest.raises(TrackFormatError) as info:
        LandmarkTrack.load(path, name=name)
    message = str(info.value)
    assert str(path.parent) not in message, "a message never shows the folder the file sits in"
    assert "allow_pickle" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"points": None}, "has no 'points' array"),
        ({"fps": None, "points": None}, "no 'points' and no 'fps'"),
        ({"points": np.zeros((5, 10), dtype=np.float32)}, "'points' has shape (5, 10)"),
        ({"points": np.zeros((0, 68, 2), dtype=np.float32)}, "'points' has shape (0, 68, 2)"),
        ({"fps": np.float64(0.0)}, "frame rate 'fps' is 0"),
        ({"fps": np.float64(np.nan)}, "frame rate 'fps' is nan"),
        ({"fps": np.float64(-25.0)}, "frame rate 'fps' is -25"),
        ({"fps": np.zeros(3)}, "'fps' should be one value"),
        ({"boxes": np.zeros((3, 4), dtype=np.float32)}, "'boxes' has shape (3, 4)"),
        ({"long_gaps": np.array([[5, 99]])}, "'long_gaps'"),
    ],
)
def test_load_names_what_is_wrong(tmp_path: Path, overrides: dict, reason: str) -> None:
    path = write_track_npz(tmp_path / "motion.npz", **overrides)
    message = _load_error(path)
    assert message.startswith("motion.npz is not a landmark track: ") and reason in message


def test_load_refuses_non_finite_points_naming_the_frame(tmp_path: Path) -> None:
    points = np.full((10, 68, 2), 100.0, dtype=np.float32)
    points[3, 7] = np.nan
    points[6, 0, 1] = np.inf
    message = _load_error(write_track_npz(tmp_path / "nan.npz", points=points), name="the driving motion ('nan.npz')")
    assert message.startswith("the driving motion ('nan.npz') is not a landmark track")
    assert "NaN or infinite values in 2 of 10 frames (the first is frame 3)" in message


def test_load_refuses_pickled_objects_without_numpys_advice(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    with open(path, "wb") as file:
        np.savez(file, points=np.array([{"x": 1}], dtype=object), fps=np.float64(25))
    assert "Python objects (pickled data)" in _load_error(path)


def test_load_refuses_other_kinds_of_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    assert "it is not an .npz archive" in _load_error(text)
    npy = tmp_path / "points.npz"
    with open(npy, "wb") as file:
        np.save(file, np.zeros((3, 68, 2)))  # a bare .npy named .npz
    assert "it is not an .npz archive" in _load_error(npy)
    whole = write_track_npz(tmp_path / "whole.npz").read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole[: len(whole) // 2])
    assert "damaged or incomplete" in _load_error(cut)


def test_a_photo_track_loads_but_cannot_drive(tmp_path: Path) -> None:
    path = write_track_npz(tmp_path / "photo.npz", frames=1, fps=0.0)
    track = LandmarkTrack.load(path)  # what `landmarks PHOTO --save` writes: one frame, fps 0
    assert len(track) == 1 and track.fps == 0
    with pytest.raises(TrackFormatError, match=r"the driving motion \('photo.npz'\) has no frame rate"):
        check_driving_track(track, "the driving motion ('photo.npz')")


def test_resample_caps_the_frame_rate_and_keeps_the_duration(tmp_path: Path) -> None:
    track = LandmarkTrack.load(write_track_npz(tmp_path / "fast.npz", frames=500, fps=100.0))
    slow = track.resample(30.0)
    assert slow.fps == 30.0 and len(slow) == 150 and len(slow) / slow.fps == pytest.approx(len(track) / track.fps)
    np.testing.assert_array_equal(slow.points[:4], track.points[[0, 3, 7, 10]])  # nearest frames
    assert track.resample(200.0) is track
    gappy = LandmarkTrack(track.points, track.boxes, track.found, 100.0, "dlib", (256, 256), [(40, 99)])
    assert gappy.resample(30.0).long_gaps == [(12, 29)]  # source frames 40..99 ≈ output frames 12..29

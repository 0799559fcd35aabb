"""Live mode's library (talking_head/live/): the One Euro filter, tracking, a session frame by frame, the replay."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from _tiny_weights import make_tiny_weights

from talking_head.animation.pipeline import embed_person, load_model, render_landmarks
from talking_head.errors import NoFaceError
from talking_head.face.detection import FaceLandmarks, box_of_points
from talking_head.face.edits import inner_lip_gap, open_mouth
from talking_head.face.landmarks import get_detector
from talking_head.live.camera_clip import mouth_amounts, mouth_track, write_y4m
from talking_head.live.filters import OneEuroConfig, OneEuroFilter
from talking_head.live.render import FrameRenderer
from talking_head.live.replay import replay
from talking_head.live.session import POINT_FILTER, LiveFrame, LiveSession, LiveTracker
from talking_head.media.images import load_image
from talking_head.nets.warp import warp_shots


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    return load_model(make_tiny_weights(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def photo(astronaut_path) -> np.ndarray:
    return load_image(astronaut_path)


@pytest.fixture(scope="module")
def person(model, photo):
    return embed_person(model, [photo], get_detector("dlib"))


@pytest.fixture(scope="module")
def photo_points(photo) -> np.ndarray:
    return get_detector("dlib").detect(photo).points


class ScriptedDetector:
    """Each ``detect`` call returns the next landmarks it was given (``None``: no face; the last repeats)."""

    name = "scripted"

    def __init__(self, faces: list[np.ndarray | None]) -> None:
        self.faces, self.hints = list(faces), []

    def detect(self, image, box_hint=None) -> FaceLandmarks:
        self.hints.append(None if box_hint is None else np.asarray(box_hint))
        points = self.faces.pop(0) if len(self.faces) > 1 else self.faces[0]
        if points is None:
            raise NoFaceError("no face")
        return FaceLandmarks(points, box_of_points(points), 0.9, 1, self.name)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ----- the One Euro filter ----------------------------------------------------------------


def test_one_euro_passes_the_first_sample_and_holds_a_constant() -> None:
    smooth = OneEuroFilter()
    value = np.array([[3.0, 4.0]])
    assert np.array_equal(smooth(value, 0.0), value)
    for step in range(1, 20):
        assert np.allclose(smooth(value, step / 25), value)


def test_one_euro_removes_jitter_at_rest() -> None:
    rng = np.random.default_rng(0)
    noisy = 50 + rng.normal(0, 1.0, size=(250, 68, 2))
    smooth = OneEuroFilter(POINT_FILTER)  # 1 px of detector jitter in crop pixels, at 25 fps
    out = np.stack([smooth(frame, index / 25) for index, frame in enumerate(noisy)])
    assert out[50:].std() < noisy[50:].std() / 2


def test_one_euro_follows_fast_motion_with_less_lag_when_beta_is_positive() -> None:
    times = np.arange(50) / 25
    ramp = 200.0 * times  # 200 px/s
    lags = {}
    for beta in (0.0, 0.05):
        smooth = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=beta))
        out = np.array([smooth(np.array([value]), t)[0] for value, t in zip(ramp, times)])
        lags[beta] = ramp[-1] - out[-1]
    assert lags[0.05] < lags[0.0] / 3
    assert lags[0.05] >= 0


def test_one_euro_refuses_bad_parameters_and_shapes() -> None:
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroConfig(min_cutoff=0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroConfig(beta=float("nan"))
    smooth = OneEuroFilter()
    smooth(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="shape"):
        smooth(np.zeros(4), 1.0)


# ----- tracking -----------------------------------------------------------------------------


def test_tracker_searches_near_the_last_face_and_everywhere_when_it_is_lost(photo_points) -> None:
    detector = ScriptedDetector([photo_points, photo_points, None, photo_points, photo_points])
    tracker = LiveTracker(detector, redetect_every=30)
    frame = np.zeros((8, 8, 3), np.uint8)
    assert tracker(frame) is not None and detector.hints[-1] is None  # the first frame: a full search
    assert tracker(frame) is not None and detector.hints[-1] is not None  # then near the last face
    assert tracker(frame) is not None  # the hinted search fails: a full search in the same frame finds it
    assert detector.hints[-2] is not None and detector.hints[-1] is None


def test_tracker_searches_the_whole_frame_every_redetect_every_frames(photo_points) -> None:
    detector = ScriptedDetector([photo_points])
    tracker = LiveTracker(detector, redetect_every=3)
    for _ in range(8):
        tracker(np.zeros((8, 8, 3), np.uint8))
    assert [hint is None for hint in detector.hints] == [True, False, False, False, True, False, False, False]


# ----- one frame's render ---------------------------------------------------------------------


def _clip_warp(person, target: np.ndarray) -> np.ndarray:
    """The clip renderer's warp of ``person`` to ``target`` (PyTorch, ``nets/warp.warp_shots``), [0, 255] floats."""
    shots = torch.from_numpy(person.shots).permute(0, 3, 1, 2).float() / 127.5 - 1
    clip = warp_shots(shots, torch.from_numpy(person.shot_landmarks), torch.from_numpy(target[None]))
    return ((clip[0].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.float32)


def test_the_live_warp_matches_the_clip_renderers_warp(model, person) -> None:
    renderer = FrameRenderer(model, person, runtime="torch")
    target = open_mouth(person.source_landmarks, 1.0)
    live = renderer.warp(target)
    clip = _clip_warp(person, target)
    assert (
        np.abs(live - clip).mean() < 1.0
    )  # grey levels: remap rounds to uint8, the spline is sampled coarser
    assert np.abs(live - person.shots[0]).mean() > 2.0  # and the mouth did move


def test_a_live_frame_equals_the_clip_renderers_frame(model, person) -> None:
    renderer = FrameRenderer(model, person, runtime="torch")
    target = open_mouth(person.source_landmarks, 0.6)
    live = renderer(target).astype(np.float32)
    clip = next(iter(render_landmarks(model, person, target[None], runtime="torch"))).astype(np.float32)
    assert live.shape == clip.shape == (64, 64, 3)
    assert np.abs(live - clip).mean() < 2.0


# ----- a session -------------------------------------------------------------------------------


class RecordingRenderer:
    """A :class:`FrameRenderer` that remembers the landmarks it was given."""

    def __init__(self, renderer: FrameRenderer) -> None:
        self.renderer, self.size, self.given = renderer, renderer.size, []

    def __call__(self, points: np.ndarray, regions=None) -> np.ndarray:
        self.given.append(points)
        self.regions = regions
        return self.renderer(points, regions)


def _session(model, person, faces, clock, **kwargs) -> tuple[LiveSession, list]:
    renderer = RecordingRenderer(FrameRenderer(model, person, runtime="torch"))
    return LiveSession(renderer, person, ScriptedDetector(faces), clock=clock, **kwargs), renderer.given


def _frames(session: LiveSession, clock: FakeClock, count: int) -> LiveFrame:
    """Step ``session`` through ``count`` camera frames 40 ms apart (the first at the clock's time); the last result."""
    frame = np.zeros((512, 512, 3), np.uint8)
    for index in range(count):
        clock.now += 0.04 if index else 0.0
        shown = session.step(frame)
    return shown


def test_the_neutral_frame_renders_the_photos_own_landmarks_and_motion_moves_them(
    model, person, photo_points
) -> None:
    clock = FakeClock()
    opened = open_mouth(photo_points, 1.0)
    session, given = _session(model, person, [photo_points, photo_points, opened], clock)
    frame = np.zeros((512, 512, 3), np.uint8)
    first = session.step(frame)
    assert first.rendered and first.face_found
    assert np.abs(given[0] - person.source_landmarks).max() < 1e-3  # no motion at the neutral pose
    for _ in range(2):
        clock.now += 0.04
        last = session.step(frame)
    assert inner_lip_gap(last.points) > inner_lip_gap(person.source_landmarks) + 0.05
    assert "frames/s" in last.status and "s left" in last.status


def test_a_lost_face_holds_the_last_frame_and_says_so(model, person, photo_points) -> None:
    clock = FakeClock()
    session, _ = _session(model, person, [photo_points, None], clock)
    frame = np.zeros((512, 512, 3), np.uint8)
    shown = session.step(frame)
    clock.now += 0.04
    held = session.step(frame)
    assert not held.rendered and not held.face_found
    assert "No face" in held.status
    assert np.array_equal(held.image, shown.image)


def test_the_session_ends_at_its_limit(model, person, photo_points) -> None:
    clock = FakeClock()
    session, given = _session(model, person, [photo_points], clock, limit_s=2.0)
    frame = np.zeros((512, 512, 3), np.uint8)
    assert session.step(frame).rendered
    clock.now += 1.9
    assert session.step(frame).rendered
    clock.now += 0.2
    ended = session.step(frame)
    assert ended.ended and not ended.rendered and "limit" in ended.status
    assert len(given) == 2


def test_reset_neutral_measures_motion_from_the_next_frame(model, person, photo_points) -> None:
    clock = FakeClock()
    opened = open_mouth(photo_points, 1.0)
    session, given = _session(model, person, [photo_points, opened, opened], clock)
    _frames(session, clock, 2)
    session.reset_neutral()
    clock.now += 0.04
    _frames(session, clock, 1)
    assert np.abs(given[-1] - person.source_landmarks).max() < 1e-3


# ----- the replay ------------------------------------------------------------------------------


def _sleeping_step(seconds: float):
    image = np.zeros((16, 16, 3), np.uint8)

    def step(frame, arrived):
        time.sleep(seconds)
        return LiveFrame(image, "", rendered=True, face_found=True)

    return step


def test_replay_renders_every_frame_when_the_renderer_keeps_up() -> None:
    frames = [np.full((32, 32, 3), i, np.uint8) for i in range(10)]
    report = replay(_sleeping_step(0.005), frames, fps=10)  # 100 ms between frames, 5 ms a render
    assert report.offered == 10 and report.rendered + report.dropped == 10
    assert report.dropped <= 1  # none, unless the machine stalls the renderer for a whole frame interval
    assert report.latency_ms(50) >= 5  # the render's own time is inside the latency
    assert 5 < report.fps <= 11.5  # the camera's pace, not the renderer's


def test_replay_drops_the_frames_a_slow_renderer_cannot_take() -> None:
    frames = [np.zeros((32, 32, 3), np.uint8)] * 20
    report = replay(_sleeping_step(0.1), frames, fps=50)
    assert report.dropped > 5
    assert report.rendered + report.dropped + report.held == report.offered
    assert report.latency_ms(50) >= 100


def test_mouth_track_opens_and_closes_on_its_period(photo_points) -> None:
    amounts = mouth_amounts(50, 25, 2.0)
    assert amounts[0] == 0 and abs(amounts[25] - 1) < 1e-6 and amounts.argmax() == 25
    track = mouth_track(photo_points, (512, 512), seconds=2.0)
    gaps = [inner_lip_gap(points) for points in track.points]
    assert len(track) == 50 and track.found.all()
    assert gaps[25] > gaps[0] + 0.2


def test_a_pause_of_the_camera_starts_a_new_session(model, person, photo_points) -> None:
    clock = FakeClock()
    opened = open_mouth(photo_points, 1.0)
    session, given = _session(model, person, [photo_points, opened], clock, limit_s=2.0)
    frame = np.zeros((512, 512, 3), np.uint8)
    session.step(frame)
    clock.now += 2.5  # past the limit, after a pause: the camera was started again
    again = session.step(frame)
    assert again.rendered and not again.ended
    assert np.abs(given[-1] - person.source_landmarks).max() < 1e-3  # a new neutral pose


def test_write_y4m_writes_a_header_and_one_420_frame_each(tmp_path) -> None:
    frames = [np.full((4, 6, 3), value, np.uint8) for value in (0, 255)]
    data = write_y4m(frames, tmp_path / "clip.y4m").read_bytes()
    header, rest = data.split(b"\n", 1)
    assert header == b"YUV4MPEG2 W6 H4 F25:1 Ip A1:1 C420jpeg"
    frame_bytes = 6 * 4 * 3 // 2
    assert rest.count(b"FRAME\n") == 2 and len(rest) == 2 * (len(b"FRAME\n") + frame_bytes)
    with pytest.raises(ValueError, match="even"):
        write_y4m([np.zeros((3, 6, 3), np.uint8)], tmp_path / "odd.y4m")


def test_the_live_warp_blends_several_shots_as_the_clip_renderer_does(model, photo) -> None:
    flipped = np.ascontiguousarray(photo[:, ::-1])
    two = embed_person(model, [photo, flipped], get_detector("dlib"))
    assert len(two.shots) == 2
    renderer = FrameRenderer(model, two, runtime="torch")
    target = open_mouth(two.source_landmarks, 0.8)
    live = renderer.warp(target)
    clip = _clip_warp(two, target)
    assert np.abs(live - clip).mean() < 1.0


def test_motion_controls_reach_the_live_frames(model, person, photo_points) -> None:
    from talking_head.face.motion_controls import MotionControls

    clock = FakeClock()
    opened = open_mouth(photo_points, 1.0)
    session, given = _session(model, person, [photo_points, opened, opened], clock)
    _frames(session, clock, 2)
    assert inner_lip_gap(given[-1]) > inner_lip_gap(person.source_landmarks) + 0.05
    session.controls = MotionControls(region="eyes")  # the driver's mouth no longer reaches the photo
    clock.now += 0.04
    _frames(session, clock, 1)
    assert np.abs(given[-1][48:68] - person.source_landmarks[48:68]).max() < 1e-3
    assert session.renderer.regions is not None  # G repaints only the eyes; the warp is kept elsewhere


def test_a_live_frame_under_region_controls_keeps_the_warp_outside_the_region(model, person) -> None:
    renderer = FrameRenderer(model, person, runtime="torch")
    target = open_mouth(person.source_landmarks, 0.8)
    whole, lips = renderer(target), renderer(target, ("lips",))
    warp = np.clip(np.rint(renderer.warp(target)), 0, 255)
    eye = np.round(target[36:48].mean(0)).astype(int)  # far from the lips' mask
    mouth = np.round(target[60:68].mean(0)).astype(int)
    assert np.abs(lips[eye[1], eye[0]].astype(float) - warp[eye[1], eye[0]]).max() <= 1
    assert np.array_equal(lips[mouth[1], mouth[0]], whole[mouth[1], mouth[0]])

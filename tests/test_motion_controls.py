"""Motion controls (face/motion_controls.py): multiplier, regions, closed lips, blinks, on synthetic tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _synthetic import template_landmarks

from talking_head.face import edits
from talking_head.face.motion_controls import MotionControls, apply_motion_controls

MOUTH, EYES, BROWS = edits.MOUTH, edits.LEFT_EYE + edits.RIGHT_EYE, edits.BROWS


def _track(source: np.ndarray) -> np.ndarray:
    """Three frames: the photo; mouth open and a blink; the same turned 8° and shifted (head motion)."""
    talking = edits.open_eye(edits.open_eye(edits.open_mouth(source, 0.8), -1, "left"), -1, "right")
    moved = edits.roll_head(talking, 8.0) + np.float32([6.0, -4.0])
    return np.stack([source, talking, moved]).astype(np.float32)


def _iod_move(a: np.ndarray, b: np.ndarray, points: list[int]) -> float:
    return float(np.linalg.norm(a[..., points, :] - b[..., points, :], axis=-1).max() / np.linalg.norm(a[0, 45] - a[0, 36]))


@pytest.fixture()
def source() -> np.ndarray:
    return template_landmarks(256)


def test_default_controls_change_nothing(source) -> None:
    track = _track(source)
    assert np.array_equal(apply_motion_controls(source, track, MotionControls()), track)


def test_all_at_multiplier_one_reproduces_the_track(source) -> None:
    track = _track(source)
    out = apply_motion_controls(source, track, MotionControls(blinks="driver", multiplier=1.0, region="all", closed_lips=False))
    assert np.allclose(out, track, atol=1e-3)
    same = apply_motion_controls(source, track, MotionControls(region="expression"))
    assert np.allclose(same[:2], track[:2], atol=1e-3)  # no head motion in the first two frames


def test_multiplier_zero_keeps_the_photos_expression_and_follows_the_head(source) -> None:
    track = _track(source)
    out = apply_motion_controls(source, track, MotionControls(multiplier=0.0))
    assert np.allclose(out[1], source, atol=1e-3)
    assert np.allclose(out[2], edits.roll_head(source, 8.0) + np.float32([6.0, -4.0]), atol=0.05)
    double = apply_motion_controls(source, track, MotionControls(multiplier=2.0))
    assert edits.inner_lip_gap(double[1]) == pytest.approx(2 * edits.inner_lip_gap(track[1]) - edits.inner_lip_gap(source), abs=0.01)


def test_lips_only_moves_the_mouth_and_nothing_of_the_eyes_or_the_head(source) -> None:
    track = _track(source)
    out = apply_motion_controls(source, track, MotionControls(region="lips"))
    assert _iod_move(np.broadcast_to(source, out.shape), out, EYES + BROWS) < 1e-3
    assert edits.inner_lip_gap(out[2]) == pytest.approx(edits.inner_lip_gap(track[2]), abs=0.01)


def test_eyes_only_blinks_with_a_closed_mouth_and_pose_only_keeps_the_expression(source) -> None:
    track = _track(source)
    eyes = apply_motion_controls(source, track, MotionControls(region="eyes"))
    assert edits.eyelid_gap(eyes[1], "left") < 0.01 and _iod_move(np.broadcast_to(source, eyes.shape), eyes, MOUTH) < 1e-3
    pose = apply_motion_controls(source, track, MotionControls(region="pose"))
    assert np.allclose(pose[1], source, atol=1e-3)
    assert np.allclose(pose[2], edits.roll_head(source, 8.0) + np.float32([6.0, -4.0]), atol=0.05)


def test_closed_lips_closes_an_open_mouth_photo_before_the_motion(source) -> None:
    photo = edits.open_mouth(source, 1.0)
    track = np.stack([photo, edits.open_mouth(photo, 0.5)])
    out = apply_motion_controls(photo, track, MotionControls(closed_lips=True))
    assert edits.inner_lip_gap(out[0]) < 0.01
    assert edits.inner_lip_gap(out[1]) == pytest.approx(0.5 * edits.MAX_MOUTH_OPEN, abs=0.01)


def test_no_blinks_keeps_the_eyes_open_and_the_rest_of_the_motion(source) -> None:
    track = _track(source)
    out = apply_motion_controls(source, track, MotionControls(blinks="none"))
    for frame in out:
        assert edits.eyelid_gap(frame, "left") == pytest.approx(edits.eyelid_gap(source, "left"), abs=1e-3)
    assert edits.inner_lip_gap(out[1]) == pytest.approx(edits.inner_lip_gap(track[1]), abs=1e-3)
    wider = np.stack([source, edits.open_eye(source, 1.0, "left")])
    assert np.allclose(apply_motion_controls(source, wider, MotionControls(blinks="none")), wider, atol=1e-3)


def test_controls_refuse_values_out_of_range() -> None:
    with pytest.raises(ValueError, match="multiplier must be between 0 and 2"):
        MotionControls(multiplier=3)
    with pytest.raises(ValueError, match="region must be one of"):
        MotionControls(region="nose")
    with pytest.raises(ValueError, match="blinks must be one of"):
        MotionControls(blinks="some")


# ----- through the pipeline and the animate command (tiny weights, dlib, the example photo and motion) -----


def test_animate_person_applies_the_controls_to_the_landmarks_given_to_g(tmp_path, astronaut_path) -> None:
    from _tiny_weights import make_tiny_weights

    from talking_head.animation import pipeline
    from talking_head.face.landmarks import get_detector

    model = pipeline.load_model(make_tiny_weights(tmp_path / "w"), device="cpu")
    person = pipeline.embed_person(model, [astronaut_path], detector=get_detector("dlib"))
    track = Path(__file__).resolve().parent.parent / "examples" / "motions" / "calm-talking.npz"
    motion = pipeline.load_driving(track, model.config.image_size, max_seconds=0.4)
    kwargs = {"precision": "fp32", "runtime": "torch"}
    free = [f.landmarks for f in pipeline.animate_person(model, person, motion, **kwargs)]
    still = [
        f.landmarks
        for f in pipeline.animate_person(model, person, motion, controls=MotionControls(region="lips"), **kwargs)
    ]
    eyes = EYES + BROWS
    assert _iod_move(np.stack(free), np.broadcast_to(person.source_landmarks, (len(free), 68, 2)), eyes) > 0.005
    assert _iod_move(np.stack(still), np.broadcast_to(person.source_landmarks, (len(still), 68, 2)), eyes) < 1e-3


def test_animate_command_takes_the_motion_controls(tmp_path, astronaut_path, capsys) -> None:
    from _tiny_weights import make_tiny_weights

    from talking_head.__main__ import main

    track = Path(__file__).resolve().parent.parent / "examples" / "motions" / "calm-talking.npz"
    out = tmp_path / "o.mp4"
    argv = ["animate", "--photos", str(astronaut_path), "--driving", str(track), "--out", str(out), "--max-seconds", "0.4"]
    argv += ["--weights", str(make_tiny_weights(tmp_path / "w")), "--landmarks", "dlib", "--precision", "fp32"]
    code = main(argv + ["--multiplier", "0.5", "--region", "lips", "--closed-lips", "--blinks", "none"])
    assert code == 0, capsys.readouterr().err
    assert out.is_file()
    with pytest.raises(SystemExit):
        main(argv + ["--multiplier", "3"])
    assert "--multiplier: must be at most 2" in capsys.readouterr().err

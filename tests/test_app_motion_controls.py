"""The Animate tab's motion controls through ``app.animate`` (the ``/animate`` handler), without a server.

A spy around the job's ``animate_person`` keeps the landmarks each frame gave
G (``AnimationFrame.landmarks``, what the landmark image is drawn from) and
the photo's own landmarks, so the tests check what G was asked to render,
not how a tiny random G rendered it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from _tiny_weights import make_tiny_weights

import app
from talking_head.face import edits
from talking_head.face.landmarks import get_detector
from talking_head.face.motion import STABLE_POINTS, apply_affine, fit_similarity
from talking_head.web import job as job_module
from talking_head.web.limits import AppLimits
from talking_head.web.state import AppState, load_app_weights

EXPRESSIONS = Path(__file__).resolve().parent.parent / "examples" / "motions" / "expressions.npz"
EYES_AND_BROWS = edits.LEFT_EYE + edits.RIGHT_EYE + edits.BROWS


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("controls") / "weights")


@pytest.fixture()
def page(tiny_weights: Path) -> Iterator[None]:
    state = AppState(
        weights=load_app_weights(str(tiny_weights), device="cpu"),
        limits=AppLimits(max_driving_seconds=2.0),
        detector=get_detector("dlib"),
    )
    app.build_demo(state)
    yield
    app._STATE = None


@pytest.fixture()
def fed_to_g(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """``{"photo": [the photo's landmarks], "frames": [the landmarks given to G, per frame]}`` of the last render."""
    seen: dict[str, list] = {"photo": [], "frames": []}
    real = job_module.animate_person

    def spy(model, person, motion, **kwargs):
        seen["photo"].append(person.source_landmarks.copy())
        for frame in real(model, person, motion, **kwargs):
            seen["frames"].append(frame.landmarks.copy())
            yield frame

    monkeypatch.setattr(job_module, "animate_person", spy)
    return seen


def _animate(photo: Path, **controls) -> str:
    _, _, status = app.animate(
        [str(photo)], None, str(EXPRESSIONS), max_seconds=2, paste_back=False, output_size=0, **controls
    )
    return status


def _iod(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[45] - points[36]))


def _largest_move(photo: np.ndarray, frames: list[np.ndarray], points: list[int], align: bool = False) -> float:
    """The largest displacement over frames of ``points`` from the photo's, in inter-ocular distances."""
    stable = list(STABLE_POINTS)
    moves = []
    for frame in frames:
        if align:  # the head pose taken out: the expression only
            frame = apply_affine(frame, fit_similarity(frame[stable], photo[stable]))
        moves.append(np.linalg.norm(frame[points] - photo[points], axis=1).max())
    return float(max(moves)) / _iod(photo)


def test_multiplier_zero_gives_g_the_photos_own_expression(page, fed_to_g, astronaut_path: Path) -> None:
    status = _animate(astronaut_path, multiplier=0)
    photo, frames = fed_to_g["photo"][0], fed_to_g["frames"]
    assert len(frames) == 50 and "motion: all ×0" in status
    everything = list(range(68))
    assert _largest_move(photo, frames, everything, align=True) < 1e-3  # the expression: the photo's
    assert _largest_move(photo, frames, everything) > 0.01  # the head still follows the driver
    fed_to_g["photo"].clear(), fed_to_g["frames"].clear()
    _animate(astronaut_path)  # the defaults: the driver's expression reaches G
    assert _largest_move(fed_to_g["photo"][0], fed_to_g["frames"], everything, align=True) > 0.05


def test_multiplier_zero_without_head_pose_is_the_photo_in_every_frame(page, fed_to_g, astronaut_path) -> None:
    _animate(astronaut_path, multiplier=0, region="expression")
    photo = fed_to_g["photo"][0]
    assert all(np.allclose(frame, photo, atol=1e-3) for frame in fed_to_g["frames"])


def test_lips_only_keeps_the_eyes_and_brows_and_moves_the_mouth(page, fed_to_g, astronaut_path: Path) -> None:
    status = _animate(astronaut_path, region="lips", blinks="none")
    photo, frames = fed_to_g["photo"][0], fed_to_g["frames"]
    assert "motion: lips only, no blinks" in status
    assert _largest_move(photo, frames, EYES_AND_BROWS) < 1e-4
    assert max(edits.inner_lip_gap(frame) for frame in frames) > edits.inner_lip_gap(photo) + 0.05


def test_eyes_only_and_head_pose_only(page, fed_to_g, astronaut_path: Path) -> None:
    _animate(astronaut_path, region="eyes")
    photo, frames = fed_to_g["photo"][0], fed_to_g["frames"]
    assert _largest_move(photo, frames, edits.MOUTH) < 1e-4 and _largest_move(photo, frames, EYES_AND_BROWS) > 0.01
    fed_to_g["photo"].clear(), fed_to_g["frames"].clear()
    _animate(astronaut_path, region="pose")
    photo, frames = fed_to_g["photo"][0], fed_to_g["frames"]
    assert _largest_move(photo, frames, list(range(68)), align=True) < 1e-3


def test_closed_lips_closes_the_photos_mouth_before_the_motion(page, fed_to_g, astronaut_path: Path) -> None:
    _animate(astronaut_path, closed_lips=True, multiplier=0)
    photo, frames = fed_to_g["photo"][0], fed_to_g["frames"]
    closed = edits.close_lips(photo)
    assert _largest_move(closed, frames, edits.MOUTH, align=True) < 1e-3


@pytest.mark.parametrize(
    ("controls", "message"),
    [
        ({"multiplier": 2.5}, r"Motion multiplier \(multiplier=2.5\) must be a number from 0 to 2"),
        ({"multiplier": "lots"}, r"Motion multiplier \(multiplier='lots'\) must be a number"),
        ({"region": "nose"}, r"What the driver moves \(region='nose'\) must be one of 'all', 'lips'"),
        ({"blinks": "always"}, r"Blinks \(blinks='always'\) must be 'driver' or 'none'"),
    ],
)
def test_bad_controls_are_refused_by_name(page, astronaut_path: Path, controls, message) -> None:
    with pytest.raises(gr.Error, match=message):
        _animate(astronaut_path, **controls)

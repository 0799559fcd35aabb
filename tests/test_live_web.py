"""The Live tab's work without Gradio (talking_head/web/live.py), and the tab on the page."""

from __future__ import annotations

import numpy as np
import pytest
from _tiny_weights import make_tiny_weights

from talking_head.animation.pipeline import load_model
from talking_head.errors import TalkingHeadError
from talking_head.face.landmarks import get_detector
from talking_head.web.limits import AppLimits
from talking_head.web.live import (
    NO_SESSION,
    WAITING,
    ZERO_GPU_REASON,
    live_frame,
    live_unavailable,
    prepare_live,
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    return load_model(make_tiny_weights(tmp_path_factory.mktemp("tiny")))


def test_prepare_live_makes_a_session_with_the_limits_length(model, astronaut_path) -> None:
    limits = AppLimits(live_seconds=12)
    session, status = prepare_live(model, [str(astronaut_path)], 0, get_detector("dlib"), limits)
    assert session.limit_s == 12
    assert status.startswith("Ready: 1 photo, 0 fine-tuning steps") and "12 s" in status


def test_prepare_live_fine_tunes_when_asked(model, astronaut_path) -> None:
    session, status = prepare_live(model, [str(astronaut_path)], 2, get_detector("dlib"), AppLimits())
    assert "2 fine-tuning steps" in status


@pytest.mark.parametrize(
    ("photos", "steps", "message"),
    [
        ([], 0, "no photo"),
        (["A"] * 9, 0, "limit is 8"),
        (None, 0, "no photo"),
        (["ASTRONAUT"], 2.5, "whole number"),
        (["ASTRONAUT"], 1000, "from 0 to 100"),
        (["ASTRONAUT"], "many", "whole number"),
    ],
)
def test_prepare_live_refuses_bad_requests_with_a_specific_message(
    model, astronaut_path, photos, steps, message
):
    photos = None if photos is None else [str(astronaut_path) if p == "ASTRONAUT" else p for p in photos]
    with pytest.raises(TalkingHeadError, match=message):
        prepare_live(model, photos, steps, get_detector("dlib"), AppLimits())


def test_prepare_live_names_a_file_that_is_not_an_image(model, tmp_path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(TalkingHeadError, match="photo 1"):
        prepare_live(model, [str(text)], 0, get_detector("dlib"), AppLimits())


def test_live_frame_without_a_session_or_a_frame_says_what_to_do(model, astronaut_path) -> None:
    assert live_frame(None, np.zeros((8, 8, 3), np.uint8)) == (None, NO_SESSION)
    session, _ = prepare_live(model, [str(astronaut_path)], 0, get_detector("dlib"), AppLimits())
    assert live_frame(session, None) == (None, WAITING)


def test_live_frame_renders_a_camera_frame_with_a_face(model, astronaut_path) -> None:
    from talking_head.media.images import load_image

    session, _ = prepare_live(model, [str(astronaut_path)], 0, get_detector("dlib"), AppLimits())
    image, status = live_frame(session, load_image(astronaut_path))
    assert image.shape == (64, 64, 3) and status.startswith("Live:")
    black, status = live_frame(session, np.zeros((480, 640, 3), np.uint8))
    assert np.array_equal(black, image) and "No face" in status  # held


def test_live_mode_is_not_offered_on_zerogpu() -> None:
    assert live_unavailable({"SPACES_ZERO_GPU": "true"}) == ZERO_GPU_REASON
    assert live_unavailable({}) is None


def test_the_page_has_a_live_tab_and_on_zerogpu_says_why_not(tmp_path, monkeypatch) -> None:
    import app
    from talking_head.web.state import AppState, load_app_weights

    state = AppState(
        load_app_weights(str(make_tiny_weights(tmp_path / "w"))), AppLimits(), get_detector("dlib")
    )
    ids = lambda demo: {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"live-camera", "live-result", "live-prepare"} <= ids(app.build_demo(state))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    page = app.build_demo(state)
    assert "live-unavailable" in ids(page) and "live-camera" not in ids(page)


def test_live_controls_are_checked_and_applied_to_a_running_session(model, astronaut_path) -> None:
    from talking_head.web.live import live_controls, set_live_controls

    with pytest.raises(TalkingHeadError, match="multiplier"):
        live_controls(3.0)
    with pytest.raises(TalkingHeadError, match="region"):
        live_controls(1.0, "nose")
    session, _ = prepare_live(
        model,
        [str(astronaut_path)],
        0,
        get_detector("dlib"),
        AppLimits(),
        controls=live_controls(0.5, "lips"),
    )
    assert session.controls.region == "lips" and session.controls.multiplier == 0.5
    assert "lips" in set_live_controls(session, live_controls(1.0, "lips", True)).lower()
    assert session.controls.closed_lips
    set_live_controls(session, live_controls())
    assert session.controls is None  # the defaults: the driver's motion as it is
    assert set_live_controls(None, live_controls()) == NO_SESSION


def test_a_frame_that_fails_holds_the_last_one_and_the_stream_goes_on(
    model, astronaut_path, monkeypatch
) -> None:
    session, _ = prepare_live(model, [str(astronaut_path)], 0, get_detector("dlib"), AppLimits())

    def broken(frame, timestamp=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(session, "step", broken)
    image, status = live_frame(session, np.zeros((480, 640, 3), np.uint8))
    assert image is session.last_image and "could not be rendered (RuntimeError)" in status


def test_live_can_show_the_whole_photo_with_a_still_background(model, astronaut_path) -> None:
    from talking_head.media.images import load_image

    photo = load_image(astronaut_path)
    session, status = prepare_live(
        model, [str(astronaut_path)], 0, get_detector("dlib"), AppLimits(), watermark=False, output="photo"
    )
    assert "whole photo at 512×512" in status
    session.step(photo, 0.0)
    face = session.step(photo, 0.04)  # the same face: the neutral pose again
    assert face.image.shape == photo.shape
    corner = (slice(0, 60), slice(0, 60))  # far from the head
    assert face.rendered and np.abs(face.image[corner].astype(int) - photo[corner]).max() <= 2


def test_prepare_live_refuses_an_unknown_output(model, astronaut_path) -> None:
    with pytest.raises(TalkingHeadError, match="live output"):
        prepare_live(model, [str(astronaut_path)], 0, get_detector("dlib"), AppLimits(), output="poster")

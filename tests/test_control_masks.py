"""Where the motion controls let G repaint (face/control_masks.py), and the warp elsewhere, through the pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _synthetic import template_landmarks

from talking_head.face import edits
from talking_head.face.control_masks import keep_warp, rendered_mask, rendered_regions
from talking_head.face.motion_controls import MotionControls

EYES_BROWS = edits.LEFT_EYE + edits.RIGHT_EYE + edits.BROWS


def _at(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The mask's values at the pixels nearest ``points`` ``(N, 2)``."""
    cols, rows = np.round(points).astype(int).T
    return mask[rows, cols]


def test_the_regions_g_repaints_follow_the_controls() -> None:
    assert rendered_regions(None) is None
    assert rendered_regions(MotionControls()) is None
    assert rendered_regions(MotionControls(multiplier=0.5)) is None  # all: the whole expression moves
    assert rendered_regions(MotionControls(region="expression", blinks="none")) is None
    assert rendered_regions(MotionControls(region="lips")) == ("lips",)
    assert rendered_regions(MotionControls(region="eyes")) == ("eyes",)
    assert rendered_regions(MotionControls(region="eyes", closed_lips=True)) == ("eyes", "lips")
    assert rendered_regions(MotionControls(region="pose")) == ()
    assert rendered_regions(MotionControls(multiplier=0.0)) == ()
    assert rendered_regions(MotionControls(multiplier=0.0, region="eyes", closed_lips=True)) == ("lips",)


def test_the_lips_mask_covers_mouth_and_jaw_and_spares_the_eyes_and_brows() -> None:
    points = template_landmarks(256)
    lips = rendered_mask(points, ("lips",), 256)
    assert lips.shape == (256, 256) and lips.dtype == np.float32
    assert np.all(_at(lips, points[edits.MOUTH + [8]]) == 1.0)
    assert np.all(_at(lips, points[EYES_BROWS]) == 0.0)
    assert 0.0 < lips.mean() < 0.35  # the template face fills its crop
    eyes = rendered_mask(points, ("eyes",), 256)
    assert np.all(_at(eyes, points[EYES_BROWS]) == 1.0)
    assert np.all(_at(eyes, points[edits.MOUTH]) == 0.0)
    assert not rendered_mask(points, (), 256).any()


def test_keep_warp_is_g_where_the_mask_is_one_and_the_warp_where_it_is_zero() -> None:
    rng = np.random.default_rng(0)
    result, warp = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    mask = np.zeros((32, 32), np.float32)
    mask[:, 16:] = 1.0
    mask[:, 15] = 0.5
    out = keep_warp(result, warp, mask)
    assert np.array_equal(out[:, :15], warp[:, :15]) and np.array_equal(out[:, 16:], result[:, 16:])
    middle = (result[:, 15].astype(np.float32) + warp[:, 15]) / 2
    assert np.abs(out[:, 15] - middle).max() <= 0.5
    assert np.array_equal(keep_warp(result, warp, np.zeros_like(mask)), warp)


# ----- through animate_person (tiny warp-guided weights, dlib, the example photo and motion) -----


@pytest.fixture(scope="module")
def tiny_person(tmp_path_factory, astronaut_path):
    from _tiny_weights import make_tiny_weights

    from talking_head.animation import pipeline
    from talking_head.face.landmarks import get_detector

    model = pipeline.load_model(make_tiny_weights(tmp_path_factory.mktemp("w")), device="cpu")
    person = pipeline.embed_person(model, [astronaut_path], detector=get_detector("dlib"))
    track = Path(__file__).resolve().parent.parent / "examples" / "motions" / "expressions.npz"
    motion = pipeline.load_driving(track, model.config.image_size, max_seconds=0.6)
    return model, person, motion


@pytest.fixture()
def repainting_g(monkeypatch):
    """G's output inverted: a G that repaints every pixel (the tiny random G keeps the warp almost everywhere)."""
    from talking_head.animation import rendering

    generate = rendering.generate_images
    monkeypatch.setattr(rendering, "generate_images", lambda *args: 255 - generate(*args))


def _frames(tiny_person, controls):
    from talking_head.animation import pipeline

    model, person, motion = tiny_person
    return list(
        pipeline.animate_person(model, person, motion, precision="fp32", runtime="torch", controls=controls)
    )


def _g_alone(tiny_person, frames) -> np.ndarray:
    """G's output for the frames' own landmarks, without the control mask: ``(T, S, S, 3)``."""
    from talking_head.animation import pipeline

    model, person, _ = tiny_person
    points = np.stack([frame.landmarks for frame in frames])
    return np.stack(list(pipeline.render_landmarks(model, person, points, precision="fp32", runtime="torch")))


def test_without_controls_the_frames_are_g_output_unchanged(tiny_person, repainting_g) -> None:
    for controls in (None, MotionControls(), MotionControls(multiplier=1.5, region="expression")):
        frames = _frames(tiny_person, controls)
        assert np.array_equal(np.stack([frame.result for frame in frames]), _g_alone(tiny_person, frames))


def test_lips_only_keeps_the_warp_outside_the_mouth_and_multiplier_zero_everywhere(
    tiny_person, repainting_g
) -> None:
    frames = _frames(tiny_person, MotionControls(region="lips"))
    g_alone = _g_alone(tiny_person, frames)
    size = g_alone.shape[1]
    for frame, g in zip(frames, g_alone):
        mask = rendered_mask(frame.landmarks, ("lips",), size)
        assert not np.array_equal(g[mask == 0], frame.warp[mask == 0])  # G alone repaints there ...
        assert np.array_equal(
            frame.result[mask == 0], frame.warp[mask == 0]
        )  # ... the frame is the warp there
        assert np.array_equal(frame.result[mask == 1], g[mask == 1])
        assert (
            _at(mask, frame.landmarks[EYES_BROWS]).max() == 0.0
        )  # the eyes and brows among the warp's pixels
    for frame in _frames(tiny_person, MotionControls(multiplier=0.0)):
        assert np.array_equal(frame.result, frame.warp)


def test_the_native_compositor_gives_the_photos_own_pixels_where_the_controls_keep_the_warp(
    tiny_person, repainting_g
) -> None:
    from talking_head.animation.compositing import NativeCompositor

    _, person, _ = tiny_person
    compositor = NativeCompositor.for_person(person, "photo")
    for frame in _frames(tiny_person, MotionControls(region="lips"))[::4]:
        own_warp = np.clip(np.rint(compositor.fields(frame.landmarks[None])[0][1]), 0, 255).astype(np.uint8)
        unrepainted = compositor(own_warp, frame.landmarks).astype(
            np.int16
        )  # the photo moved, nothing from G
        out = compositor(frame.result, frame.landmarks).astype(np.int16)
        eyes = np.round(compositor._to_output(frame.landmarks[EYES_BROWS])).astype(int)
        assert np.abs(out - unrepainted)[eyes[:, 1], eyes[:, 0]].max() <= 2
        mouth = np.round(compositor._to_output(frame.landmarks[edits.MOUTH])).astype(int)
        assert np.abs(out - unrepainted)[mouth[:, 1], mouth[:, 0]].max() > 2  # G's mouth is there

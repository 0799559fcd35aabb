"""Pipeline with tiny random weights: embedding, fine-tuning, animation and video output.

A fake landmark detector (a light ellipse on a dark background is "the face")
keeps these tests fast and independent of dlib; tests/test_cli_animate.py runs
the real detector end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _synthetic import write_tone
from _tiny_weights import make_tiny_weights

from talking_head.animation import pipeline
from talking_head.animation.finetune import FinetuneConfig
from talking_head.animation.person import analyze_photo
from talking_head.errors import CancelledError, NoFaceError
from talking_head.face.detection import FaceLandmarks
from talking_head.face.motion import interocular_distance
from talking_head.face.tracking import LandmarkTrack
from talking_head.media.video import probe_video
from talking_head.media.video_reader import read_video_frames
from talking_head.media.video_writer import VideoWriter


def unit_face(mouth_open: float = 0.0) -> np.ndarray:
    """(68, 2) landmarks of a symmetric face in [0, 1]²."""
    pts = np.zeros((68, 2))
    angles = np.linspace(np.pi, 0.0, 17)
    pts[0:17] = np.stack([0.5 + 0.45 * np.cos(angles), 0.35 + 0.6 * np.sin(angles)], 1)
    pts[17:22] = np.stack([np.linspace(0.15, 0.42, 5), np.full(5, 0.25)], 1)
    pts[22:27] = np.stack([np.linspace(0.58, 0.85, 5), np.full(5, 0.25)], 1)
    pts[27:31] = np.stack([np.full(4, 0.5), np.linspace(0.33, 0.55, 4)], 1)
    pts[31:36] = np.stack([np.linspace(0.42, 0.58, 5), np.full(5, 0.6)], 1)
    eye = np.array([[0, 0], [0.05, -0.03], [0.1, -0.03], [0.15, 0], [0.1, 0.03], [0.05, 0.03]])
    pts[36:42] = eye + [0.2, 0.35]
    pts[42:48] = eye + [0.65, 0.35]
    lip_x = np.array([0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4])
    lip_y = np.array([0.75, 0.72, 0.71, 0.72, 0.71, 0.72, 0.75, 0.8, 0.82, 0.82, 0.82, 0.8])
    pts[48:60] = np.stack([lip_x, lip_y], 1)
    inner_x = np.array([0.38, 0.45, 0.5, 0.55, 0.62, 0.55, 0.5, 0.45])
    inner_y = (
        np.array([0.75, 0.74, 0.74, 0.74, 0.75, 0.76, 0.76, 0.76])
        + np.array([0, 0, 0, 0, 0, 1, 1, 1]) * mouth_open
    )
    pts[60:68] = np.stack([inner_x, inner_y], 1)
    return pts.astype(np.float32)


class EllipseDetector:
    """Fake detector: the bounding box of pixels brighter than 100 is the face."""

    name = "fake"

    def __init__(self, yaw_shift: float = 0.0) -> None:
        self.yaw_shift = yaw_shift  # moves the nose sideways, as a fraction of the face width

    def detect(self, image: np.ndarray, box_hint: np.ndarray | None = None) -> FaceLandmarks:
        ys, xs = np.nonzero(np.asarray(image).mean(axis=2) > 100)
        if len(xs) < 4:
            raise NoFaceError("no face found")
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
        face = unit_face()
        face[27:36, 0] += self.yaw_shift
        points = face * [x1 - x0, y1 - y0] + [x0, y0]
        box = np.array([x0, y0, x1, y1], np.float32)
        return FaceLandmarks(points.astype(np.float32), box, 0.99, 1, "fake")


def ellipse_image(
    size: int = 160, center=(80, 80), axes=(40, 50), seed: int = 0, texture: bool = True
) -> np.ndarray:
    """A light, textured ellipse on a dark background: a "photo" for EllipseDetector."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 30, np.uint8)
    cv2.ellipse(image, (int(center[0]), int(center[1])), axes, 0, 0, 360, (200, 170, 150), -1)
    if texture:
        noise = rng.integers(-25, 25, size=image.shape)
        image = np.clip(image.astype(int) + noise * (image > 100), 0, 255).astype(np.uint8)
    return image


def write_driving_clip(path: Path, num_frames: int, fps: float = 12.0, audio: Path | None = None) -> Path:
    """A clip of a moving, breathing ellipse (optionally with audio)."""
    with VideoWriter(path, fps, audio_from=audio) as writer:
        for t in range(num_frames):
            center = (80 + 6 * np.sin(t / 3), 80 + 3 * np.cos(t / 4))
            writer.write(ellipse_image(center=center, axes=(40 + t % 3, 50), seed=t))
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("tiny_weights"))


@pytest.fixture()
def model(weights: Path):
    return pipeline.load_model(weights, device="cpu")


@pytest.fixture()
def person(model):
    photos = [ellipse_image(seed=1), ellipse_image(center=(70, 85), seed=2)]
    return pipeline.embed_person(model, photos, detector=EllipseDetector())


def test_embed_person_reports_and_skips_unusable(model) -> None:
    photos = [ellipse_image(seed=1), np.zeros((100, 100, 3), np.uint8), ellipse_image(seed=3)]
    person = pipeline.embed_person(
        model, photos, detector=EllipseDetector(), names=["a.jpg", "blank.jpg", "c.jpg"]
    )
    assert [r.usable for r in person.reports] == [True, False, True]
    blank = person.reports[1]
    assert not blank.face_found and "no face" in blank.reason
    assert person.shots.shape == (2, 64, 64, 3)
    assert person.embedding.shape == (model.config.embedding_dim,)
    assert person.adain_params.shape == (model.generator.n_adain_params,)
    assert person.reports[0].box_size > 70 and abs(person.reports[0].yaw) < 5


def test_embed_person_without_usable_photo_names_them(model) -> None:
    with pytest.raises(NoFaceError, match="blank.jpg"):
        pipeline.embed_person(
            model, [np.zeros((64, 64, 3), np.uint8)], detector=EllipseDetector(), names=["blank.jpg"]
        )


def test_photo_report_reasons() -> None:
    small, _ = analyze_photo(ellipse_image(size=200, axes=(12, 15)), "small", EllipseDetector(), 64)
    assert not small.usable and "too small" in small.reason
    turned, _ = analyze_photo(ellipse_image(), "turned", EllipseDetector(yaw_shift=1.0), 64)
    assert not turned.usable and "turned" in turned.reason and abs(turned.yaw) > 60
    import cv2

    blurred = cv2.GaussianBlur(ellipse_image(texture=False), (0, 0), 8)
    blurry, _ = analyze_photo(blurred, "blurry", EllipseDetector(), 64)
    assert not blurry.usable and "blurry" in blurry.reason
    sharp, _ = analyze_photo(ellipse_image(), "sharp", EllipseDetector(), 64)
    assert sharp.usable and sharp.reason == "" and sharp.blur > blurry.blur


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_finetuning_changes_psi_lowers_loss_and_keeps_base_model(model, person) -> None:
    before = _state(model)
    error_before = pipeline.shot_reconstruction_error(model, person)
    tuned = pipeline.finetune_person(model, person, steps=5)  # the default config
    assert tuned.finetune_steps == 5 and len(tuned.finetune_losses) == 5
    assert not torch.equal(tuned.adain_params, person.adain_params)
    # A warp-guided G starts as the warp itself (its head is zero), so with random tiny weights there
    # is nothing it could reconstruct better in 5 steps; what must hold is that G' left the warp:
    # its head learned, and its rendering of the shots changed.
    assert tuned.generator.warp_head.weight.abs().sum() > 0
    assert model.generator.warp_head.weight.abs().sum() == 0
    assert pipeline.shot_reconstruction_error(model, tuned) != error_before
    # Rendering the tuned person must not touch the base model either.
    list(pipeline.render_landmarks(model, tuned, tuned.shot_landmarks))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "the base model was modified"
    assert person.generator is None, "the input person was modified"


def test_zero_steps_is_feed_forward_and_tuning_continues(model, person) -> None:
    assert pipeline.finetune_person(model, person, steps=0) is person
    config = FinetuneConfig(batch_size=1, flip=False, seed=3)
    once = pipeline.finetune_person(model, person, steps=1, config=config)
    assert once.generator is not None and once.generator is not model.generator
    twice = pipeline.finetune_person(model, once, steps=1, config=config)
    assert twice.finetune_steps == 2 and not torch.equal(twice.adain_params, once.adain_params)
    with pytest.raises(ValueError):
        pipeline.finetune_person(model, person, steps=-1)


def test_finetuning_adds_the_extra_content_terms_its_loss_config_turns_on(model, person) -> None:
    from talking_head.nets.losses import LossConfig

    plain = FinetuneConfig(loss=LossConfig(content_loss="pixel"), seed=4)
    extra = FinetuneConfig(
        loss=LossConfig(
            content_loss="pixel", mouth_weight=2, ssim_weight=1, mouth_ssim_weight=3, detail_weight=4
        ),
        seed=4,
    )
    first = pipeline.finetune_person(model, person, steps=1, config=plain).finetune_losses[0]
    second = pipeline.finetune_person(model, person, steps=1, config=extra).finetune_losses[0]
    assert not any(key.startswith("content_") and key != "content_pixel" for key in first)
    names = ("content_mouth", "content_ssim", "content_mouth_ssim", "content_detail")
    assert all(second[name] > 0 for name in names)
    # Same seed, same first x̂: the content loss is the pixel term plus exactly the extra terms.
    assert second["content_pixel"] == pytest.approx(first["content_pixel"], rel=1e-5)
    assert second["content"] == pytest.approx(first["content"] + sum(second[n] for n in names), rel=1e-5)


def test_finetuning_without_adversarial_weights_never_runs_d(model, person, monkeypatch) -> None:
    from talking_head.nets.discriminator import Discriminator
    from talking_head.nets.losses import LossConfig

    calls = []
    forward = Discriminator.forward
    monkeypatch.setattr(
        Discriminator, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k)
    )
    content_only = LossConfig(content_loss="pixel", adversarial_weight=0, feature_matching_weight=0)
    tuned = pipeline.finetune_person(model, person, steps=2, config=FinetuneConfig(loss=content_only))
    assert calls == [] and tuned.finetune_steps == 2
    assert all(step["discriminator"] == step["adversarial"] == 0 for step in tuned.finetune_losses)
    assert not torch.equal(tuned.adain_params, person.adain_params)  # G' and ψ' still learn
    default = pipeline.finetune_person(model, person, steps=1)  # the default recipe: content terms only
    assert calls == [] and {"content_mouth_ssim", "content_detail"} <= default.finetune_losses[0].keys()
    pipeline.finetune_person(
        model, person, steps=1, config=FinetuneConfig(loss=LossConfig(content_loss="pixel"))
    )
    assert len(calls) == 4  # with the paper's weights: D' on x and x̂, then again for G's step


def test_cancel_stops_within_one_step(model, person) -> None:
    calls: list[int] = []

    def cancel_at_two(step: int, total: int, losses: dict[str, float]) -> bool:
        calls.append(step)
        assert total == 50 and {"content", "discriminator"} <= losses.keys()
        return step < 2

    with pytest.raises(CancelledError, match="2 of 50"):
        pipeline.finetune_person(model, person, steps=50, callback=cancel_at_two)
    assert calls == [1, 2]

    def raising(step: int, total: int, losses: dict[str, float]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.finetune_person(model, person, steps=50, callback=raising)


def test_render_video_frame_count_no_audio_and_overlay(model, person, tmp_path: Path) -> None:
    clip = write_driving_clip(tmp_path / "drive.mp4", 11)
    motion = pipeline.load_driving(clip, model.config.image_size, detector=EllipseDetector())
    assert len(motion) == 11 and motion.fps == pytest.approx(12.0) and not motion.has_audio
    result = pipeline.render_video(
        model, person, motion, tmp_path / "out.mp4", overlay=tmp_path / "overlay.mp4", batch_size=4
    )
    info = probe_video(tmp_path / "out.mp4")
    assert info.num_frames == 11 == result.num_frames
    assert info.fps == pytest.approx(12.0)
    assert not info.has_audio and not result.has_audio
    assert info.size == (64, 64)
    overlay, _ = read_video_frames(tmp_path / "overlay.mp4")
    assert len(overlay) == 11 and overlay[0].shape == (64, 192, 3)
    # The first panel shows the (light) driving face, not a black sketch.
    assert overlay[0][:, :64].mean() > 60


def test_render_video_copies_audio_when_the_clip_has_it(model, person, tmp_path: Path) -> None:
    tone = write_tone(tmp_path / "tone.wav")
    clip = write_driving_clip(tmp_path / "drive.mp4", 12, audio=tone)
    motion = pipeline.load_driving(clip, model.config.image_size, detector=EllipseDetector())
    assert motion.has_audio
    result = pipeline.render_video(model, person, motion, tmp_path / "out.mp4")
    info = probe_video(tmp_path / "out.mp4")
    assert info.has_audio and result.has_audio and info.num_frames == 12


def test_driving_track_renders_without_audio_and_with_sketch_panel(model, person, tmp_path: Path) -> None:
    frames = 7
    points = np.stack([unit_face(mouth_open=0.02 * t) * 100 + [30 + t, 40] for t in range(frames)]).astype(
        np.float32
    )
    track = LandmarkTrack(
        points, np.tile([30, 40, 130, 140], (frames, 1)), np.ones(frames, bool), 10.0, "fake", (200, 200)
    )
    track.save(tmp_path / "track.npz")
    motion = pipeline.load_driving(tmp_path / "track.npz", model.config.image_size, smoothing=0)
    result = pipeline.render_video(
        model, person, motion, tmp_path / "out.mp4", overlay=tmp_path / "ov.mp4", watermark=True
    )
    assert result.num_frames == frames and not result.has_audio
    info = probe_video(tmp_path / "out.mp4")
    assert info.num_frames == frames and info.fps == pytest.approx(10.0) and not info.has_audio
    overlay, _ = read_video_frames(tmp_path / "ov.mp4")
    assert len(overlay) == frames
    assert overlay[0][:, :64].mean() < 60  # landmark sketch on black


def test_relative_mode_keeps_source_shape_in_animation(model, person) -> None:
    frames = 6
    wide = unit_face() * [130, 100]  # a driver 30% wider than tall
    points = np.stack([wide + [20, 30 + 2 * t] for t in range(frames)]).astype(np.float32)
    track = LandmarkTrack(
        points, np.tile([20, 30, 150, 130], (frames, 1)), np.ones(frames, bool), 25.0, "fake", (200, 200)
    )
    motion = pipeline.load_driving(track, model.config.image_size, smoothing=0)
    relative = np.stack([f.landmarks for f in pipeline.animate_person(model, person, motion)])
    source_iod = interocular_distance(person.source_landmarks)
    assert np.all(np.abs(interocular_distance(relative) / source_iod - 1) < 0.05)
    absolute = np.stack(
        [f.landmarks for f in pipeline.animate_person(model, person, motion, mode="absolute")]
    )
    np.testing.assert_allclose(absolute, motion.points)


def test_paste_back_has_photo_size_and_watermark_marks(model, person, tmp_path: Path) -> None:
    clip = write_driving_clip(tmp_path / "drive.mp4", 3)
    motion = pipeline.load_driving(clip, model.config.image_size, detector=EllipseDetector())
    pipeline.render_video(model, person, motion, tmp_path / "pasted.mp4", paste_into_photo=True)
    assert probe_video(tmp_path / "pasted.mp4").size == person.source_image.shape[1::-1]
    frame = np.zeros((64, 64, 3), np.uint8)
    assert pipeline.mark_synthetic(frame).any() and not frame.any()


def test_render_cancel(model, person, tmp_path: Path) -> None:
    clip = write_driving_clip(tmp_path / "drive.mp4", 10)
    motion = pipeline.load_driving(clip, model.config.image_size, detector=EllipseDetector())
    with pytest.raises(CancelledError):
        pipeline.render_video(
            model, person, motion, tmp_path / "out.mp4", progress=lambda done, total: done < 3
        )
    assert not (tmp_path / "out.mp4").exists()

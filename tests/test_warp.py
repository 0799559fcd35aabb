"""The landmark-driven warp (talking_head.nets.warp) and the warp-guided generator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from talking_head.nets.config import ModelConfig
from talking_head.nets.generator import Generator
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.warp import (
    ThinPlateSpline,
    normalized_to_pixels,
    pixels_to_normalized,
    sampling_grid,
    shot_weights,
    warp_episodes,
    warp_images,
    warp_shots,
)

S = 256  # the shipped crop size


def _face_points(seed: int = 0, batch: int = 1, spread: float = 0.0) -> torch.Tensor:
    """Plausible 68-point layouts in an S² crop (drawn at 128², scaled): a template face, then per entry (when ``spread`` > 0)
    a random similarity, a mouth opened up to 4 px, eyes opened or closed and ``spread`` px jitter."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([64 - 40 * np.cos(t), 60 + 40 * np.sin(t)], 1)
    brows = np.stack([np.linspace(34, 94, 10), 44 + 3 * np.sin(np.linspace(0, 2 * np.pi, 10))], 1)
    nose = np.concatenate(
        [
            np.stack([np.full(4, 64.0), np.linspace(50, 72, 4)], 1),
            np.stack([np.linspace(56, 72, 5), np.full(5, 76.0)], 1),
        ]
    )
    a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eyes = np.concatenate(
        [
            np.stack([48 - 8 * np.cos(a), 54 - 3 * np.sin(a)], 1),
            np.stack([80 - 8 * np.cos(a), 54 - 3 * np.sin(a)], 1),
        ]
    )
    m = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    outer = np.stack([64 - 16 * np.cos(m), 90 - 6 * np.sin(m)], 1)
    n = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    inner = np.stack([64 - 10 * np.cos(n), 90 - 2 * np.sin(n)], 1)
    base = np.concatenate([jaw, brows, nose, eyes, outer, inner]).astype(np.float64)  # (68, 2)
    lower_lip = [55, 56, 57, 58, 59, 65, 66, 67]
    lids = [37, 38, 43, 44]
    out = []
    for _ in range(batch):
        face = base.copy()
        if spread > 0:
            face[lower_lip, 1] += rng.uniform(0, 4)  # mouth opens
            face[5:12, 1] += rng.uniform(0, 3)  # chin follows
            face[lids, 1] += rng.uniform(-1, 2)  # eyes open wider or close
            angle = rng.uniform(-0.1, 0.1)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            face = (face - 64) @ rot.T * (1 + rng.uniform(-0.05, 0.05)) + 64 + rng.uniform(-3, 3, size=2)
            face = face + rng.normal(0, spread, size=face.shape)
        out.append(face * S / 128)
    return torch.from_numpy(np.stack(out).astype(np.float32))


def _grid_at(grid: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of a (B, S, S, 2) sampling grid at (B, P, 2) pixel positions → pixels (B, P, 2)."""
    field = grid.permute(0, 3, 1, 2)
    where = pixels_to_normalized(points, grid.shape[1])[:, :, None, :]  # (B, P, 1, 2)
    values = torch.nn.functional.grid_sample(field, where, align_corners=False)[..., 0]  # (B, 2, P)
    return normalized_to_pixels(values.permute(0, 2, 1), grid.shape[1])


@pytest.fixture(scope="module")
def astronaut_driven() -> tuple[torch.Tensor, torch.Tensor]:
    """Real landmarks: the example photo's (the shot) and the example motions retargeted to it (targets)."""
    from conftest import ASTRONAUT, EXAMPLES

    from talking_head.face.framing import crop_box_from_landmarks, points_to_crop
    from talking_head.face.landmarks import get_detector
    from talking_head.face.motion import retarget_landmarks
    from talking_head.face.tracking import LandmarkTrack

    face = get_detector("dlib").detect(ASTRONAUT)
    shot = points_to_crop(face.points, crop_box_from_landmarks(face.points), S)
    targets = []
    for name in ("calm-talking", "expressions", "head-tilts"):
        track = LandmarkTrack.load(EXAMPLES / "motions" / f"{name}.npz")
        driver = np.stack([points_to_crop(p, crop_box_from_landmarks(p), S) for p in track.points[::6]])
        targets.append(retarget_landmarks(shot, driver, mode="relative"))
    return torch.from_numpy(shot)[None], torch.from_numpy(np.concatenate(targets).astype(np.float32))


def test_thin_plate_spline_interpolates_its_control_points() -> None:
    control = pixels_to_normalized(_face_points(1, batch=3, spread=0.3), S)
    values = pixels_to_normalized(_face_points(0).expand(3, -1, -1), S)
    tps = ThinPlateSpline(control, values)
    assert (normalized_to_pixels(tps(control), S) - normalized_to_pixels(values, S)).abs().max() < 0.01


def test_warp_is_exact_at_the_landmarks(astronaut_driven) -> None:
    shot, targets = astronaut_driven
    grid = sampling_grid(targets, shot.expand(len(targets), -1, -1), S)
    # Each target landmark samples the shot where the shot has that landmark.
    error = (_grid_at(grid, targets) - shot).norm(dim=-1)  # (T, 68) pixels
    assert error.max() < 0.5, error.max()
    # Synthetic faces: open mouths, blinks, small turns.
    shot = _face_points(0)
    target = _face_points(1, batch=6, spread=0.3)
    grid = sampling_grid(target, shot.expand(6, -1, -1), S)
    error = (_grid_at(grid, target) - shot).norm(dim=-1)
    assert error.max() < 0.5, error.max()


def test_interpolated_grid_follows_the_spline_everywhere(astronaut_driven) -> None:
    """The coarse/fine interpolation and the bumps stay close to the spline evaluated at every pixel.

    Without the fine box the mean error is 0.043 px (max 2 px); with the box one row off, 0.4 px.
    """
    shot, targets = astronaut_driven
    targets = targets[::4]
    shots = shot.expand(len(targets), -1, -1)
    exact = sampling_grid(targets, shots, S, grid_size=S)
    error = (sampling_grid(targets, shots, S) - exact).norm(dim=-1) * S / 2  # (T, S, S) pixels
    assert error.mean() < 0.035 and error.max() < 1.2, (error.mean(), error.max())


def test_identity_when_shot_and_target_landmarks_are_equal() -> None:
    points = _face_points(2, batch=2, spread=0.3)
    images = torch.rand(2, 3, S, S) * 2 - 1
    warped = warp_images(images, points, points)
    assert (warped - images).abs().max() < 1e-3
    grid = sampling_grid(points, points, S)
    identity = torch.nn.functional.affine_grid(
        torch.eye(2, 3).expand(2, 2, 3), (2, 3, S, S), align_corners=False
    )
    assert (grid - identity).abs().max() < 1e-4


def test_batched_equals_one_by_one() -> None:
    shots = torch.rand(3, 3, S, S) * 2 - 1
    shot_points = _face_points(3, batch=3, spread=0.3)
    target_points = _face_points(4, batch=3, spread=0.3)
    together = warp_images(shots, shot_points, target_points)
    for b in range(3):
        alone = warp_images(shots[b : b + 1], shot_points[b : b + 1], target_points[b : b + 1])
        assert torch.allclose(together[b : b + 1], alone, atol=1e-5)


def test_k_shot_blend_prefers_the_shot_closest_to_the_target() -> None:
    close = _face_points(5)
    far = close.clone()
    far[0, 48:68, 1] += torch.linspace(-12, 12, 20)  # a very different mouth
    target = close + 0.2
    weights = shot_weights(torch.cat([far, close]), target)
    assert weights.shape == (1, 2) and torch.allclose(weights.sum(1), torch.ones(1))
    assert weights[0, 1] > 0.95
    shots = torch.stack([torch.full((3, S, S), -1.0), torch.full((3, S, S), 1.0)])  # far: black, close: white
    blended = warp_shots(shots, torch.cat([far, close]), target)
    assert blended.mean() > 0.9
    # Equal distances: an even blend. Episodes give the same as warp_shots per episode.
    even = warp_shots(shots, torch.cat([close, close]), target)
    assert abs(even.mean().item()) < 1e-3
    episodes = warp_episodes(
        shots[None].expand(2, -1, -1, -1, -1),
        torch.cat([far, close])[None].expand(2, -1, -1, -1),
        target.expand(2, -1, -1),
    )
    assert torch.allclose(episodes[0:1], blended, atol=1e-5)


WARP_CONFIG = ModelConfig.preset("tiny")


def test_untrained_warp_guided_generator_returns_the_warp() -> None:
    assert WARP_CONFIG.warp_guided
    generator = Generator(WARP_CONFIG).eval()
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    warp = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        out, alpha = generator(y, e=torch.rand(2, WARP_CONFIG.embedding_dim), warp=warp, return_mask=True)
    assert (out - warp).abs().mean() < 0.01
    assert alpha.shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="warp"):
        generator(y, e=torch.rand(2, WARP_CONFIG.embedding_dim))


def test_warp_guided_generator_learns_beyond_the_warp() -> None:
    """Gradients reach the head, the skips and the mask; a few steps move the output off the warp."""
    torch.manual_seed(0)
    generator = Generator(WARP_CONFIG)
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    warp = torch.rand(2, 3, 64, 64) * 2 - 1
    target = warp.flip(-1)
    e = torch.rand(2, WARP_CONFIG.embedding_dim)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    first = None
    for _ in range(20):
        loss = (generator(y, e=e, warp=warp) - target).abs().mean()
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        assert generator.warp_head.weight.grad.abs().sum() > 0
        optimizer.step()
    assert loss.item() < first - 0.01
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.skips.parameters())


def test_warp_guided_model_spectral_norm_everywhere_but_the_zero_head() -> None:
    model = TalkingHeadModel(WARP_CONFIG, num_videos=2)
    for name, layer in model.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.Embedding)) and name != "generator.warp_head":
            assert hasattr(layer, "parametrizations"), name
    assert not hasattr(model.generator.warp_head, "parametrizations")


@pytest.mark.parametrize("warp_guided", [True, False])
def test_save_load_round_trip_for_both_kinds(tmp_path, warp_guided: bool) -> None:
    config = dataclasses.replace(WARP_CONFIG, warp_guided=warp_guided, generator_skips=warp_guided)
    torch.manual_seed(0)
    model = TalkingHeadModel(config).eval()
    if warp_guided:
        with torch.no_grad():
            model.generator.warp_head.weight.normal_(0, 0.1)
    model.save_pretrained(tmp_path)
    loaded = TalkingHeadModel.from_pretrained(tmp_path)
    assert loaded.config == config
    y = torch.rand(1, 3, 64, 64)
    warp = torch.rand(1, 3, 64, 64) if warp_guided else None
    e = torch.rand(1, config.embedding_dim)
    with torch.no_grad():
        assert torch.equal(model.generator(y, e=e, warp=warp), loaded.generator(y, e=e, warp=warp))


def test_coincident_target_landmarks_give_a_smooth_warp() -> None:
    """A closed mouth (inner lips on top of each other) driving an open one: no singular system, no spikes."""
    shot = _face_points(0)
    shot[0, [65, 66, 67], 1] += 10.0  # open inner mouth in the shot
    target = _face_points(0)
    target[0, [65, 66, 67]] = target[0, [63, 62, 61]]  # closed: lower inner lip on the upper one
    grid = sampling_grid(target, shot, S)
    assert torch.isfinite(grid).all()
    # The field moves smoothly: neighbouring pixels sample the shot at most a few pixels apart.
    step = normalized_to_pixels(grid, S).diff(dim=1).norm(dim=-1)
    assert step.max() < 4.0

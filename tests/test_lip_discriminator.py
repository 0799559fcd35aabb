"""D_lip, the lip-square patch discriminator: its input, that it can learn blur from detail, and training with it."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from _synthetic import make_prepared_dataset, template_landmarks

from talking_head.nets.config import ModelConfig
from talking_head.nets.lip_discriminator import LIP_SQUARE_SIZE, LipDiscriminator, lip_inputs
from talking_head.nets.losses import LossConfig
from talking_head.training.checkpoint import load_checkpoint
from talking_head.training.config import TrainConfig
from talking_head.training.train import train


def test_lip_inputs_are_the_lip_squares_of_image_and_landmarks() -> None:
    points = torch.from_numpy(template_landmarks(128))[None]
    image = torch.zeros(1, 3, 128, 128)
    low, high = points[0, 48:68].amin(0), points[0, 48:68].amax(0)
    image[..., int(low[1]) : int(high[1]) + 1, int(low[0]) : int(high[0]) + 1] = 1.0  # the lips, lit
    landmarks = torch.full((1, 3, 128, 128), -1.0)
    squares, inside = lip_inputs(image, landmarks, points)
    assert squares.shape == (1, 6, LIP_SQUARE_SIZE, LIP_SQUARE_SIZE) and inside.tolist() == [True]
    centre = squares[0, :3, 24:40, 24:40]
    assert centre.mean() > 0.9  # the middle of the square is the lips
    assert squares[0, :3, :4].mean() < 0.1  # its padding is not
    assert torch.allclose(squares[0, 3:], torch.tensor(-1.0), atol=1e-5)
    shifted, inside = lip_inputs(image, landmarks, points + torch.tensor([100.0, 0.0]))
    assert inside.tolist() == [False]  # a square that leaves the crop does not count


def _textures(count: int, generator: torch.Generator) -> torch.Tensor:
    """Random high-frequency 'teeth and lips' squares in [-1, 1], (count, 3, 64, 64)."""
    base = torch.rand(count, 3, 16, 16, generator=generator) * 2 - 1
    return F.interpolate(base, size=64, mode="nearest")


def test_lip_discriminator_learns_to_tell_detail_from_blur() -> None:
    """What D_lip is for: a blurred mouth must score as fake (held-out squares)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    d_lip = LipDiscriminator()
    optimizer = torch.optim.Adam(d_lip.parameters(), lr=4e-4, betas=(0.0, 0.999))
    landmarks = torch.zeros(16, 3, 64, 64)

    def pair(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        real = _textures(count, generator)
        fake = F.avg_pool2d(real, 5, stride=1, padding=2)  # the mean of the mouths: a blur
        return torch.cat([real, landmarks[:count]], 1), torch.cat([fake, landmarks[:count]], 1)

    for _ in range(60):
        real, fake = pair(16)
        scores, _ = d_lip(torch.cat([real, fake]))
        real_s, fake_s = scores.chunk(2)
        loss = F.relu(1 - real_s).mean() + F.relu(1 + fake_s).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    real, fake = pair(16)
    with torch.no_grad():
        real_s, fake_s = d_lip(torch.cat([real, fake]))[0].chunk(2)
    accuracy = ((real_s > 0).float().mean() + (fake_s < 0).float().mean()) / 2
    assert accuracy >= 0.9, accuracy


def _config(**overrides) -> TrainConfig:
    base = {"k_shots": 2, "batch_size": 2, "d_steps": 1, "max_steps": 3, "log_every": 1}
    base |= {"sample_every": 0, "ckpt_every": 2, "seed": 3, "warmup_steps": 100}
    return TrainConfig(**{**base, **overrides})


def test_training_with_d_lip_logs_its_accuracy_and_resumes(tmp_path) -> None:
    data = make_prepared_dataset(tmp_path / "data", num_videos=2, num_frames=6, size=64)
    loss = LossConfig(content_loss="pixel", lip_adversarial_weight=0.1, lip_feature_matching_weight=1.0)
    run = tmp_path / "run"
    train(data, run, ModelConfig.preset("tiny"), _config(), loss, precision="fp32")
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    for key in ("lip_d_acc", "lip_d_rank", "lip_d_loss", "loss_lip_adv", "loss_lip_fm"):
        assert all(key in line for line in stats), key
    assert all(0.0 <= line["lip_d_acc"] <= 1.0 and 0.0 <= line["lip_d_rank"] <= 1.0 for line in stats)
    assert any(line["loss_lip_fm"] > 0 for line in stats)
    checkpoint = load_checkpoint(run)
    assert "lip_discriminator" in checkpoint and "opt_lip_d" in checkpoint
    result = train(data, run, ModelConfig.preset("tiny"), _config(max_steps=5), loss, resume=True, precision="fp32")
    assert result.step == 5


def test_d_lip_can_join_a_run_on_resume(tmp_path) -> None:
    data = make_prepared_dataset(tmp_path / "data", num_videos=1, num_frames=6, size=64)
    run = tmp_path / "run"
    plain = LossConfig(content_loss="pixel")
    train(data, run, ModelConfig.preset("tiny"), _config(max_steps=2), plain, precision="fp32")
    with_lip = LossConfig(content_loss="pixel", lip_adversarial_weight=0.1)
    result = train(data, run, ModelConfig.preset("tiny"), _config(max_steps=4), with_lip, resume=True, precision="fp32")
    assert result.step == 4 and "lip_d_acc" in result.stats


def test_the_loss_config_turns_d_lip_on() -> None:
    assert not LossConfig().lip_adversarial_on
    assert LossConfig(lip_feature_matching_weight=1.0).lip_adversarial_on
    with pytest.raises(ValueError, match="lip_adversarial_weight"):
        LossConfig(lip_adversarial_weight=-1.0)

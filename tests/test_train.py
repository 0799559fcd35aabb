"""Meta-learning loop: overfitting one tiny video, exact resume, run-folder guards, torchrun DDP (gloo)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _synthetic import make_prepared_dataset

from talking_head.errors import TalkingHeadError
from talking_head.nets.config import ModelConfig
from talking_head.nets.losses import LossConfig
from talking_head.training.checkpoint import load_checkpoint, resume_configs
from talking_head.training.config import TrainConfig
from talking_head.training.train import train

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY = ModelConfig.preset("tiny")
# The paper's G (paints the whole frame): its content loss starts high, so learning shows plainly.
TINY_PAINT = dataclasses.replace(TINY, warp_guided=False, generator_skips=False)
PIXEL = LossConfig(content_loss="pixel")
# Timing-dependent stats; everything else in a stats line must repeat exactly.
_TIMING = ("episodes_per_s", "wall_seconds")


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread: stable timings on a shared machine and bit-exact repeatability."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stats(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def _config(**overrides) -> TrainConfig:
    base = {
        "k_shots": 2,
        "batch_size": 1,
        "d_steps": 1,
        "max_steps": 4,
        "log_every": 1,
        "sample_every": 0,
        "ckpt_every": 2,
        "seed": 7,
    }
    return TrainConfig(**{**base, **overrides})


def test_train_overfits_one_tiny_video(tmp_path):
    data = make_prepared_dataset(tmp_path / "data", num_videos=1, num_frames=8, size=64)
    run = tmp_path / "run"
    config = _config(batch_size=2, max_steps=30, lr_eg=5e-4, lr_d=2e-4, ckpt_every=100, sample_every=15)
    result = train(data, run, TINY_PAINT, config, PIXEL)
    assert result.step == 30 and result.content_loss_kind == "pixel"

    # The content loss falls by a factor of more than 2 (measured: 2.9, first three vs last three steps).
    stats = _stats(run)
    assert [s["step"] for s in stats] == list(range(1, 31))
    first = np.mean([s["loss_cnt"] for s in stats[:3]])
    last = np.mean([s["loss_cnt"] for s in stats[-3:]])
    assert last < first / 2, (first, last)
    for key in (
        "loss_eg",
        "loss_cnt_pixel",
        "loss_adv",
        "loss_fm",
        "loss_mch",
        "loss_d",
        "loss_d_hinge",
        "d_real",
        "d_fake",
    ):
        assert np.isfinite(stats[-1][key]), key
    assert stats[-1]["episodes"] == 60 and stats[-1]["episodes_per_s"] > 0

    # Run folder: config with every config and the content-loss kind, sample grids, one checkpoint.
    config_json = json.loads((run / "config.json").read_text())
    assert config_json["content_loss_kind"] == "pixel"
    assert config_json["precision"]["compute"] == "fp32"  # conftest pins TALKING_HEAD_PRECISION=fp32
    assert config_json["train"]["betas"] == [0.0, 0.999] and config_json["train"]["lr_eg"] == 5e-4
    assert config_json["model"] == TINY_PAINT.to_dict() and config_json["loss"]["content_loss"] == "pixel"
    assert config_json["videos"] == ["person00/talk"]
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["step_0000015.png", "step_0000030.png"]
    from PIL import Image

    assert Image.open(run / "samples" / grids[-1]).size == (3 * 64, config.num_samples * 64)
    checkpoint = load_checkpoint(run)
    assert checkpoint["step"] == 30
    assert checkpoint["discriminator"]["video_table.parametrizations.weight.original"].shape == (
        1,
        TINY.embedding_dim,
    )
    assert [g["name"] for g in checkpoint["opt_d"]["param_groups"]] == ["theta", "W"]


def test_resume_continues_exactly(tmp_path):
    data = make_prepared_dataset(tmp_path / "data", num_videos=3, num_frames=6, size=64)
    train(data, tmp_path / "whole", TINY, _config(), PIXEL)
    train(data, tmp_path / "split", TINY, _config(max_steps=2), PIXEL)
    model_config, train_config, loss_config = resume_configs(tmp_path / "split")
    assert (model_config, loss_config) == (TINY, PIXEL) and train_config.max_steps == 2
    train(data, tmp_path / "split", TINY, _config(), PIXEL, resume=True)

    whole, split = _stats(tmp_path / "whole"), _stats(tmp_path / "split")
    assert [s["step"] for s in split] == [1, 2, 3, 4]
    for a, b in zip(whole, split):
        assert {k: v for k, v in a.items() if k not in _TIMING} == {
            k: v for k, v in b.items() if k not in _TIMING
        }
    # Not only the losses: every tensor of the final training state is equal.
    end_whole, end_split = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    for name in ("embedder", "generator", "discriminator", "ema_embedder", "ema_generator"):
        for key, value in end_whole[name].items():
            assert torch.equal(value, end_split[name][key]), (name, key)


def test_run_folder_guards(tmp_path):
    data = make_prepared_dataset(tmp_path / "data", num_videos=1, num_frames=4, size=64)
    run = tmp_path / "run"
    with pytest.raises(TalkingHeadError, match="checkpoint.pt not found"):
        train(data, run, TINY, _config(max_steps=1), PIXEL, resume=True)
    train(data, run, TINY, _config(max_steps=1), PIXEL)
    with pytest.raises(TalkingHeadError, match="--resume"):
        train(data, run, TINY, _config(max_steps=2), PIXEL)
    with pytest.raises(TalkingHeadError, match="batch_size"):
        train(data, run, TINY, _config(max_steps=2, batch_size=2), PIXEL, resume=True)
    other_model = ModelConfig.from_dict(
        {
            **TINY.to_dict(),
            "embedding_dim": 16,
            "embedder_channels": [8, 16, 16, 16],
            "discriminator_channels": [8, 16, 16, 16],
        }
    )
    with pytest.raises(TalkingHeadError, match="model config"):
        train(data, run, other_model, _config(max_steps=2), PIXEL, resume=True)


def test_train_config_validation():
    with pytest.raises(ValueError, match="variant"):
        TrainConfig(variant="xx")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    assert TrainConfig.from_dict(TrainConfig(betas=[0.5, 0.9]).to_dict()) == TrainConfig(betas=(0.5, 0.9))


def test_torchrun_two_processes_gloo(tmp_path):
    """`torchrun --nproc_per_node=2` trains with gloo: ranks stay in sync, only rank 0 writes."""
    data = make_prepared_dataset(tmp_path / "data", num_videos=3, num_frames=4, size=64)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "talking_head", "train", "--data", str(data), "--out", str(run), "--preset", "tiny",
        "--variant", "ff", "--steps", "3", "--batch-size", "1", "--k-shots", "2", "--d-steps", "1",
        "--log-every", "1", "--ckpt-every", "2", "--sample-every", "3", "--content-loss", "pixel", "--device", "cpu",
    ]  # fmt: skip
    done = subprocess.run(
        command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stats = _stats(run)
    assert [s["step"] for s in stats] == [1, 2, 3]  # one writer: rank 1 wrote nothing
    assert stats[-1]["episodes"] == 6  # 3 steps × batch 1 × 2 ranks
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "samples", "stats.jsonl"]
    assert [p.name for p in (run / "samples").iterdir()] == ["step_0000003.png"]
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    checkpoint = load_checkpoint(run)
    assert checkpoint["step"] == 3 and checkpoint["world_size"] == 2
    assert checkpoint["train_config"]["variant"] == "ff"
    # Both ranks reported the step (the in-sync check before each checkpoint passed on both).
    assert done.stdout.count("step 3:") == 2


def test_warp_guided_training_uses_the_warp_and_warms_up_without_d(tmp_path):
    data = make_prepared_dataset(tmp_path / "data", num_videos=2, num_frames=8, size=64)
    config = _config(batch_size=2, max_steps=6, warmup_steps=3, ckpt_every=100, sample_every=6)
    mouth = dataclasses.replace(PIXEL, mouth_weight=4.0)
    train(data, tmp_path / "warp", TINY, config, mouth)
    train(data, tmp_path / "paint", TINY_PAINT, config, mouth)
    warp, paint = _stats(tmp_path / "warp"), _stats(tmp_path / "paint")
    # The untrained warp-guided G returns the warp of the shots: far closer to the target than paint.
    assert warp[0]["loss_cnt"] < paint[0]["loss_cnt"] / 2, (warp[0]["loss_cnt"], paint[0]["loss_cnt"])
    assert warp[0]["loss_cnt_mouth"] > 0
    # Warm-up: no D and no adversarial terms for the first 3 steps, then both.
    assert all(s["loss_d"] == 0 and s["loss_adv"] == 0 for s in warp[:3])
    assert all(s["loss_d"] > 0 for s in warp[3:])
    # Sample grid rows: landmarks | target | warp | generated.
    from PIL import Image

    grid = Image.open(tmp_path / "warp" / "samples" / "step_0000006.png")
    assert grid.width == 4 * 64


def test_crop_targets_cut_the_warp_like_the_target(tmp_path):
    from talking_head.nets.embedder import Embedder
    from talking_head.nets.generator import Generator
    from talking_head.nets.warp import warp_episodes
    from talking_head.training.data import EpisodeDataset
    from talking_head.training.episodes import crop_targets as _crop_targets
    from talking_head.training.episodes import generate as _generate

    data = make_prepared_dataset(tmp_path / "data", num_videos=2, num_frames=8, size=64)
    dataset = EpisodeDataset(data, 1, 64, flip=False)
    items = [dataset[(i % 2, 3 + i)] for i in range(6)]
    batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
    torch.manual_seed(0)
    cropped = _crop_targets(batch, 32, mouth_share=1.0, per_target=2)  # two crops of each target, one ê
    whole_warp = warp_episodes(batch["shot_images"], batch["shot_points"], batch["target_points"])
    e_hat, x_hat, warp = _generate(Embedder(TINY), Generator(TINY), cropped)
    assert x_hat.shape == warp.shape == cropped["target_image"].shape == (12, 3, 32, 32)
    assert torch.equal(e_hat[0::2], e_hat[1::2]) and torch.equal(
        cropped["video_index"][0::2], batch["video_index"]
    )
    batch = {k: v.repeat_interleave(2, dim=0) for k, v in batch.items()}  # crop i comes from target i // 2
    whole_warp = whole_warp.repeat_interleave(2, dim=0)
    for i, (x, y) in enumerate(cropped["crop_corners"].tolist()):
        assert 0 <= x <= 32 and 0 <= y <= 32
        assert torch.equal(cropped["target_image"][i], batch["target_image"][i, :, y : y + 32, x : x + 32])
        assert torch.equal(
            cropped["target_landmarks"][i], batch["target_landmarks"][i, :, y : y + 32, x : x + 32]
        )
        assert torch.allclose(warp[i], whole_warp[i, :, y : y + 32, x : x + 32], atol=1e-5)
        # Points move into the crop's frame; mouth crops hold the lip centre.
        shift = torch.tensor([x, y], dtype=batch["target_points"].dtype)
        assert torch.allclose(cropped["target_points"][i] + shift, batch["target_points"][i])
        lips = cropped["target_points"][i, 48:68]
        centre = (lips.amin(0) + lips.amax(0)) / 2
        assert ((centre >= 0) & (centre <= 32)).all(), centre
    with pytest.raises(TalkingHeadError, match="crop_size"):
        _crop_targets(batch, 64, 0.5)
    with pytest.raises(ValueError, match="crops_per_target"):
        TrainConfig(crops_per_target=0)


def test_crop_training_runs_and_resume_takes_the_new_learning_rate(tmp_path):
    data = make_prepared_dataset(tmp_path / "data", num_videos=2, num_frames=8, size=64)
    run = tmp_path / "run"
    config = _config(
        batch_size=2,
        max_steps=2,
        crop_size=48,
        mouth_crops=1.0,
        crops_per_target=2,
        ckpt_every=1,
        sample_every=2,
        lr_eg=1e-3,
    )
    losses = dataclasses.replace(
        PIXEL, mouth_weight=4.0, ssim_weight=1.0, mouth_ssim_weight=2.0, detail_weight=3.0
    )
    train(data, run, TINY, config, losses)
    stats = _stats(run)
    assert all(np.isfinite(s["loss_cnt_mouth"]) and s["loss_cnt_mouth"] > 0 for s in stats)
    assert all(0 < s["loss_cnt_ssim"] <= 2.0 for s in stats)
    assert all(
        np.isfinite(s["loss_cnt_detail"]) and s["loss_cnt_detail"] > 0 for s in stats
    )  # weight 1 × (1 − SSIM), SSIM ≥ −1
    assert all(0 <= s["loss_cnt_mouth_ssim"] <= 4.0 for s in stats) and any(
        s["loss_cnt_mouth_ssim"] > 0 for s in stats
    )
    from PIL import Image

    assert Image.open(run / "samples" / "step_0000002.png").size == (
        4 * 64,
        config.num_samples * 64,
    )  # whole frames
    train(data, run, TINY, dataclasses.replace(config, max_steps=3, lr_eg=2e-4), PIXEL, resume=True)
    checkpoint = load_checkpoint(run)
    assert checkpoint["step"] == 3 and checkpoint["train_config"]["lr_eg"] == 2e-4
    assert all(group["lr"] == 2e-4 for group in checkpoint["opt_eg"]["param_groups"])
    with pytest.raises(ValueError, match="crop_size"):
        TrainConfig(crop_size=-1)
    with pytest.raises(ValueError, match="mouth_crops"):
        TrainConfig(mouth_crops=1.5)


def test_train_cli_sets_the_ssim_weights() -> None:
    import argparse

    from talking_head.cli import train as train_cli

    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--data",
            "d",
            "--out",
            "o",
            "--preset",
            "tiny",
            "--ssim-weight",
            "0.5",
            "--mouth-ssim-weight",
            "3",
            "--detail-weight",
            "2",
        ]
    )
    _, _, loss_config = train_cli._configs(args)
    assert (loss_config.ssim_weight, loss_config.mouth_ssim_weight, loss_config.mouth_weight) == (
        0.5,
        3.0,
        0.0,
    )
    args = parser.parse_args(["--data", "d", "--out", "o", "--preset", "tiny", "--mouth-ssim-weight", "-1"])
    with pytest.raises(TalkingHeadError, match="mouth_ssim_weight"):
        train_cli._configs(args)

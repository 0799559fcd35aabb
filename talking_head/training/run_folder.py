"""What a run folder holds besides the checkpoint: ``config.json``, ``stats.jsonl`` (and its sums), sample grids."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from talking_head.nets.config import ModelConfig
from talking_head.nets.embedder import Embedder
from talking_head.nets.generator import Generator
from talking_head.nets.losses import LossConfig
from talking_head.nets.precision import Precision
from talking_head.training.config import TrainConfig
from talking_head.training.data import EpisodeDataset, tensor_to_image
from talking_head.training.distributed import Dist, reduce_means
from talking_head.training.episodes import generate

CONFIG_NAME = "config.json"
STATS_NAME = "stats.jsonl"
SAMPLES_DIR = "samples"


@torch.no_grad()
def save_sample_grid(
    path: Path, batch: dict[str, torch.Tensor], embedder: Embedder, generator: Generator, autocast: Any
) -> None:
    """A PNG with one row per episode: landmarks | target | [warp |] generated."""
    with autocast:
        _, x_hat, warp = generate(embedder, generator, batch)
    warps = warp.float() if warp is not None else [None] * len(x_hat)
    rows = [
        np.concatenate(
            [
                tensor_to_image(lm),
                tensor_to_image(t),
                *([tensor_to_image(w)] if w is not None else []),
                tensor_to_image(g),
            ],
            axis=1,
        )
        for lm, t, w, g in zip(batch["target_landmarks"], batch["target_image"], warps, x_hat.float())
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def append_stats(path: Path, stats: dict[str, float]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(stats) + "\n")


def write_run_config(
    run_dir: Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    loss_config: LossConfig,
    content_loss_kind: str,
    dataset: EpisodeDataset,
    data_dir: str | Path,
    env: Dist,
    precision: Precision,
) -> None:
    config = {
        "model": model_config.to_dict(),
        "train": train_config.to_dict(),
        "loss": loss_config.to_dict(),
        "content_loss_kind": content_loss_kind,
        "optimizer": {
            "eg": {
                "type": "Adam",
                "lr": train_config.lr_eg,
                "betas": list(train_config.betas),
                "params": "E, G (with P)",
            },
            "d": {
                "type": "Adam",
                "lr": train_config.lr_d,
                "betas": list(train_config.betas),
                "groups": ["theta (V, w0, b)", "W"],
            },
        },
        "match_loss": "E side in the E/G update (W detached), W side in the D update (ê detached)"
        if train_config.variant == "ft"
        else "off (FF variant)",
        "data": str(Path(data_dir).resolve()),
        "num_videos": len(dataset),
        "videos": dataset.video_names(),
        "world_size": env.world_size,
        "device": str(env.device),
        "precision": {"compute": precision.name, "reason": precision.reason},
        "torch": torch.__version__,
    }
    (run_dir / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


class StatsInterval:
    """Loss sums since the last stats line, kept on the device (no GPU sync until a line is due)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.start = time.perf_counter()
        self.steps = 0

    def add(self, values: dict[str, torch.Tensor]) -> None:
        """Add one step's losses (detached, float32)."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value.detach().float()
        self.steps += 1


def stats_line(
    interval: StatsInterval,
    step: int,
    tc: TrainConfig,
    env: Dist,
    ema_decay: float,
    wall_before: float,
    run_start: float,
) -> dict[str, float]:
    """The ``stats.jsonl`` line of an interval: step, episodes, mean losses (over ranks), episodes/s, EMA decay.

    ``wall_seconds`` counts the training time of earlier calls (``wall_before``)
    and of this one since ``run_start`` (a ``time.perf_counter()`` value).
    """
    elapsed = time.perf_counter() - interval.start
    means = reduce_means(interval.sums, interval.steps, env)
    return {
        "step": step,
        "episodes": step * tc.batch_size * env.world_size,
        **means,
        "episodes_per_s": interval.steps * tc.batch_size * env.world_size / max(elapsed, 1e-9),
        "ema_decay": ema_decay,
        "wall_seconds": wall_before + time.perf_counter() - run_start,
    }

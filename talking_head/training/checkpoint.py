"""The training state on disk: ``checkpoint.pt`` written, read, and checked before a run resumes from it.

A checkpoint is the whole training state (networks with W, EMA, optimizers,
step, RNG states), tensors and plain containers only, loaded with
``weights_only=True``; ``export`` turns one into a weights folder.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from talking_head.errors import TalkingHeadError
from talking_head.nets.config import ModelConfig
from talking_head.nets.losses import LossConfig
from talking_head.training.config import TrainConfig

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1
# TrainConfig fields that may change on resume without breaking exactness.
# The learning rates, the warm-up length and the crops may change too: a schedule set by hand
# across resumes (the run then no longer repeats exactly as one call would).
_RESUMABLE_CHANGES = (
    "max_steps",
    "log_every",
    "sample_every",
    "ckpt_every",
    "workers",
    "num_samples",
    "lr_eg",
    "lr_d",
    "warmup_steps",
    "crop_size",
    "mouth_crops",
    "crops_per_target",
    "lr_lip_d",
    "lip_d_steps",
)


def _rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain Python values (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(
    path: Path,
    step: int,
    networks: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    configs: tuple[ModelConfig, TrainConfig, LossConfig],
    videos: list[str],
    world_size: int,
    wall_seconds: float,
    content_loss_kind: str,
) -> None:
    """Write the training state atomically (temporary file, then rename)."""
    model_config, train_config, loss_config = configs
    state = {
        "format_version": CHECKPOINT_VERSION,
        "step": step,
        **{name: module.state_dict() for name, module in networks.items()},
        **{name: opt.state_dict() for name, opt in optimizers.items()},
        "rng": _rng_state(),
        "model_config": model_config.to_dict(),
        "train_config": train_config.to_dict(),
        "loss_config": loss_config.to_dict(),
        "content_loss_kind": content_loss_kind,
        "videos": videos,
        "world_size": world_size,
        "wall_seconds": wall_seconds,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint (tensors and plain containers only: ``weights_only=True``)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise TalkingHeadError(f"{path} not found: train first (python -m talking_head train ... --out RUN)")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise TalkingHeadError(
            f"{path} is not a readable training checkpoint ({err}); train again or resume an older copy"
        ) from err


def resume_configs(run_dir: str | Path) -> tuple[ModelConfig, TrainConfig, LossConfig]:
    """The model, train and loss configs stored in a run's checkpoint (to resume it)."""
    checkpoint = load_checkpoint(run_dir)
    return (
        ModelConfig.from_dict(checkpoint["model_config"]),
        TrainConfig.from_dict(checkpoint["train_config"]),
        LossConfig.from_dict(checkpoint["loss_config"]),
    )


def read_checkpoint_for_resume(
    path: Path, resume: bool, model_config: ModelConfig, train_config: TrainConfig, device: torch.device
) -> dict[str, Any] | None:
    """The checkpoint to resume from (checked against the configs), or None for a fresh run."""
    if not resume:
        if path.exists():
            raise TalkingHeadError(
                f"{path} exists: pass --resume to continue that run or choose another --out"
            )
        return None
    checkpoint = load_checkpoint(path, device)
    if checkpoint["model_config"] != model_config.to_dict():
        raise TalkingHeadError(f"{path} was trained with another model config; resume with the same --preset")
    # Fields added after a run started take their defaults.
    saved_config = {**TrainConfig().to_dict(), **checkpoint["train_config"]}
    saved = {k: v for k, v in saved_config.items() if k not in _RESUMABLE_CHANGES}
    wanted = {k: v for k, v in train_config.to_dict().items() if k not in _RESUMABLE_CHANGES}
    changed = sorted(k for k in wanted if saved.get(k) != wanted[k])
    if changed:
        raise TalkingHeadError(
            f"cannot resume {path} with changed settings: {', '.join(changed)}; only "
            f"{', '.join(_RESUMABLE_CHANGES)} may change on resume"
        )
    return checkpoint

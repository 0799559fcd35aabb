"""Meta-learning settings: :class:`TrainConfig`, written into a run's ``config.json`` and its checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

VARIANTS = ("ft", "ff")


@dataclass(frozen=True)
class TrainConfig:
    """Meta-learning settings; written into the run's ``config.json`` and checkpoint."""

    variant: str = "ft"  # "ft": with the match loss L_MCH (fine-tuned per person later); "ff": without
    k_shots: int = 8  # K: frames per episode whose embeddings are averaged into ê_i
    batch_size: int = 8  # episodes per step on each process
    lr_eg: float = 5e-5  # Adam learning rate of E and G (with P)
    lr_d: float = 2e-4  # Adam learning rate of D (θ, w0, b and W)
    betas: tuple[float, float] = (0.0, 0.999)  # Adam (β1, β2) of both optimizers
    d_steps: int = 2  # D updates per E/G update (SAGAN-style)
    ema_decay: float = 0.999  # EMA of E and G; ramped up as min(decay, (1 + step) / (10 + step))
    max_steps: int = 100_000  # train until this many E/G updates
    log_every: int = 10  # write a stats.jsonl line every this many steps
    sample_every: int = 500  # write a sample grid every this many steps (0: never)
    ckpt_every: int = 1000  # write checkpoint.pt every this many steps (and at the end)
    num_samples: int = 4  # rows of the sample grid (fixed validation episodes)
    seed: int = 0  # seeds network init and the episode stream
    workers: int = 0  # DataLoader worker processes per rank (0: load in the training process)
    flip: bool = True  # mirror whole episodes with probability 1/2
    warmup_steps: int = 0  # first E/G steps on the content (+ match) loss alone: no D, no adversarial terms
    crop_size: int = 0  # G and D see crops of this side of each target (0: whole frames); E sees whole shots
    mouth_crops: float = 0.5  # share of the crops centred on the target's lips (the rest: anywhere)
    crops_per_target: int = 1  # crops cut from each target, all generated from the episode's one ê
    lr_lip_d: float = 4e-4  # Adam learning rate of the lip-square discriminator D_lip (when the loss has it)
    lip_d_steps: int = 2  # D_lip updates per E/G update

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        problems = []
        if self.variant not in VARIANTS:
            problems.append(f"variant must be 'ft' or 'ff', got {self.variant!r}")
        for name in (
            "k_shots",
            "batch_size",
            "d_steps",
            "max_steps",
            "log_every",
            "ckpt_every",
            "num_samples",
            "crops_per_target",
            "lip_d_steps",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps must be ≥ 0, got {self.warmup_steps}")
        if self.crop_size < 0:
            problems.append(f"crop_size must be ≥ 0 (0: whole frames), got {self.crop_size}")
        if not 0.0 <= self.mouth_crops <= 1.0:
            problems.append(f"mouth_crops must be in [0, 1], got {self.mouth_crops}")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {', '.join(unknown)}")
        return cls(**data)

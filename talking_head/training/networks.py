"""The networks of a run: E, G and D (with W), the EMA of E and G, the content loss and the optimizers.

Built fresh from a :class:`~talking_head.nets.config.ModelConfig`, or
warm-started from an exported weights folder (a resumed run loads its
checkpoint into them instead).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from talking_head.errors import TalkingHeadError
from talking_head.face.raster import rasterize_landmarks
from talking_head.nets.config import ModelConfig
from talking_head.nets.discriminator import VIDEO_TABLE_PREFIX, Discriminator
from talking_head.nets.embedder import Embedder
from talking_head.nets.generator import Generator
from talking_head.nets.lip_discriminator import LipDiscriminator
from talking_head.nets.losses import ContentLoss, LossConfig
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.precision import Precision
from talking_head.training.config import TrainConfig
from talking_head.training.data import EpisodeDataset, image_to_tensor

logger = logging.getLogger(__name__)


@dataclass
class Networks:
    """E, G and D, the EMA of E and G, the content loss and the two optimizers of one run."""

    embedder: Embedder
    generator: Generator
    discriminator: Discriminator
    ema_embedder: Embedder
    ema_generator: Generator
    content_loss: ContentLoss
    eg_params: list[nn.Parameter]  # E and G (with P): the E/G optimizer's
    theta_params: list[nn.Parameter]  # D's V (θ), w0 and b
    w_params: list[nn.Parameter]  # D's per-video table W
    opt_eg: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer  # two parameter groups: "theta" and "W"
    lip_discriminator: LipDiscriminator | None = None  # D_lip, when the loss has a lip adversarial term
    opt_lip_d: torch.optim.Optimizer | None = None

    def modules(self) -> dict[str, nn.Module]:
        """The networks by their checkpoint names."""
        modules = {
            "embedder": self.embedder,
            "generator": self.generator,
            "discriminator": self.discriminator,
            "ema_embedder": self.ema_embedder,
            "ema_generator": self.ema_generator,
        }
        if self.lip_discriminator is not None:
            modules["lip_discriminator"] = self.lip_discriminator
        return modules

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers by their checkpoint names."""
        optimizers = {"opt_eg": self.opt_eg, "opt_d": self.opt_d}
        if self.opt_lip_d is not None:
            optimizers["opt_lip_d"] = self.opt_lip_d
        return optimizers


def build_networks(
    model_config: ModelConfig,
    tc: TrainConfig,
    loss_config: LossConfig,
    num_videos: int,
    device: torch.device,
    precision: Precision,
) -> Networks:
    """E, G, D (W with one row per video), EMA copies of E and G, the content loss, the Adam optimizers."""
    embedder = Embedder(model_config).to(device)
    generator = Generator(model_config).to(device)
    discriminator = Discriminator(model_config, num_videos=num_videos).to(device)
    ema_embedder = copy.deepcopy(embedder).eval().requires_grad_(False)
    ema_generator = copy.deepcopy(generator).eval().requires_grad_(False)
    content_loss = ContentLoss(loss_config, device=device)
    precision.prepare_for_training(
        embedder, generator, discriminator, ema_embedder, ema_generator, content_loss
    )
    eg_params = list(embedder.parameters()) + list(generator.parameters())
    theta_params = [p for n, p in discriminator.named_parameters() if not n.startswith(VIDEO_TABLE_PREFIX)]
    w_params = list(discriminator.video_table.parameters())
    opt_eg = torch.optim.Adam(eg_params, lr=tc.lr_eg, betas=tc.betas)
    opt_d = torch.optim.Adam(
        [{"params": theta_params, "name": "theta"}, {"params": w_params, "name": "W"}],
        lr=tc.lr_d,
        betas=tc.betas,
    )
    lip_discriminator = opt_lip_d = None
    if loss_config.lip_adversarial_on:
        lip_discriminator = LipDiscriminator().to(device)
        precision.prepare_for_training(lip_discriminator)
        opt_lip_d = torch.optim.Adam(lip_discriminator.parameters(), lr=tc.lr_lip_d, betas=tc.betas)
    return Networks(
        embedder,
        generator,
        discriminator,
        ema_embedder,
        ema_generator,
        content_loss,
        eg_params,
        theta_params,
        w_params,
        opt_eg,
        opt_d,
        lip_discriminator,
        opt_lip_d,
    )


@torch.no_grad()
def warm_start(
    source: str | Path,
    model_config: ModelConfig,
    embedder: Embedder,
    generator: Generator,
    discriminator: Discriminator,
    dataset: EpisodeDataset,
    device: torch.device,
) -> None:
    """Copy E, G and D's θ, w0, b from a weights folder; W_i ← mean of E over up to 8 frames of video i."""
    source_model = TalkingHeadModel.from_pretrained(source, device=device)
    if source_model.config != model_config:
        raise TalkingHeadError(
            f"{source} holds a model with another config than --preset; warm-start with the same preset"
        )
    embedder.load_state_dict(source_model.embedder.state_dict())
    generator.load_state_dict(source_model.generator.state_dict())
    discriminator.load_state_dict(source_model.discriminator.generic_state_dict(), strict=False)
    embedder.eval()
    rows = []
    for index in range(len(dataset)):
        clip = dataset.clip(index)
        frames = np.linspace(0, len(clip) - 1, min(8, len(clip))).round().astype(int)
        x = torch.stack([image_to_tensor(clip.image(f, model_config.image_size)) for f in frames])
        y = torch.stack(
            [
                image_to_tensor(
                    rasterize_landmarks(clip.points(f, model_config.image_size), model_config.image_size)
                )
                for f in frames
            ]
        )
        rows.append(embedder(x.to(device), y.to(device)).mean(0))
    discriminator.video_table.parametrizations.weight.original.copy_(torch.stack(rows))  # (num_videos, N)
    embedder.train()
    logger.info("warm start from %s: E, G, D copied; W from ê of %d videos", source, len(dataset))


def warm_start_networks(
    nets: Networks,
    source: str | Path,
    model_config: ModelConfig,
    dataset: EpisodeDataset,
    device: torch.device,
) -> None:
    """:func:`warm_start` E, G and D from ``source``; the EMA of E and G start from them too."""
    warm_start(source, model_config, nets.embedder, nets.generator, nets.discriminator, dataset, device)
    nets.ema_embedder.load_state_dict(nets.embedder.state_dict())
    nets.ema_generator.load_state_dict(nets.generator.state_dict())

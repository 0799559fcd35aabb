"""Few-shot fine-tuning of a person (DESIGN §1, "Few-shot fine-tuning").

Starting from the person-generic networks, for one person with T shots:

- G' is a copy of G with its generic weights ψ, plus a person-specific ψ'
  initialized to P·ê; both ψ and ψ' are trained (P itself is no longer used).
- D' is a copy of D's θ and b with w' = w0 + ê in place of W_i + w0; θ, w', b
  are trained.
- Losses: L_CNT + L_ADV (−D'(x̂) and feature matching; no match term) for G';
  the hinge loss for D'. One D' step then one G' step per iteration.
- Flip augmentation: each sampled shot is mirrored with probability ½ (image
  and landmarks with left/right indices swapped).

The loaded base model is only read: E, G and D are deep-copied and the base
model runs in eval mode, so its tensors (spectral-norm buffers included) stay
bit-identical.

Defaults (:class:`FinetuneConfig`): batch = all shots up to 8 (the paper's
K = 8; more shots are sampled 8 per step); Adam with the meta-learning rates
of DESIGN §1 (5e-5 for G', 2e-4 for D') and betas (0, 0.999).
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from talking_head.errors import CancelledError
from talking_head.losses import (
    ContentLoss,
    LossConfig,
    d_hinge_loss,
    feature_matching_loss,
    g_adversarial_loss,
)
from talking_head.model import TalkingHeadModel
from talking_head.motion import flip_landmarks
from talking_head.person import Person, eval_mode, images_to_tensor, landmark_images, model_device
from talking_head.precision import Precision, resolve_precision

logger = logging.getLogger(__name__)

# callback(step, total, losses) after each step; returning False (or raising) cancels.
FinetuneCallback = Callable[[int, int, dict[str, float]], "bool | None"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Hyper-parameters of per-person fine-tuning."""

    batch_size: int = 8  # shots per step (all shots when fewer); the paper's K = 8
    generator_lr: float = 5e-5  # Adam learning rate of ψ and ψ' (the meta-learning rate of G)
    discriminator_lr: float = 2e-4  # Adam learning rate of θ, w' and b (the meta-learning rate of D)
    betas: tuple[float, float] = (0.0, 0.999)  # Adam betas, as in meta-learning (SAGAN/BigGAN practice)
    flip: bool = True  # mirror each sampled shot with probability 1/2
    seed: int = 0  # seeds shot sampling and flips (the result is deterministic on CPU)
    loss: LossConfig = field(default_factory=LossConfig)  # loss weights and content-loss kind


@functools.lru_cache(maxsize=2)
def _content_loss(config: LossConfig, device: str, precision: Precision) -> ContentLoss:
    """One ContentLoss per (config, device, precision): loading VGG weights takes seconds."""
    content_loss = ContentLoss(config, device=device)
    precision.prepare_for_training(content_loss)
    return content_loss


def _shot_tensors(
    person: Person, image_size: int, device: torch.device, flip: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shots x and landmark images y, ``(T', 3, S, S)`` each; with ``flip`` the mirrored copies follow the originals."""
    crops, points = person.shots, person.shot_landmarks
    if flip:
        crops = np.concatenate([crops, crops[:, :, ::-1]])
        points = np.concatenate([points, flip_landmarks(points, image_size)])
    x = images_to_tensor(crops, device)
    y = images_to_tensor(landmark_images(points, image_size), device)
    return x, y


def _sample_batch(rng: np.random.Generator, num_shots: int, batch_size: int, flip: bool) -> np.ndarray:
    """Indices into the tensors of :func:`_shot_tensors` (index + T = the flipped shot)."""
    if num_shots <= batch_size:
        chosen = np.arange(num_shots)
    else:
        chosen = rng.choice(num_shots, size=batch_size, replace=False)
    if flip:
        chosen = chosen + num_shots * (rng.random(len(chosen)) < 0.5)
    return chosen


def _train_step(
    generator: nn.Module,
    discriminator: nn.Module,
    psi: nn.Parameter,
    w: nn.Parameter,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    content_loss: ContentLoss,
    loss_config: LossConfig,
    precision: Precision,
) -> dict[str, float]:
    """One D' update (hinge) then one G' update (L_CNT + L_ADV); returns the losses.

    Forward passes run under ``precision``'s autocast; the losses are float32.
    """
    opt_g, opt_d = optimizers
    with precision.autocast():
        fake = generator(y, adain_params=psi)  # (B, 3, S, S)

    # Update D'.
    discriminator.requires_grad_(True)
    w.requires_grad_(True)
    with precision.autocast():
        real_score, _ = discriminator(x, y, w=w)
        fake_score, _ = discriminator(fake.detach(), y, w=w)
    loss_d = d_hinge_loss(real_score, fake_score)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    # Update G' (ψ and ψ') against the updated D'.
    discriminator.requires_grad_(False)
    w.requires_grad_(False)
    with precision.autocast():
        with torch.no_grad():
            _, real_feats = discriminator(x, y, w=w)
        fake_score, fake_feats = discriminator(fake, y, w=w)
        content = content_loss(fake, x)
    adversarial = g_adversarial_loss(fake_score)
    matching = feature_matching_loss(real_feats, fake_feats)
    loss_g = (
        content
        + loss_config.adversarial_weight * adversarial
        + loss_config.feature_matching_weight * matching
    )
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    losses = {
        "content": content,
        "adversarial": adversarial,
        "feature_matching": matching,
        "generator": loss_g,
        "discriminator": loss_d,
    }
    return {name: value.item() for name, value in losses.items()}


def _person_networks(
    model: TalkingHeadModel, person: Person
) -> tuple[nn.Module, nn.Module, nn.Parameter, nn.Parameter]:
    """Fresh copies G', D' and the parameters ψ', w' to train (the base model is not touched).

    A person fine-tuned before continues from its G' and ψ'; D' always starts
    from the base D with w' = w0 + ê.
    """
    device = model_device(model)
    base_generator = person.generator if person.generator is not None else model.generator
    generator = copy.deepcopy(base_generator).to(device).train().requires_grad_(True)
    generator.projection.requires_grad_(False)  # P is replaced by ψ'
    discriminator = copy.deepcopy(model.discriminator).to(device).train()
    discriminator.set_num_videos(0)  # W is meta-learning state; D' uses w'
    psi = nn.Parameter(person.adain_params.detach().clone().to(device))
    with torch.no_grad():
        w = nn.Parameter((discriminator.w0 + person.embedding.to(device)).clone())
    return generator, discriminator, psi, w


def finetune_person(
    model: TalkingHeadModel,
    person: Person,
    steps: int,
    callback: FinetuneCallback | None = None,
    config: FinetuneConfig | None = None,
    precision: str | Precision | None = None,
) -> Person:
    """Fine-tune G' and ψ' on the person's shots for ``steps`` steps; returns a new Person.

    ``steps=0`` returns ``person`` unchanged (the paper's feed-forward use,
    ψ = P·ê). ``callback(step, total, losses)`` runs after every step; when
    it returns ``False`` (or raises) fine-tuning stops at once with
    :class:`~talking_head.errors.CancelledError` (the callback's own exception
    propagates as is). The base ``model`` is never modified. ``precision``
    (``auto``, ``bf16``, ``fp32``; ``None``: ``$TALKING_HEAD_PRECISION``, default
    ``auto``): bf16 runs the forward passes under autocast with channels_last
    weights on a CPU; G', ψ', D', w' and Adam's moments stay float32.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if steps == 0:
        return person
    config = config or FinetuneConfig()
    device = model_device(model)
    precision = resolve_precision(precision, device)
    generator, discriminator, psi, w = _person_networks(model, person)
    precision.prepare_for_training(generator, discriminator)
    opt_g = torch.optim.Adam(
        [p for p in generator.parameters() if p.requires_grad] + [psi],
        lr=config.generator_lr,
        betas=config.betas,
    )
    opt_d = torch.optim.Adam(
        list(discriminator.parameters()) + [w], lr=config.discriminator_lr, betas=config.betas
    )
    content_loss = _content_loss(config.loss, str(device), precision)
    x_all, y_all = _shot_tensors(person, model.config.image_size, device, config.flip)
    rng = np.random.default_rng(config.seed)
    num_shots = len(person.shots)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        batch = torch.from_numpy(_sample_batch(rng, num_shots, config.batch_size, config.flip)).to(device)
        losses = _train_step(
            generator,
            discriminator,
            psi,
            w,
            x_all[batch],
            y_all[batch],
            (opt_g, opt_d),
            content_loss,
            config.loss,
            precision,
        )
        history.append(losses)
        if callback is not None and callback(step, steps, losses) is False:
            raise CancelledError(f"fine-tuning was cancelled after {step} of {steps} steps")
    logger.info(
        "fine-tuned %d steps in %.1f s (content loss %.4f)",
        steps,
        time.perf_counter() - start,
        history[-1]["content"],
    )
    generator.eval().requires_grad_(False)
    return person.with_finetuned(generator, psi.detach(), steps, history)


@torch.inference_mode()
def shot_reconstruction_error(model: TalkingHeadModel, person: Person) -> float:
    """Mean absolute error (in [-1, 1] units) of the person's G rendering its own shots from their landmarks."""
    device = model_device(model)
    x, y = _shot_tensors(person, model.config.image_size, device, flip=False)
    generator = person.generator if person.generator is not None else model.generator
    with eval_mode(generator):
        fake = generator(y, adain_params=person.adain_params.to(device))
    return float((fake - x).abs().mean())

"""One meta-learning step after the forward pass: the D update(s), the E/G update, the EMA of E and G.

The losses are the pure functions of :mod:`talking_head.nets.losses`; each
update averages its gradients across ranks (:func:`~talking_head.training.distributed.average_gradients`)
before its optimizer steps. Each returns its losses for the stats line.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from talking_head.nets.losses import (
    LossConfig,
    d_hinge_loss,
    embedding_match_loss,
    feature_matching_loss,
    g_adversarial_loss,
    weighted_extra_terms,
)
from talking_head.nets.finite import step_if_finite
from talking_head.nets.lip_discriminator import lip_inputs
from talking_head.training.distributed import Dist, average_gradients
from talking_head.training.networks import Networks


def update_d(
    nets: Networks,
    batch: dict[str, torch.Tensor],
    e_hat: torch.Tensor,
    x_hat: torch.Tensor,
    steps: int,
    match_weight: float,
    autocast: Any,
    env: Dist,
) -> dict[str, torch.Tensor]:
    """``steps`` D updates on the same x̂ (detached): hinge loss, plus the W side of L_MCH (ê detached).

    Returns the last update's ``loss_d``, ``loss_d_hinge``, ``d_real`` and
    ``d_fake``; zeros when ``steps`` is 0 (the warm-up). ``d_skipped`` counts the
    updates skipped because a loss or gradient was not finite
    (:func:`~talking_head.nets.finite.step_if_finite`).
    """
    x, y, index = batch["target_image"], batch["target_landmarks"], batch["video_index"]  # (B, 3, H, W), (B,)
    discriminator = nets.discriminator
    discriminator.requires_grad_(True)
    skipped = 0
    for _ in range(steps):
        nets.opt_d.zero_grad(set_to_none=True)
        with autocast:
            scores, _ = discriminator(
                torch.cat([x, x_hat.detach()]), torch.cat([y, y]), torch.cat([index, index])
            )
        real_score, fake_score = scores.float().chunk(2)  # (B,), (B,)
        loss_d_hinge = d_hinge_loss(real_score, fake_score)
        loss_d = loss_d_hinge
        if match_weight > 0:  # the W side of L_MCH
            loss_d = loss_d + match_weight * embedding_match_loss(
                e_hat.detach(), discriminator.video_embedding(index)
            )
        loss_d.backward()
        average_gradients(nets.theta_params + nets.w_params, env)
        skipped += not step_if_finite(nets.opt_d, loss_d, nets.theta_params + nets.w_params)
    if steps == 0:
        loss_d = loss_d_hinge = torch.zeros((), device=env.device)
        real_score = fake_score = torch.zeros(1, device=env.device)
    return {
        "loss_d": loss_d,
        "loss_d_hinge": loss_d_hinge,
        "d_real": real_score.mean(),
        "d_fake": fake_score.mean(),
        "d_skipped": torch.tensor(float(skipped), device=env.device),
    }


def update_lip_d(
    nets: Networks, batch: dict[str, torch.Tensor], x_hat: torch.Tensor, steps: int, autocast: Any, env: Dist
) -> dict[str, torch.Tensor]:
    """``steps`` D_lip updates (hinge loss) on the lip squares of x and x̂ (detached); {} without D_lip.

    ``lip_d_acc`` is D_lip's balanced accuracy (real > 0, fake < 0) on this
    batch *before* its first update on it: an honest estimate of how well it
    tells real mouths from G's, since it has not been trained on these yet.
    ``lip_d_rank`` is the share of samples whose real square scores above its
    own x̂ (pairs with the same landmarks): it shows D_lip telling them apart
    before its scores have moved to the right side of 0.
    """
    if nets.lip_discriminator is None:
        return {}
    x, y, points = batch["target_image"], batch["target_landmarks"], batch["target_points"]
    real, inside = lip_inputs(x, y, points)
    fake, _ = lip_inputs(x_hat.detach(), y, points)
    keep = inside.float()
    lip_d = nets.lip_discriminator.requires_grad_(True)
    skipped, accuracy = 0, None
    for _ in range(steps):
        nets.opt_lip_d.zero_grad(set_to_none=True)
        with autocast:
            scores, _ = lip_d(torch.cat([real, fake]))
        real_score, fake_score = scores.float().chunk(2)
        if accuracy is None:
            accuracy = _balanced_accuracy(real_score, fake_score, keep)
            rank = ((real_score > fake_score).float() * keep).sum() / keep.sum().clamp_min(1.0)
        loss = _masked_hinge(real_score, fake_score, keep)
        loss.backward()
        average_gradients(list(lip_d.parameters()), env)
        skipped += not step_if_finite(nets.opt_lip_d, loss)
    if accuracy is None:  # no update this step
        return {}
    return {
        "lip_d_loss": loss.detach(),
        "lip_d_acc": accuracy,
        "lip_d_rank": rank,
        "lip_d_real": real_score.mean().detach(),
        "lip_d_fake": fake_score.mean().detach(),
        "lip_d_skipped": torch.tensor(float(skipped), device=env.device),
    }


def _masked_hinge(real: torch.Tensor, fake: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The hinge loss over the samples whose lip square fits in the crop (``keep`` 1)."""
    total = keep.sum().clamp_min(1.0)
    return ((F.relu(1 - real) * keep).sum() + (F.relu(1 + fake) * keep).sum()) / total


def _balanced_accuracy(real: torch.Tensor, fake: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    total = keep.sum().clamp_min(1.0)
    return (((real > 0).float() * keep).sum() + ((fake < 0).float() * keep).sum()) / (2 * total)


def lip_generator_terms(
    nets: Networks, batch: dict[str, torch.Tensor], x_hat: torch.Tensor, loss_config: LossConfig, autocast: Any
) -> dict[str, torch.Tensor]:
    """G's side of D_lip: weighted ``lip_adv`` (−D_lip(x̂)) and ``lip_fm`` (feature matching); {} without D_lip."""
    if nets.lip_discriminator is None:
        return {}
    x, y, points = batch["target_image"], batch["target_landmarks"], batch["target_points"]
    lip_d = nets.lip_discriminator.requires_grad_(False)
    real, inside = lip_inputs(x, y, points)
    fake, _ = lip_inputs(x_hat, y, points)
    keep = inside.float()
    with autocast:
        with torch.no_grad():
            _, real_feats = lip_d(real)
        fake_score, fake_feats = lip_d(fake)
    total = keep.sum().clamp_min(1.0)
    adversarial = -(fake_score.float() * keep).sum() / total
    keep_view = keep.view(-1, 1, 1, 1)
    matching = sum(
        ((r.float() - f.float()).abs() * keep_view).mean(dim=(1, 2, 3)).sum() / total
        for r, f in zip(real_feats, fake_feats)
    )
    return {
        "lip_adv": loss_config.lip_adversarial_weight * adversarial,
        "lip_fm": loss_config.lip_feature_matching_weight * matching,
    }


def update_eg(
    nets: Networks,
    batch: dict[str, torch.Tensor],
    e_hat: torch.Tensor,
    x_hat: torch.Tensor,
    loss_config: LossConfig,
    match_weight: float,
    adversarial: bool,
    autocast: Any,
    env: Dist,
) -> dict[str, torch.Tensor]:
    """One E/G update: L_CNT (+ mouth L1, SSIM, mouth SSIM, detail) − D(x̂) + w_fm · L_FM + the E side of L_MCH (W detached).

    D is frozen and in eval mode, so its power iterations stay put. Without
    ``adversarial`` (the warm-up) the D terms and the match term are left out.
    Returns the losses for the stats line; ``eg_skipped`` is 1 when the update
    was skipped because a loss or gradient was not finite.
    """
    x, y, index = batch["target_image"], batch["target_landmarks"], batch["video_index"]
    discriminator = nets.discriminator
    discriminator.requires_grad_(False).eval()
    nets.opt_eg.zero_grad(set_to_none=True)
    with autocast:
        loss_cnt_terms = nets.content_loss.terms(
            x_hat, x
        )  # VGG runs in bf16 under autocast; the L1 sums are float32
        loss_cnt_terms |= weighted_extra_terms(loss_config, x_hat, x, batch["target_points"])
        if adversarial:
            with torch.no_grad():
                _, real_feats = discriminator(x, y, index)
            fake_score_g, fake_feats = discriminator(x_hat, y, index)
    loss_cnt = sum(loss_cnt_terms.values())
    lip_terms = lip_generator_terms(nets, batch, x_hat, loss_config, autocast)
    if adversarial:
        loss_adv = g_adversarial_loss(fake_score_g)
        loss_fm = feature_matching_loss(real_feats, fake_feats)
    else:
        loss_adv = loss_fm = torch.zeros((), device=env.device)
    loss_mch = embedding_match_loss(
        e_hat, discriminator.video_embedding(index).detach()
    )  # the E side of L_MCH
    loss_eg = (
        loss_cnt
        + loss_config.adversarial_weight * loss_adv
        + loss_config.feature_matching_weight * loss_fm
        + (match_weight if adversarial else 0.0) * loss_mch  # W only learns with D: no pull to a random W
        + sum(lip_terms.values())  # D_lip's terms, also during the warm-up of the whole-frame D
    )
    loss_eg.backward()
    average_gradients(nets.eg_params, env)
    stepped = step_if_finite(nets.opt_eg, loss_eg, nets.eg_params)
    return {
        "loss_eg": loss_eg,
        "loss_cnt": loss_cnt,
        **{f"loss_cnt_{k}": v for k, v in loss_cnt_terms.items()},
        "loss_adv": loss_adv,
        "loss_fm": loss_fm,
        "loss_mch": loss_mch,
        **{f"loss_{k}": v for k, v in lip_terms.items()},
        "eg_skipped": torch.tensor(0.0 if stepped else 1.0, device=env.device),
    }


def update_emas(nets: Networks, max_decay: float, step: int) -> float:
    """EMA of E and G, the decay ramped up as min(max_decay, (1 + step) / (10 + step)); returns the decay."""
    ema_decay = min(max_decay, (1 + step) / (10 + step))
    _update_ema(nets.ema_embedder, nets.embedder, ema_decay)
    _update_ema(nets.ema_generator, nets.generator, ema_decay)
    return ema_decay


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay · ema + (1 − decay) · model; buffers (spectral-norm u, v) are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)

"""Few-shot fine-tuning of a person (DESIGN §1, "Few-shot fine-tuning").

Starting from the person-generic networks, for one person with T shots:

- G' is a copy of G with its generic weights ψ, plus a person-specific ψ'
  initialized to P·ê; both ψ and ψ' are trained (P itself is no longer used).
- D' is a copy of D's θ and b with w' = w0 + ê in place of W_i + w0; θ, w', b
  are trained.
- Losses: L_CNT + L_ADV (−D'(x̂) and feature matching; no match term) for G';
  the hinge loss for D'. One D' step then one G' step per iteration. L_CNT
  takes the extra terms its ``LossConfig`` turns on (mouth L1, SSIM, mouth
  SSIM, detail). The default, :func:`finetune_loss`, is the shipped weights'
  content recipe without L_ADV; D' is then not run at all.
- Flip augmentation: each sampled shot is mirrored with probability ½ (image
  and landmarks with left/right indices swapped).
- Warp-guided G (DESIGN §7): G' must learn the person, not copy its input, so
  a shot is never warped to itself. The source of each training pair is
  another shot warped to this shot's landmarks when the person has several;
  with one shot it is the shot itself warped to randomly perturbed landmarks
  (a random similarity plus per-point jitter, :func:`perturb_landmarks`) and
  back, which shows G' the resampling blur and TPS distortions it has to undo,
  with the real shot as the target.

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

from talking_head.animation.person import Person, eval_mode, landmark_images, model_device
from talking_head.errors import CancelledError
from talking_head.face.motion import flip_landmarks
from talking_head.nets.losses import (
    ContentLoss,
    LossConfig,
    d_hinge_loss,
    feature_matching_loss,
    g_adversarial_loss,
    weighted_extra_terms,
)
from talking_head.nets.finite import MAX_NONFINITE_STEPS, all_finite, module_finite, step_if_finite
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.precision import Precision, resolve_precision
from talking_head.nets.tensors import images_to_tensor
from talking_head.nets.warp import inter_ocular, warp_images

logger = logging.getLogger(__name__)

# callback(step, total, losses) after each step; returning False (or raising) cancels.
FinetuneCallback = Callable[[int, int, dict[str, float]], "bool | None"]


# The default fine-tuning loss: the content terms of the shipped weights' meta-training recipe
# (pixel L1 + 5 × mouth L1 + 2 × SSIM + 10 × mouth SSIM + 15 × detail, weights/README.md) and
# no adversarial terms. On val with the shipped weights (6 clips, 1 shot, 20 steps) it adds
# +0.0030 mouth SSIM over FF against +0.0018 with the paper's L_CNT + L_ADV; the adversarial
# terms changed nothing there (the shipped D was never trained adversarially) and, off, D' is
# not run at all: a step takes 0.41× as long (2-core Zen 3, 1 shot, 443 vs 1079 ms). With a D trained adversarially (a GPU run), pass
# FinetuneConfig(loss=LossConfig(...)) with the paper's weights.
def finetune_loss() -> LossConfig:
    """The default loss of :class:`FinetuneConfig` (VGG sources from the environment, as ``LossConfig``).

    Without a VGG19 source in the environment the content loss is the pixel
    one, the loss the shipped weights were meta-trained with, and no warning
    is given: VGG is a training option, not something a user has to set up.
    """
    config = LossConfig()
    return LossConfig(
        content_loss="auto" if config.vgg19_source else "pixel",
        mouth_weight=5.0,
        ssim_weight=2.0,
        mouth_ssim_weight=10.0,
        detail_weight=15.0,
        adversarial_weight=0.0,
        feature_matching_weight=0.0,
    )


@dataclass(frozen=True)
class FinetuneConfig:
    """Hyper-parameters of per-person fine-tuning."""

    batch_size: int = 8  # shots per step (all shots when fewer); the paper's K = 8
    generator_lr: float = 5e-5  # Adam learning rate of ψ and ψ' (the meta-learning rate of G)
    discriminator_lr: float = 2e-4  # Adam learning rate of θ, w' and b (the meta-learning rate of D)
    betas: tuple[float, float] = (0.0, 0.999)  # Adam betas, as in meta-learning (SAGAN/BigGAN practice)
    flip: bool = True  # mirror each sampled shot with probability 1/2
    seed: int = 0  # seeds shot sampling and flips (the result is deterministic on CPU)
    loss: LossConfig = field(default_factory=finetune_loss)  # loss weights and content-loss kind
    perturb_rotation: float = 5.0  # one-shot pairs: largest rotation of the perturbed landmarks, degrees
    perturb_scale: float = 0.05  # one-shot pairs: largest relative scale change
    perturb_shift: float = 0.03  # one-shot pairs: largest shift, fraction of the crop side
    perturb_jitter: float = 0.04  # one-shot pairs: per-point jitter (Gaussian σ), inter-ocular distances


@functools.lru_cache(maxsize=2)
def _content_loss(config: LossConfig, device: str, precision: Precision) -> ContentLoss:
    """One ContentLoss per (config, device, precision): loading VGG weights takes seconds."""
    content_loss = ContentLoss(config, device=device)
    precision.prepare_for_training(content_loss)
    return content_loss


def _shot_tensors(
    person: Person, image_size: int, device: torch.device, flip: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shots x, landmark images y ``(T', 3, S, S)`` and landmarks ``(T', 68, 2)``; mirrored copies follow the originals."""
    crops, points = person.shots, person.shot_landmarks
    if flip:
        crops = np.concatenate([crops, crops[:, :, ::-1]])
        points = np.concatenate([points, flip_landmarks(points, image_size)])
    x = images_to_tensor(crops, device)
    y = images_to_tensor(landmark_images(points, image_size), device)
    return x, y, torch.from_numpy(np.asarray(points, dtype=np.float32)).to(device)


def perturb_landmarks(
    points: torch.Tensor, image_size: int, generator: torch.Generator, config: FinetuneConfig
) -> torch.Tensor:
    """Randomly moved copies of ``(B, 68, 2)`` landmarks: a similarity about the face centre plus jitter."""
    batch = points.shape[0]

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(batch, generator=generator) * 2 - 1) * limit

    angle = torch.deg2rad(uniform(config.perturb_rotation))
    scale = 1 + uniform(config.perturb_scale)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
    shift = torch.stack([uniform(config.perturb_shift), uniform(config.perturb_shift)], -1) * image_size
    jitter = torch.randn(points.shape, generator=generator) * config.perturb_jitter
    cpu = points.cpu()
    centre = cpu.mean(dim=1, keepdim=True)  # (B, 1, 2)
    moved = (cpu - centre) @ rotation.transpose(1, 2) + centre + shift[:, None]
    moved = moved + jitter * inter_ocular(cpu)[:, None, None]
    return moved.to(points.device)


def training_warps(
    x: torch.Tensor,
    points: torch.Tensor,
    batch: torch.Tensor,
    num_shots: int,
    generator: torch.Generator,
    config: FinetuneConfig,
) -> torch.Tensor:
    """G's warp input for the shots ``x[batch]``, never made from the target shot alone.

    ``x``/``points``: every shot (mirrored copies after the originals, index
    + T). With several shots, each target's source is a random other shot of
    the same orientation; with one, the shot warped to perturbed landmarks
    and back to its own.
    """
    size = x.shape[-1]
    target_x, target_points = x[batch], points[batch]
    if num_shots > 1:
        flipped = batch // num_shots
        offset = torch.randint(1, num_shots, (len(batch),), generator=generator).to(batch.device)
        source = (batch % num_shots + offset) % num_shots + flipped * num_shots
        return warp_images(x[source], points[source], target_points)
    moved = perturb_landmarks(target_points, size, generator, config)
    source = warp_images(target_x, target_points, moved)  # the shot as if seen with other landmarks
    return warp_images(source, moved, target_points)


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
    discriminator: nn.Module | None,
    psi: nn.Parameter,
    w: nn.Parameter | None,
    x: torch.Tensor,
    y: torch.Tensor,
    points: torch.Tensor,
    warp: torch.Tensor | None,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer | None],
    content_loss: ContentLoss,
    loss_config: LossConfig,
    precision: Precision,
) -> tuple[dict[str, float], bool]:
    """One D' update (hinge) then one G' update (L_CNT + L_ADV); returns the losses and whether both stepped.

    L_CNT here is ``content_loss`` plus the extra terms ``loss_config`` turns on
    (:func:`~talking_head.nets.losses.weighted_extra_terms`, on the shots'
    landmarks ``points``); each part is also returned as ``content_<name>``.
    Without D' (``discriminator`` None: both adversarial weights are 0) the
    step is a content-only regression and the D' losses read 0: 2.4× faster
    per step on a 2-core CPU.

    Forward passes run under ``precision``'s autocast; every loss is computed
    in float32 with autocast off (:func:`~talking_head.nets.losses.float32_loss`).
    An update whose loss or gradients are not finite is skipped
    (:func:`~talking_head.nets.finite.step_if_finite`): weights and Adam's
    state stay as they were, and the second value returned is False.
    """
    opt_g, opt_d = optimizers
    with precision.autocast():
        fake = generator(y, adain_params=psi, warp=warp)  # (B, 3, S, S)
    zero = torch.zeros((), device=fake.device)
    loss_d = adversarial = matching = zero
    stepped_d = True

    if discriminator is not None:  # update D'
        discriminator.requires_grad_(True)
        w.requires_grad_(True)
        with precision.autocast():
            real_score, _ = discriminator(x, y, w=w)
            fake_score, _ = discriminator(fake.detach(), y, w=w)
        loss_d = d_hinge_loss(real_score, fake_score)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        stepped_d = step_if_finite(opt_d, loss_d)

    # Update G' (ψ and ψ') against the updated D'.
    with precision.autocast():  # VGG (when loaded) and D' run in the compute precision; the losses in float32
        terms = content_loss.terms(fake, x) | weighted_extra_terms(loss_config, fake, x, points)
        if discriminator is not None:
            discriminator.requires_grad_(False)
            w.requires_grad_(False)
            with torch.no_grad():
                _, real_feats = discriminator(x, y, w=w)
            fake_score, fake_feats = discriminator(fake, y, w=w)
    content = sum(terms.values())
    if discriminator is not None:
        adversarial = g_adversarial_loss(fake_score)
        matching = feature_matching_loss(real_feats, fake_feats)
    loss_g = (
        content
        + loss_config.adversarial_weight * adversarial
        + loss_config.feature_matching_weight * matching
    )
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    stepped_g = step_if_finite(opt_g, loss_g)
    losses = {
        "content": content,
        **{f"content_{name}": term for name, term in terms.items()},
        "adversarial": adversarial,
        "feature_matching": matching,
        "generator": loss_g,
        "discriminator": loss_d,
    }
    return {name: value.item() for name, value in losses.items()}, stepped_d and stepped_g


@dataclass
class _FiniteState:
    """The last fine-tuning state whose update was finite: G' (parameters and buffers) and ψ'."""

    step: int  # the step after which it was taken (0: the start)
    generator: dict[str, torch.Tensor]
    psi: torch.Tensor

    @classmethod
    def take(cls, step: int, generator: nn.Module, psi: torch.Tensor) -> _FiniteState:
        state = {k: v.detach().clone() for k, v in generator.state_dict().items()}
        return cls(step, state, psi.detach().clone())

    def restore(self, generator: nn.Module, psi: torch.Tensor) -> None:
        with torch.no_grad():
            generator.load_state_dict(self.generator)
            psi.copy_(self.psi)


class _Guard:
    """Counts non-finite steps; restores the last finite state when fine-tuning must stop (see finetune_person)."""

    def __init__(self, steps: int, start: _FiniteState) -> None:
        self.steps, self.good, self.skipped, self.notice = steps, start, 0, ""

    def stop_after(self, step: int, finite: bool, generator: nn.Module, psi: torch.Tensor) -> bool:
        """Record ``step``; True when it was the last of :data:`MAX_NONFINITE_STEPS` non-finite ones in a row."""
        if finite:
            self.good = _FiniteState.take(step, generator, psi)
            return False
        self.skipped += 1
        logger.warning("fine-tuning step %d of %d skipped: a loss or gradient is not finite", step, self.steps)
        if step - self.good.step >= MAX_NONFINITE_STEPS:
            self.notice = stopped_notice(step, self.steps, self.good.step)
            return True
        return False

    def finish(self, done: int, generator: nn.Module, psi: torch.Tensor) -> str:
        """Restore the last finite state if fine-tuning stopped or a weight is not finite; the notice for the user."""
        if self.notice or not (module_finite(generator) and all_finite([psi])):
            self.notice = self.notice or stopped_notice(done, self.steps, self.good.step)
            self.good.restore(generator, psi)  # never render from non-finite weights
            logger.warning("%s", self.notice)
        elif self.skipped:
            self.notice = f"fine-tuning skipped {self.skipped} of {self.steps} steps (numerical problem)"
        return self.notice


def _optimizers(
    generator: nn.Module,
    discriminator: nn.Module | None,
    psi: nn.Parameter,
    w: nn.Parameter | None,
    config: FinetuneConfig,
    precision: Precision,
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """Adam for ψ and ψ' (G'), and for θ, w', b (D', when there is one); weights laid out for ``precision``."""
    opt_g = torch.optim.Adam(
        [p for p in generator.parameters() if p.requires_grad] + [psi],
        lr=config.generator_lr,
        betas=config.betas,
    )
    precision.prepare_for_training(generator)
    if discriminator is None:
        return opt_g, None
    precision.prepare_for_training(discriminator)
    opt_d = torch.optim.Adam(list(discriminator.parameters()) + [w], lr=config.discriminator_lr, betas=config.betas)
    return opt_g, opt_d


def stopped_notice(step: int, steps: int, restored_step: int) -> str:
    """What a user is told when fine-tuning stopped on non-finite values."""
    return (
        f"fine-tuning stopped at step {step} of {steps}: numerical problem; "
        f"rendered with the state of step {restored_step}"
    )


def _person_networks(
    model: TalkingHeadModel, person: Person, with_discriminator: bool
) -> tuple[nn.Module, nn.Module | None, nn.Parameter, nn.Parameter | None]:
    """Fresh copies G', D' and the parameters ψ', w' to train (the base model is not touched).

    A person fine-tuned before continues from its G' and ψ'; D' always starts
    from the base D with w' = w0 + ê. Without ``with_discriminator`` D' and w'
    are None (not copied).
    """
    device = model_device(model)
    base_generator = person.generator if person.generator is not None else model.generator
    generator = copy.deepcopy(base_generator).to(device).train().requires_grad_(True)
    generator.projection.requires_grad_(False)  # P is replaced by ψ'
    psi = nn.Parameter(person.adain_params.detach().clone().to(device))
    if not with_discriminator:
        return generator, None, psi, None
    discriminator = copy.deepcopy(model.discriminator).to(device).train()
    discriminator.set_num_videos(0)  # W is meta-learning state; D' uses w'
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
    weights on a CPU; G', ψ', D', w' and Adam's moments stay float32; the
    losses are float32 in every precision.

    A step whose loss or gradients are not finite is skipped (weights and
    optimizer state untouched). After :data:`~talking_head.nets.finite.MAX_NONFINITE_STEPS`
    in a row, or if any weight ends non-finite, the state after the last finite
    step is restored and fine-tuning stops early; ``Person.finetune_notice``
    then says so ("fine-tuning stopped at step N of M: numerical problem;
    rendered with the state of step K"), and skipped steps are counted there too.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if steps == 0:
        return person
    config = config or FinetuneConfig()
    device = model_device(model)
    precision = resolve_precision(precision, device, task="train")
    generator, discriminator, psi, w = _person_networks(model, person, config.loss.adversarial_on)
    opt_g, opt_d = _optimizers(generator, discriminator, psi, w, config, precision)
    content_loss = _content_loss(config.loss, str(device), precision)
    x_all, y_all, points_all = _shot_tensors(person, model.config.image_size, device, config.flip)
    rng = np.random.default_rng(config.seed)
    torch_rng = torch.Generator().manual_seed(config.seed)
    num_shots = len(person.shots)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    guard = _Guard(steps, _FiniteState.take(0, generator, psi))
    for step in range(1, steps + 1):
        batch = torch.from_numpy(_sample_batch(rng, num_shots, config.batch_size, config.flip)).to(device)
        warp = None
        if model.config.warp_guided:
            warp = training_warps(x_all, points_all, batch, num_shots, torch_rng, config)
        losses, finite = _train_step(
            generator,
            discriminator,
            psi,
            w,
            x_all[batch],
            y_all[batch],
            points_all[batch],
            warp,
            (opt_g, opt_d),
            content_loss,
            config.loss,
            precision,
        )
        history.append(losses)
        if guard.stop_after(step, finite, generator, psi):
            break
        if callback is not None and callback(step, steps, losses) is False:
            raise CancelledError(f"fine-tuning was cancelled after {step} of {steps} steps")
    notice = guard.finish(len(history), generator, psi)
    logger.info(
        "fine-tuned %d steps in %.1f s (content loss %.4f)",
        len(history),
        time.perf_counter() - start,
        history[-1]["content"],
    )
    generator.eval().requires_grad_(False)
    return person.with_finetuned(generator, psi.detach(), len(history), history, notice)


@torch.inference_mode()
def shot_reconstruction_error(model: TalkingHeadModel, person: Person) -> float:
    """Mean absolute error (in [-1, 1] units) of the person's G rendering its own shots from their landmarks.

    A warp-guided G gets the warps fine-tuning trains on (other shots, or the
    shot through perturbed landmarks; fixed seed), not the shot itself.
    """
    device = model_device(model)
    x, y, points = _shot_tensors(person, model.config.image_size, device, flip=False)
    generator = person.generator if person.generator is not None else model.generator
    warp = None
    if model.config.warp_guided:  # as in fine-tuning, never the shot warped to itself (seeded: comparable)
        shots = torch.arange(len(x), device=device)
        warp = training_warps(x, points, shots, len(x), torch.Generator().manual_seed(0), FinetuneConfig())
    with eval_mode(generator):
        fake = generator(y, adain_params=person.adain_params.to(device), warp=warp)
    return float((fake - x).abs().mean())

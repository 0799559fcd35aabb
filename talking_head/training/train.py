"""Meta-learning of E, G and D (Zakharov et al. 2019, Sec. 3.2) as one training function.

:func:`train` runs on CPU, one GPU, or under ``torchrun`` (DDP across processes
and nodes, detected from the ``RANK`` environment variable: NCCL on CUDA, gloo
on CPU). One step:

1. Episode: for each video i of the batch, K shot frames and one target frame.
   ê_i = mean_k E(x_i(s_k), y_i(s_k)); x̂ = G(y_i(t), ê_i). A warp-guided G
   (DESIGN §7) also gets the K shots warped to the target's landmarks
   (:func:`~talking_head.nets.warp.warp_episodes`), as it will at inference.
2. D update(s) (``d_steps`` per step, on the same x̂, detached): hinge loss
   ``max(0, 1 − D(x, y, i)) + max(0, 1 + D(x̂, y, i))`` (raw scores, no sigmoid),
   plus, in the FT variant, the W side of L_MCH (``w_mch · |ê_i − W_i|``, ê_i
   detached).
3. E/G update: ``L_CNT(x, x̂) − D(x̂, y, i) + w_fm · L_FM`` plus, in FT, the E
   side of L_MCH (W_i detached). D's parameters are frozen during it.
   ``warmup_steps`` first steps (off by default) train E and G on L_CNT alone,
   with no D: the reconstruction pre-training of ESRGAN-style GANs, which
   costs half a GAN step on a CPU. ``LossConfig.mouth_weight`` adds an L1 term
   inside the target's lip square, where a warp-guided G has the most to paint.
4. EMA of E and G (what ``export`` ships).

L_MCH(φ, W) is minimized over both φ (E) and W, as in the paper; each side is
applied by the optimizer that owns the parameter, once per update, so W has a
single set of Adam moments (DESIGN's known failure: per-video rows swapped in
from disk share moments).

Optimizers: Adam, lr 5e-5 for E and G, 2e-4 for D, betas (0, 0.999), two D
updates per E/G update (SAGAN; the paper's v2 text). D's optimizer has two
parameter groups: ``theta`` (V's θ, w0, b) and ``W`` (the per-video table).

Distributed data parallelism: every rank builds identical networks (same
seed; rank 0's parameters and buffers are broadcast to be sure), draws
different videos (:class:`~talking_head.training.data.EpisodeSampler`) and, after each
backward, averages *all* gradients across ranks with one ``all_reduce`` per
optimizer (the stylegan2-ada scheme; no ``DistributedDataParallel`` wrapper,
whose one-forward-per-backward rule does not fit a step that runs D on real and
fake images and the match term). W's gradient is the whole table, so a row that
only rank 1 touched arrives on rank 0 too: every rank takes the same Adam step.
Rows of videos not in the global batch get gradient only through W's spectral
norm σ(W) (tiny); with β1 = 0 Adam's step is g/(√v + ε), so a row with zero
gradient does not move, while its second moment v decays by β2 per step.
Only rank 0 writes ``stats.jsonl``, sample grids and checkpoints.

Run folder: ``config.json`` (model, loss and train config, content-loss kind,
the video list = rows of W), ``stats.jsonl``, ``samples/step_XXXXXXX.png``
(rows: landmarks | target | generated, from a fixed validation batch with the
EMA networks) and ``checkpoint.pt`` (training state: networks with W, EMA,
optimizers, step, RNG states; tensors and plain containers only, loaded with
``weights_only=True``). ``export`` turns it into a weights folder.

Warm start (``init_from``: an exported weights folder, e.g. the committed
``weights/``): E, G and D's θ, w0, b start from its tensors and the EMA from
E and G; each row W_i starts as the mean of E over up to 8 frames of video i
(the embedding the match loss pulls W_i towards), so a long run that was cut
off and exported is never lost, even on a new machine without the checkpoint.

Resuming (``resume=True``) restores everything, including the data position
(the sampler skips ``step × batch_size`` episodes), so on CPU with a fixed seed
the following steps equal those of an uninterrupted run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn

from talking_head.errors import TalkingHeadError
from talking_head.face.raster import rasterize_landmarks
from talking_head.nets.config import ModelConfig
from talking_head.nets.discriminator import VIDEO_TABLE_PREFIX, Discriminator
from talking_head.nets.embedder import Embedder
from talking_head.nets.generator import Generator
from talking_head.nets.losses import (
    ContentLoss,
    LossConfig,
    d_hinge_loss,
    embedding_match_loss,
    feature_matching_loss,
    g_adversarial_loss,
    mouth_l1_loss,
)
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.precision import Precision, resolve_precision
from talking_head.nets.warp import warp_episodes
from talking_head.training.data import EpisodeDataset, EpisodeSampler, image_to_tensor, tensor_to_image

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
STATS_NAME = "stats.jsonl"
SAMPLES_DIR = "samples"
CHECKPOINT_VERSION = 1
VARIANTS = ("ft", "ff")
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
)


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


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank)."""

    run_dir: Path
    step: int  # E/G updates done
    stats: dict[str, float]  # the last stats line
    wall_seconds: float  # training time of this call
    content_loss_kind: str  # "vgg", "vgg19" or "pixel"


@dataclass
class _Dist:
    """Where this process sits: rank, world size and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


# ----- the training loop ---------------------------------------------------


def train(
    data_dir: str | Path,
    run_dir: str | Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    loss_config: LossConfig | None = None,
    resume: bool = False,
    val_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    init_from: str | Path | None = None,
    precision: str | Precision | None = None,
) -> TrainResult:
    """Meta-train E, G and D on the prepared clips in ``data_dir``; write the run into ``run_dir``.

    ``val_dir`` (a prepared folder) supplies the fixed sample-grid episodes
    (default: ``data_dir``). ``device`` defaults to CUDA when available.
    ``init_from`` (a weights folder, fresh runs only) warm-starts the networks.
    Under ``torchrun`` each process calls this function; only rank 0 writes files.
    ``precision`` (``auto``, ``bf16``, ``fp32``; ``None``: ``$TALKING_HEAD_PRECISION``,
    default ``auto``): bf16 runs the forward passes under autocast (with
    channels_last weights on a CPU); weights, Adam moments, EMA and loss sums
    stay float32.
    """
    # Set up processes and devices.
    env = _init_distributed(device)
    run_dir = Path(run_dir)
    loss_config = loss_config or LossConfig()
    tc = train_config
    ckpt_path = run_dir / CHECKPOINT_NAME
    checkpoint = _read_checkpoint_for_resume(ckpt_path, resume, model_config, tc, env.device)
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    precision = resolve_precision(precision, env.device)
    autocast = precision.autocast()

    # Load dataset.
    dataset = EpisodeDataset(data_dir, tc.k_shots, model_config.image_size, flip=tc.flip)
    val_dataset = EpisodeDataset(val_dir or data_dir, tc.k_shots, model_config.image_size, flip=False)
    if checkpoint is not None and checkpoint["videos"] != dataset.video_names():
        raise TalkingHeadError(
            f"{data_dir} holds other videos than the run was started with; resume with the same --data"
        )

    # Construct networks.
    _seed_everything(tc.seed)
    embedder = Embedder(model_config).to(env.device)
    generator = Generator(model_config).to(env.device)
    discriminator = Discriminator(model_config, num_videos=len(dataset)).to(env.device)
    ema_embedder = copy.deepcopy(embedder).eval().requires_grad_(False)
    ema_generator = copy.deepcopy(generator).eval().requires_grad_(False)
    content_loss = ContentLoss(loss_config, device=env.device)
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
    networks = {
        "embedder": embedder,
        "generator": generator,
        "discriminator": discriminator,
        "ema_embedder": ema_embedder,
        "ema_generator": ema_generator,
    }

    # Warm start from exported weights (a fresh run only; a resumed run has its own state).
    if init_from is not None and checkpoint is None:
        _warm_start(init_from, model_config, embedder, generator, discriminator, dataset, env.device)
        ema_embedder.load_state_dict(embedder.state_dict())
        ema_generator.load_state_dict(generator.state_dict())

    # Resume.
    start_step, wall_before = 0, 0.0
    if checkpoint is not None:
        for name, module in networks.items():
            module.load_state_dict(checkpoint[name])
        opt_eg.load_state_dict(checkpoint["opt_eg"])
        opt_d.load_state_dict(checkpoint["opt_d"])
        for optimizer, lr in ((opt_eg, tc.lr_eg), (opt_d, tc.lr_d)):  # this call's rates, not the saved ones
            for group in optimizer.param_groups:
                group["lr"] = lr
        _set_rng_state(checkpoint["rng"])
        start_step, wall_before = int(checkpoint["step"]), float(checkpoint["wall_seconds"])
        if checkpoint["world_size"] != env.world_size:
            logger.warning(
                "resuming with %d processes instead of %d: the episode order changes",
                env.world_size,
                checkpoint["world_size"],
            )
        logger.info("resumed %s at step %d", ckpt_path, start_step)
    if env.enabled:
        _broadcast_state([embedder, generator, discriminator, ema_embedder, ema_generator])
    del checkpoint

    # Write the run config.
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_run_config(
            run_dir, model_config, tc, loss_config, content_loss.kind, dataset, data_dir, env, precision
        )
        logger.info("precision %s (%s)", precision.name, precision.reason)

    # Fixed validation batch for the sample grids.
    fixed = _fixed_batch(val_dataset, tc.num_samples, env.device) if env.is_main and tc.sample_every else None

    # Data loader: this rank's share of the episode stream, continuing where a resumed run stopped.
    sampler = EpisodeSampler(
        len(dataset), tc.seed, env.rank, env.world_size, start=start_step * tc.batch_size
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=tc.batch_size,
        sampler=sampler,
        num_workers=tc.workers,
        pin_memory=env.device.type == "cuda",
        persistent_workers=tc.workers > 0,
    )
    batches: Iterator[dict[str, torch.Tensor]] = iter(loader)

    # Main loop.
    match_weight = loss_config.embedding_match_weight if tc.variant == "ft" else 0.0
    stats_sum: dict[str, torch.Tensor] = {}  # on the device: no GPU sync until a stats line is due
    interval_start, interval_steps = time.perf_counter(), 0
    run_start = time.perf_counter()
    last_stats: dict[str, float] = {}
    step = start_step
    while step < tc.max_steps:
        batch = {k: v.to(env.device, non_blocking=True) for k, v in next(batches).items()}
        if tc.crop_size:  # G and D on crops of the targets (E still embeds whole shots)
            batch = _crop_targets(batch, tc.crop_size, tc.mouth_crops, tc.crops_per_target)
        x, y, index = (
            batch["target_image"],
            batch["target_landmarks"],
            batch["video_index"],
        )  # (B, 3, H, W), (B,)

        # Generate: ê_i from the K shots, x̂ from the target landmarks.
        for module in (embedder, generator, discriminator):
            module.train()
        with autocast:
            e_hat, x_hat, _ = _generate(embedder, generator, batch)  # (B, N), (B, 3, H, W)

        # Update D (not during the warm-up, where G learns to reconstruct first).
        adversarial = step >= tc.warmup_steps
        discriminator.requires_grad_(True)
        for _ in range(tc.d_steps if adversarial else 0):
            opt_d.zero_grad(set_to_none=True)
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
            _average_gradients(theta_params + w_params, env)
            opt_d.step()

        # Update E and G (D frozen and in eval mode, so its power iterations stay put).
        discriminator.requires_grad_(False).eval()
        opt_eg.zero_grad(set_to_none=True)
        with autocast:
            loss_cnt_terms = content_loss.terms(
                x_hat, x
            )  # VGG runs in bf16 under autocast; the L1 sums are float32
            if loss_config.mouth_weight > 0:
                loss_cnt_terms["mouth"] = loss_config.mouth_weight * mouth_l1_loss(
                    x_hat, x, batch["target_points"]
                )
            if adversarial:
                with torch.no_grad():
                    _, real_feats = discriminator(x, y, index)
                fake_score_g, fake_feats = discriminator(x_hat, y, index)
        loss_cnt = sum(loss_cnt_terms.values())
        if adversarial:
            loss_adv = g_adversarial_loss(fake_score_g)
            loss_fm = feature_matching_loss(real_feats, fake_feats)
        else:
            loss_adv = loss_fm = torch.zeros((), device=env.device)
            loss_d = loss_d_hinge = torch.zeros((), device=env.device)
            real_score = fake_score = torch.zeros(1, device=env.device)
        loss_mch = embedding_match_loss(
            e_hat, discriminator.video_embedding(index).detach()
        )  # the E side of L_MCH
        loss_eg = (
            loss_cnt
            + loss_config.adversarial_weight * loss_adv
            + loss_config.feature_matching_weight * loss_fm
            + (match_weight if adversarial else 0.0) * loss_mch  # W only learns with D: no pull to a random W
        )
        loss_eg.backward()
        _average_gradients(eg_params, env)
        opt_eg.step()
        step += 1

        # Update EMA.
        ema_decay = min(tc.ema_decay, (1 + step) / (10 + step))
        _update_ema(ema_embedder, embedder, ema_decay)
        _update_ema(ema_generator, generator, ema_decay)

        # Accumulate statistics.
        values = {
            "loss_eg": loss_eg,
            "loss_cnt": loss_cnt,
            **{f"loss_cnt_{k}": v for k, v in loss_cnt_terms.items()},
            "loss_adv": loss_adv,
            "loss_fm": loss_fm,
            "loss_mch": loss_mch,
            "loss_d": loss_d,
            "loss_d_hinge": loss_d_hinge,
            "d_real": real_score.mean(),
            "d_fake": fake_score.mean(),
        }
        for key, value in values.items():
            stats_sum[key] = stats_sum.get(key, 0.0) + value.detach().float()
        interval_steps += 1

        # Log.
        if step % tc.log_every == 0 or step == tc.max_steps:
            elapsed = time.perf_counter() - interval_start
            means = _reduce_means(stats_sum, interval_steps, env)
            last_stats = {
                "step": step,
                "episodes": step * tc.batch_size * env.world_size,
                **means,
                "episodes_per_s": interval_steps * tc.batch_size * env.world_size / max(elapsed, 1e-9),
                "ema_decay": ema_decay,
                "wall_seconds": wall_before + time.perf_counter() - run_start,
            }
            if env.is_main:
                _append_stats(run_dir / STATS_NAME, last_stats)
                logger.info(
                    "step %d  loss_eg %.4f  loss_cnt %.4f  loss_d %.4f  D(x) %.3f  D(x̂) %.3f  %.2f episodes/s",
                    step,
                    means["loss_eg"],
                    means["loss_cnt"],
                    means["loss_d"],
                    means["d_real"],
                    means["d_fake"],
                    last_stats["episodes_per_s"],
                )
            stats_sum, interval_start, interval_steps = {}, time.perf_counter(), 0

        # Save a sample grid.
        if fixed is not None and (step % tc.sample_every == 0 or step == tc.max_steps):
            _save_sample_grid(
                run_dir / SAMPLES_DIR / f"step_{step:07d}.png", fixed, ema_embedder, ema_generator, autocast
            )

        # Save a checkpoint.
        if step % tc.ckpt_every == 0 or step == tc.max_steps:
            _check_ranks_in_sync([embedder, generator, discriminator], env)
            if env.is_main:
                _save_checkpoint(
                    ckpt_path,
                    step=step,
                    networks=networks,
                    optimizers={"opt_eg": opt_eg, "opt_d": opt_d},
                    configs=(model_config, tc, loss_config),
                    videos=dataset.video_names(),
                    world_size=env.world_size,
                    wall_seconds=wall_before + time.perf_counter() - run_start,
                    content_loss_kind=content_loss.kind,
                )

    # Done.
    if env.enabled:
        dist.barrier()
    return TrainResult(run_dir, step, last_stats, time.perf_counter() - run_start, content_loss.kind)


# ----- distributed helpers ---------------------------------------------------


def _init_distributed(device: str | torch.device | None) -> _Dist:
    """Join the process group when launched by torchrun (``RANK`` set); pick this process's device."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return _Dist(0, 1, torch.device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Dist(
        dist.get_rank(),
        dist.get_world_size(),
        torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"),
    )


def _average_gradients(params: list[nn.Parameter], env: _Dist) -> None:
    """Average gradients over ranks (one flat all_reduce); a missing gradient counts as zero."""
    if not env.enabled:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= env.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def _broadcast_state(modules: list[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def _reduce_means(sums: dict[str, torch.Tensor], count: int, env: _Dist) -> dict[str, float]:
    """Means over the interval and, under DDP, over ranks."""
    keys = sorted(sums)
    values = torch.stack([sums[k] for k in keys]).double() / max(count, 1)
    if env.enabled:
        dist.all_reduce(values)
        values = values / env.world_size
    return {k: float(v) for k, v in zip(keys, values.cpu())}


def _check_ranks_in_sync(modules: list[nn.Module], env: _Dist) -> None:
    """Raise if ranks hold different parameters (a bug in gradient averaging would show here)."""
    if not env.enabled:
        return
    total = torch.stack([p.detach().double().sum() for m in modules for p in m.parameters()]).to(env.device)
    gathered = [torch.zeros_like(total) for _ in range(env.world_size)]
    dist.all_gather(gathered, total)
    for other in gathered[1:]:
        if not torch.allclose(gathered[0], other, rtol=1e-6, atol=1e-8):
            raise RuntimeError("DDP ranks hold different parameters; gradient averaging is broken")


# ----- small helpers -------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay · ema + (1 − decay) · model; buffers (spectral-norm u, v) are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def _fixed_batch(dataset: EpisodeDataset, count: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The same ``count`` episodes at every sample step (seeded, no flips)."""
    items = [dataset[(i % len(dataset), 1_000_003 + i)] for i in range(count)]
    return {k: torch.stack([item[k] for item in items]).to(device) for k in items[0]}


def _generate(
    embedder: Embedder, generator: Generator, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """ê from the episode's K shots, then x̂ = G(y_t, ê[, warp]); returns (ê, x̂, warp or None)."""
    e_hat = embedder.embed_frames(batch["shot_images"], batch["shot_landmarks"])  # (B, N)
    corners = batch.get("crop_corners")  # (B·n, 2) with n crops per target, or None
    repeats = 1 if corners is None else corners.shape[0] // e_hat.shape[0]
    e_hat = e_hat.repeat_interleave(repeats, dim=0)
    warp = None
    if generator.config.warp_guided:
        with torch.no_grad():  # the warp is an input, not a function of any parameter
            if corners is None:
                warp = warp_episodes(batch["shot_images"], batch["shot_points"], batch["target_points"])
            else:  # warped to the whole frame's points, then cut like the target
                whole = batch["target_points"] + corners[:, None].to(batch["target_points"].dtype)
                warp = warp_episodes(batch["shot_images"], batch["shot_points"], whole[::repeats])
                warp = _crop(warp.repeat_interleave(repeats, dim=0), corners, batch["target_image"].shape[-1])
    return e_hat, generator(batch["target_landmarks"], e_hat, warp=warp), warp


def _crop_corners(points: torch.Tensor, image_size: int, size: int, mouth_share: float) -> torch.Tensor:
    """(B, 2) integer (x, y) top-left corners of ``size``² crops inside an ``image_size``² frame.

    A ``mouth_share`` of them (drawn per sample) centre on the lips of
    ``points`` (B, 68, 2), jittered by up to size/8; the others lie anywhere.
    """
    room = image_size - size
    anywhere = torch.rand(points.shape[0], 2, device=points.device) * room
    lips = points[:, 48:68].float()
    centre = (lips.amin(dim=1) + lips.amax(dim=1)) / 2
    jitter = (torch.rand(points.shape[0], 2, device=points.device) * 2 - 1) * (size / 8)
    on_mouth = centre + jitter - size / 2
    chosen = torch.where(
        torch.rand(points.shape[0], 1, device=points.device) < mouth_share, on_mouth, anywhere
    )
    return chosen.round().clamp(0, room).long()


def _crop(images: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, S, S) → (B, C, size, size): each image cut at its own corner (B, 2) (x, y)."""
    return torch.stack(
        [image[:, y : y + size, x : x + size] for image, (x, y) in zip(images, corners.tolist())]
    )


def _crop_targets(
    batch: dict[str, torch.Tensor], size: int, mouth_share: float, per_target: int = 1
) -> dict[str, torch.Tensor]:
    """The batch with its targets (image, landmark image, points, video index) cut to ``size``² crops.

    ``per_target`` crops of each target, in a row (B·n targets for B episodes:
    the shots stay B, embedded once). The corners travel as ``crop_corners`` so
    that :func:`_generate` cuts the warp (made from whole shots) the same way.
    """
    image_size = batch["target_image"].shape[-1]
    if size >= image_size:
        raise TalkingHeadError(f"crop_size {size} must be smaller than the image size {image_size}")
    targets = {
        key: batch[key].repeat_interleave(per_target, dim=0)
        for key in ("target_image", "target_landmarks", "target_points", "video_index")
    }
    corners = _crop_corners(targets["target_points"], image_size, size, mouth_share)
    return {
        **batch,
        "target_image": _crop(targets["target_image"], corners, size),
        "target_landmarks": _crop(targets["target_landmarks"], corners, size),
        "target_points": targets["target_points"] - corners[:, None].to(targets["target_points"].dtype),
        "video_index": targets["video_index"],
        "crop_corners": corners,
    }


@torch.no_grad()
def _warm_start(
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


@torch.no_grad()
def _save_sample_grid(
    path: Path, batch: dict[str, torch.Tensor], embedder: Embedder, generator: Generator, autocast: Any
) -> None:
    """A PNG with one row per episode: landmarks | target | [warp |] generated."""
    with autocast:
        _, x_hat, warp = _generate(embedder, generator, batch)
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


def _append_stats(path: Path, stats: dict[str, float]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(stats) + "\n")


def _write_run_config(
    run_dir: Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    loss_config: LossConfig,
    content_loss_kind: str,
    dataset: EpisodeDataset,
    data_dir: str | Path,
    env: _Dist,
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


# ----- checkpoints ---------------------------------------------------------------


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


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _save_checkpoint(
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


def _read_checkpoint_for_resume(
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

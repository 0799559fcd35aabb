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

The parts, by module of :mod:`talking_head.training`: ``config`` (TrainConfig),
``networks`` (E, G, D, EMA, optimizers; warm start), ``episodes`` (ê and x̂ of
an episode, target crops), ``steps`` (the D and E/G updates, EMA), ``distributed``
(DDP), ``checkpoint`` (save, load, resume checks), ``run_folder`` (config.json,
stats.jsonl, sample grids). This module holds :func:`train`: the set-up and the loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from talking_head.errors import TalkingHeadError
from talking_head.nets.config import ModelConfig
from talking_head.nets.finite import MAX_NONFINITE_STEPS, module_finite
from talking_head.nets.losses import LossConfig
from talking_head.nets.precision import Precision, resolve_precision
from talking_head.training.checkpoint import (
    CHECKPOINT_NAME,
    read_checkpoint_for_resume,
    save_checkpoint,
    set_rng_state,
)
from talking_head.training.config import TrainConfig
from talking_head.training.data import EpisodeDataset, EpisodeSampler
from talking_head.training.distributed import (
    Dist,
    broadcast_state,
    check_ranks_in_sync,
    init_distributed,
)
from talking_head.training.episodes import crop_targets, fixed_batch, generate
from talking_head.training.networks import Networks, build_networks, warm_start_networks
from talking_head.training.run_folder import (
    SAMPLES_DIR,
    STATS_NAME,
    StatsInterval,
    append_stats,
    save_sample_grid,
    stats_line,
    write_run_config,
)
from talking_head.training.steps import update_d, update_eg, update_emas, update_lip_d

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank)."""

    run_dir: Path
    step: int  # E/G updates done
    stats: dict[str, float]  # the last stats line
    wall_seconds: float  # training time of this call
    content_loss_kind: str  # "vgg", "vgg19" or "pixel"


@dataclass
class _Run:
    """What the main loop works with: the process, the run folder, the configs, the data and the networks."""

    env: Dist
    run_dir: Path
    model_config: ModelConfig
    tc: TrainConfig
    loss_config: LossConfig
    dataset: EpisodeDataset
    nets: Networks
    autocast: Any  # the precision's autocast context (a no-op for fp32)
    wall_before: float  # training seconds of the earlier calls of a resumed run


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
    env = init_distributed(device)
    run_dir, loss_config, tc = Path(run_dir), loss_config or LossConfig(), train_config
    ckpt_path = run_dir / CHECKPOINT_NAME
    checkpoint = read_checkpoint_for_resume(ckpt_path, resume, model_config, tc, env.device)
    _use_fast_cuda_kernels(env.device)
    precision = resolve_precision(precision, env.device, task="train")

    # Load dataset.
    dataset = EpisodeDataset(data_dir, tc.k_shots, model_config.image_size, flip=tc.flip)
    val_dataset = EpisodeDataset(val_dir or data_dir, tc.k_shots, model_config.image_size, flip=False)
    if checkpoint is not None and checkpoint["videos"] != dataset.video_names():
        raise TalkingHeadError(
            f"{data_dir} holds other videos than the run was started with; resume with the same --data"
        )

    # Construct networks.
    _seed_everything(tc.seed)
    nets = build_networks(model_config, tc, loss_config, len(dataset), env.device, precision)

    # Warm start from exported weights (a fresh run only; a resumed run has its own state).
    if init_from is not None and checkpoint is None:
        warm_start_networks(nets, init_from, model_config, dataset, env.device)

    # Resume.
    start_step, wall_before = 0, 0.0
    if checkpoint is not None:
        start_step, wall_before = _resume(nets, checkpoint, tc, env, ckpt_path)
    if env.enabled:
        broadcast_state(list(nets.modules().values()))
    del checkpoint

    # Write the run config.
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(
            run_dir, model_config, tc, loss_config, nets.content_loss.kind, dataset, data_dir, env, precision
        )
        logger.info("precision %s (%s)", precision.name, precision.reason)

    # Fixed validation batch for the sample grids.
    fixed = fixed_batch(val_dataset, tc.num_samples, env.device) if env.is_main and tc.sample_every else None

    # Data loader: this rank's share of the episode stream, continuing where a resumed run stopped.
    batches = _episode_batches(dataset, tc, env, start_step)

    # Main loop.
    run = _Run(env, run_dir, model_config, tc, loss_config, dataset, nets, precision.autocast(), wall_before)
    step, last_stats, run_start = _train_steps(run, batches, fixed, start_step)

    # Done.
    if env.enabled:
        dist.barrier()
    return TrainResult(run_dir, step, last_stats, time.perf_counter() - run_start, nets.content_loss.kind)


def _train_steps(
    run: _Run,
    batches: Iterator[dict[str, torch.Tensor]],
    fixed: dict[str, torch.Tensor] | None,
    step: int,
) -> tuple[int, dict[str, float], float]:
    """E/G updates from ``step`` to ``max_steps``; returns (step, the last stats line, the loop's start time)."""
    nets, tc, env, autocast = run.nets, run.tc, run.env, run.autocast
    match_weight = run.loss_config.embedding_match_weight if tc.variant == "ft" else 0.0
    interval, run_start = StatsInterval(), time.perf_counter()
    last_stats: dict[str, float] = {}
    bad_in_row, ema_decay = 0, 0.0
    while step < tc.max_steps:
        batch = _next_batch(batches, tc, env.device)

        # Generate: ê_i from the K shots, x̂ from the target landmarks.
        for module in (nets.embedder, nets.generator, nets.discriminator):
            module.train()
        with autocast:
            e_hat, x_hat, _ = generate(nets.embedder, nets.generator, batch)  # (B, N), (B, 3, H, W)

        # Update D (not during the warm-up, where G learns to reconstruct first), then E and G.
        adversarial = step >= tc.warmup_steps
        d_steps = tc.d_steps if adversarial else 0
        d_losses = update_d(nets, batch, e_hat, x_hat, d_steps, match_weight, autocast, env)
        d_losses |= update_lip_d(nets, batch, x_hat, tc.lip_d_steps, autocast, env)
        eg_losses = update_eg(
            nets, batch, e_hat, x_hat, run.loss_config, match_weight, adversarial, autocast, env
        )
        step += 1

        # Update EMA (not after a skipped update).
        if eg_losses["eg_skipped"] == 0:
            bad_in_row = 0
            ema_decay = update_emas(nets, tc.ema_decay, step)
        else:
            bad_in_row += 1
            logger.warning("step %d: E/G update skipped (a loss or gradient is not finite)", step)

        # Accumulate statistics; log.
        interval.add(eg_losses | d_losses)
        if step % tc.log_every == 0 or step == tc.max_steps:
            last_stats = stats_line(interval, step, tc, env, ema_decay, run.wall_before, run_start)
            if env.is_main:
                append_stats(run.run_dir / STATS_NAME, last_stats)
                _log_stats(last_stats)
            interval = StatsInterval()

        # Save a sample grid.
        if fixed is not None and (step % tc.sample_every == 0 or step == tc.max_steps):
            path = run.run_dir / SAMPLES_DIR / f"step_{step:07d}.png"
            save_sample_grid(path, fixed, nets.ema_embedder, nets.ema_generator, autocast)

        # Save a checkpoint (not while updates are being skipped).
        if (step % tc.ckpt_every == 0 or step == tc.max_steps) and bad_in_row == 0:
            _save_state(run, step, run_start)

        # After several non-finite updates in a row, go back to the last checkpoint.
        if bad_in_row >= MAX_NONFINITE_STEPS:
            step, bad_in_row = _restore_last_checkpoint(run, step), 0
    return step, last_stats, run_start


# ----- set-up ----------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _use_fast_cuda_kernels(device: torch.device) -> None:
    """cuDNN autotuning and TF32 matmuls/convolutions on a GPU (no effect on a CPU)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _resume(
    nets: Networks, checkpoint: dict[str, Any], tc: TrainConfig, env: Dist, path: Path
) -> tuple[int, float]:
    """Load the networks, optimizers (at this call's learning rates) and RNG states; (step, wall seconds so far)."""
    _load_training_state(nets, checkpoint, tc)
    set_rng_state(checkpoint["rng"])
    start_step, wall_before = int(checkpoint["step"]), float(checkpoint["wall_seconds"])
    if checkpoint["world_size"] != env.world_size:
        logger.warning(
            "resuming with %d processes instead of %d: the episode order changes",
            env.world_size,
            checkpoint["world_size"],
        )
    logger.info("resumed %s at step %d", path, start_step)
    return start_step, wall_before


def _load_training_state(nets: Networks, checkpoint: dict[str, Any], tc: TrainConfig) -> None:
    """Networks and optimizers from ``checkpoint``, at this call's learning rates.

    A run that gains D_lip on resume (a lip adversarial weight given for the
    first time) starts D_lip and its optimizer fresh.
    """
    for name, module in nets.modules().items():
        if name == "lip_discriminator" and name not in checkpoint:
            logger.info("D_lip is new in this run: it starts from random weights")
            continue
        module.load_state_dict(checkpoint[name])
    rates = {"opt_eg": tc.lr_eg, "opt_d": tc.lr_d, "opt_lip_d": tc.lr_lip_d}
    for name, optimizer in nets.optimizers().items():
        if name in checkpoint:
            optimizer.load_state_dict(checkpoint[name])
        for group in optimizer.param_groups:
            group["lr"] = rates[name]


def _episode_batches(
    dataset: EpisodeDataset, tc: TrainConfig, env: Dist, start_step: int
) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's batches of the episode stream, from episode ``start_step · batch_size`` on."""
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
    return iter(loader)


def _next_batch(
    batches: Iterator[dict[str, torch.Tensor]], tc: TrainConfig, device: torch.device
) -> dict[str, torch.Tensor]:
    """The next batch on the device, its targets cut to crops when ``crop_size`` is set."""
    batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
    if tc.crop_size:  # G and D on crops of the targets (E still embeds whole shots)
        batch = crop_targets(batch, tc.crop_size, tc.mouth_crops, tc.crops_per_target)
    return batch


# ----- stats and checkpoints -------------------------------------------------------


def _log_stats(line: dict[str, float]) -> None:
    logger.info(
        "step %d  loss_eg %.4f  loss_cnt %.4f  loss_d %.4f  D(x) %.3f  D(x̂) %.3f  %.2f episodes/s",
        line["step"],
        line["loss_eg"],
        line["loss_cnt"],
        line["loss_d"],
        line["d_real"],
        line["d_fake"],
        line["episodes_per_s"],
    )


def _restore_last_checkpoint(run: _Run, step: int) -> int:
    """Networks and optimizers back to the run's last checkpoint after non-finite updates; returns its step.

    The data stream goes on (new episodes), so the same batches are not
    replayed. Without a checkpoint yet, training goes on from where it is.
    """
    path = run.run_dir / CHECKPOINT_NAME
    if not path.exists():
        logger.warning(
            "step %d: %d non-finite updates in a row and no checkpoint yet: going on", step, MAX_NONFINITE_STEPS
        )
        return step
    checkpoint = torch.load(path, map_location=run.env.device, weights_only=True)
    _load_training_state(run.nets, checkpoint, run.tc)
    if run.env.enabled:  # rank 0's copy everywhere (other nodes may not see the run folder's file)
        broadcast_state(list(run.nets.modules().values()))
    restored = int(checkpoint["step"])
    logger.warning(
        "step %d: %d non-finite updates in a row: restored the checkpoint of step %d and going on with new episodes",
        step,
        MAX_NONFINITE_STEPS,
        restored,
    )
    return restored


def _save_state(run: _Run, step: int, run_start: float) -> None:
    """Check that the ranks agree, then (rank 0) write the checkpoint (never a non-finite one)."""
    nets, env = run.nets, run.env
    check_ranks_in_sync([nets.embedder, nets.generator, nets.discriminator], env)
    if not module_finite(*nets.modules().values()):
        logger.warning("step %d: a weight is not finite; the checkpoint is not saved", step)
        return
    if env.is_main:
        save_checkpoint(
            run.run_dir / CHECKPOINT_NAME,
            step=step,
            networks=nets.modules(),
            optimizers=nets.optimizers(),
            configs=(run.model_config, run.tc, run.loss_config),
            videos=run.dataset.video_names(),
            world_size=env.world_size,
            wall_seconds=run.wall_before + time.perf_counter() - run_start,
            content_loss_kind=nets.content_loss.kind,
        )

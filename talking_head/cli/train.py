"""``python -m talking_head train``: meta-learning of E, G and D on a prepared folder.

Examples::

    python -m talking_head train --data data/prepared/train --preset cpu --variant ft --out runs/cpu-ft
    python -m talking_head train --data data/prepared/train --out runs/cpu-ft --resume --steps 20000
    python -m talking_head train --data data/prepared/train --preset cpu --init-from weights/ --out runs/cpu-ft2
    torchrun --nproc_per_node=8 -m talking_head train --data DATA --preset paper --out RUN
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --master_port=29500 --nproc_per_node=8 \\
        -m talking_head train --data DATA --preset paper --out RUN

Options left out take their defaults on a new run and the run's own values on
``--resume``.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from talking_head.errors import TalkingHeadError
from talking_head.nets.config import PRESETS, ModelConfig
from talking_head.nets.losses import CONTENT_LOSS_CHOICES, LossConfig
from talking_head.nets.precision import POLICIES
from talking_head.training.checkpoint import resume_configs
from talking_head.training.config import VARIANTS, TrainConfig
from talking_head.training.train import train

# CLI option → TrainConfig field.
_TRAIN_OPTIONS = {
    "variant": "variant",
    "steps": "max_steps",
    "batch_size": "batch_size",
    "k_shots": "k_shots",
    "d_steps": "d_steps",
    "lr_eg": "lr_eg",
    "lr_d": "lr_d",
    "ema_decay": "ema_decay",
    "log_every": "log_every",
    "sample_every": "sample_every",
    "ckpt_every": "ckpt_every",
    "seed": "seed",
    "workers": "workers",
    "warmup_steps": "warmup_steps",
    "betas": "betas",
    "crop_size": "crop_size",
    "mouth_crops": "mouth_crops",
    "crops_per_target": "crops_per_target",
    "lr_lip_d": "lr_lip_d",
    "lip_d_steps": "lip_d_steps",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` command's arguments to ``parser``."""
    d = TrainConfig()
    _add_run_arguments(parser, d)
    _add_schedule_arguments(parser, d)
    _add_crop_and_loss_arguments(parser, d)
    _add_device_arguments(parser)


def _add_run_arguments(parser: argparse.ArgumentParser, d: TrainConfig) -> None:
    """The data, the run folder, the model, and how the run starts (new, resumed, warm-started)."""
    parser.add_argument(
        "--data", required=True, metavar="DATA", help="prepared folder (python -m talking_head prepare)"
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="RUN",
        help="run folder: config.json, stats.jsonl, samples/, checkpoint.pt",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model size (required for a new run)")
    parser.add_argument(
        "--variant", choices=VARIANTS, help=f"ft: with the match loss; ff: without (default {d.variant})"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument(
        "--init-from",
        metavar="WEIGHTS",
        help="warm-start a new run from an exported weights folder (same preset); W starts from each video's ê",
    )
    parser.add_argument(
        "--val-data",
        metavar="DATA",
        help="prepared folder for the fixed sample-grid episodes (default --data)",
    )


def _add_schedule_arguments(parser: argparse.ArgumentParser, d: TrainConfig) -> None:
    """Steps, batch, optimizers, EMA, what is written when, seed and data loading."""
    parser.add_argument(
        "--steps", type=int, help=f"train until this many E/G updates (default {d.max_steps})"
    )
    parser.add_argument(
        "--batch-size", type=int, help=f"episodes per step per process (default {d.batch_size})"
    )
    parser.add_argument("--k-shots", type=int, help=f"frames per episode for ê (default {d.k_shots})")
    parser.add_argument("--d-steps", type=int, help=f"D updates per E/G update (default {d.d_steps})")
    parser.add_argument("--lr-eg", type=float, help=f"Adam lr of E and G (default {d.lr_eg})")
    parser.add_argument("--lr-d", type=float, help=f"Adam lr of D (default {d.lr_d})")
    parser.add_argument(
        "--betas",
        type=float,
        nargs=2,
        metavar=("B1", "B2"),
        help=f"Adam betas of both optimizers (default {d.betas})",
    )
    parser.add_argument("--ema-decay", type=float, help=f"EMA decay of E and G (default {d.ema_decay})")
    parser.add_argument("--log-every", type=int, help=f"steps between stats lines (default {d.log_every})")
    parser.add_argument(
        "--sample-every", type=int, help=f"steps between sample grids, 0 = never (default {d.sample_every})"
    )
    parser.add_argument("--ckpt-every", type=int, help=f"steps between checkpoints (default {d.ckpt_every})")
    parser.add_argument("--seed", type=int, help=f"seed (default {d.seed})")
    parser.add_argument("--workers", type=int, help=f"data-loader processes per rank (default {d.workers})")
    parser.add_argument("--no-flip", action="store_true", help="no mirror augmentation")
    parser.add_argument(
        "--warmup-steps",
        type=int,
        help=f"first steps on the content loss alone, without D (default {d.warmup_steps})",
    )


def _add_crop_and_loss_arguments(parser: argparse.ArgumentParser, d: TrainConfig) -> None:
    """Crops of the targets and the losses."""
    parser.add_argument(
        "--crop-size",
        type=int,
        help=f"G and D train on crops of this side of the targets, 0 = whole frames (default {d.crop_size})",
    )
    parser.add_argument(
        "--mouth-crops",
        type=float,
        help=f"share of the crops centred on the lips (default {d.mouth_crops})",
    )
    parser.add_argument(
        "--crops-per-target",
        type=int,
        help=f"crops cut from each target, sharing the episode's ê (default {d.crops_per_target})",
    )
    parser.add_argument(
        "--mouth-weight", type=float, help="extra L1 weight inside the lip square (default 0: off)"
    )
    parser.add_argument(
        "--lip-adversarial-weight",
        type=float,
        help="weight of -D_lip(x̂), the lip-square patch discriminator (default 0: no D_lip)",
    )
    parser.add_argument(
        "--lip-feature-matching-weight",
        type=float,
        help="weight of feature matching on D_lip's activations (default 0)",
    )
    parser.add_argument("--lr-lip-d", type=float, help=f"Adam lr of D_lip (default {d.lr_lip_d})")
    parser.add_argument(
        "--lip-d-steps", type=int, help=f"D_lip updates per E/G update (default {d.lip_d_steps})"
    )
    parser.add_argument("--ssim-weight", type=float, help="weight of 1 − SSIM of the target (default 0: off)")
    parser.add_argument(
        "--mouth-ssim-weight",
        type=float,
        help="weight of 1 − SSIM of the lip square at 64², evaluate's mouth SSIM (default 0: off)",
    )
    parser.add_argument(
        "--detail-weight",
        type=float,
        help="weight of the match of the local Laplacian energy, against blur (default 0: off)",
    )
    parser.add_argument(
        "--content-loss", choices=CONTENT_LOSS_CHOICES, help="vgg, pixel, or auto (VGG if its weights load)"
    )
    parser.add_argument(
        "--loss-weights", choices=("v2", "v1"), default="v2", help="arXiv v2 (default) or v1 loss weights"
    )


def _add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """Device, CPU threads and precision."""
    parser.add_argument(
        "--device", help="torch device (default: cuda if available; under torchrun: cuda:LOCAL_RANK)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's choice)")
    parser.add_argument(
        "--precision",
        choices=POLICIES,
        help="auto: bf16 autocast where it is measured faster (CUDA, CPUs with bf16 units), else fp32 "
        "(default: $TALKING_HEAD_PRECISION or auto)",
    )


def _configs(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig, LossConfig]:
    """Model, train and loss config from the options (on --resume: the run's, with the options given)."""
    if args.resume:
        model_config, base_train, loss_config = resume_configs(args.out)
        if args.preset and PRESETS[args.preset] != model_config:
            raise TalkingHeadError(
                f"{args.out} was trained with another preset; leave --preset out to resume"
            )
    else:
        if not args.preset:
            raise TalkingHeadError(
                "--preset is required for a new run (choose one of: " + ", ".join(sorted(PRESETS)) + ")"
            )
        model_config, base_train = PRESETS[args.preset], TrainConfig()
        loss_config = LossConfig.arxiv_v1() if args.loss_weights == "v1" else LossConfig()
    if args.content_loss:
        loss_config = dataclasses.replace(loss_config, content_loss=args.content_loss)
    weights = {
        name: getattr(args, name)
        for name in (
            "mouth_weight",
            "ssim_weight",
            "mouth_ssim_weight",
            "detail_weight",
            "lip_adversarial_weight",
            "lip_feature_matching_weight",
        )
        if getattr(args, name) is not None
    }
    try:
        loss_config = dataclasses.replace(loss_config, **weights)
    except ValueError as err:
        raise TalkingHeadError(str(err)) from err
    changes = {
        field: getattr(args, option)
        for option, field in _TRAIN_OPTIONS.items()
        if getattr(args, option) is not None
    }
    if args.no_flip:
        changes["flip"] = False
    try:
        return model_config, dataclasses.replace(base_train, **changes), loss_config
    except ValueError as err:
        raise TalkingHeadError(str(err)) from err


def run(args: argparse.Namespace) -> int:
    """Train; print where the run is."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model_config, train_config, loss_config = _configs(args)
    if args.init_from and args.resume:
        raise TalkingHeadError("--init-from starts a new run; leave it out with --resume")
    result = train(
        args.data,
        args.out,
        model_config,
        train_config,
        loss_config,
        resume=args.resume,
        val_dir=args.val_data,
        device=args.device,
        init_from=args.init_from,
        precision=args.precision,
    )
    if result.stats:
        print(
            f"step {result.step}: {result.stats.get('episodes_per_s', 0):.2f} episodes/s; run in {result.run_dir}"
        )
    return 0

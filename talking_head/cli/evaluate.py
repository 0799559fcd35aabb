"""``python -m talking_head evaluate``: the paper's self-/cross-reenactment protocol on a folder of clips."""

from __future__ import annotations

import argparse
import logging
from typing import Any

log = logging.getLogger(__name__)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers like 1,8; got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ``evaluate`` command."""
    from talking_head.nets.config import PRESETS

    parser.add_argument(
        "--videos", required=True, help="folder of <identity>/<clip>.mp4 (or id/video/clip.mp4) clips"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="weights folder or Hugging Face repo id")
    source.add_argument(
        "--random-weights",
        metavar="PRESET",
        choices=sorted(PRESETS),
        help="random weights of a preset: a floor for the numbers",
    )
    parser.add_argument("--revision", help="Hub revision of --weights")
    parser.add_argument(
        "--shots",
        type=_int_list,
        default=(1, 8),
        help="shot frames per person, comma-separated (default 1,8)",
    )
    parser.add_argument(
        "--steps",
        type=_int_list,
        default=(0, 40),
        help="fine-tuning steps, comma-separated; 0 = FF (default 0,40)",
    )
    parser.add_argument(
        "--holdout", type=int, default=32, help="hold-out frames per clip (default 32, as the paper)"
    )
    parser.add_argument("--max-clips", type=int, help="evaluate only the first N clips")
    parser.add_argument("--max-seconds", type=float, help="read at most this many seconds of each clip")
    parser.add_argument("--no-cross", action="store_true", help="skip cross-reenactment")
    parser.add_argument(
        "--cross-frames", type=int, default=16, help="driving frames per cross-reenactment pair (default 16)"
    )
    parser.add_argument("--no-copy", action="store_true", help="skip the copy-the-shot-frame baseline")
    parser.add_argument(
        "--no-warp", action="store_true", help="skip the warp-the-shots (no network) baseline"
    )
    parser.add_argument(
        "--landmarks", default="auto", choices=("auto", "fan", "dlib"), help="landmark detector"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for fine-tuning")
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="auto: bf16 where it is measured faster (CUDA, CPUs with bf16 units), else fp32 "
        "(default: $TALKING_HEAD_PRECISION or auto)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (on a busy shared CPU, 1 can be much faster)"
    )
    parser.add_argument(
        "--half",
        choices=("select", "report"),
        help="one fixed half of the clips (sorted: select = 1st, 3rd, ...; report = 2nd, 4th, ...): "
        "choose recipes on one, report on the other (default: all clips)",
    )
    parser.add_argument(
        "--closed-to-open",
        action="store_true",
        help="also score the hard case: the clip's most closed-mouth frame as the shot, its most open frames as targets",
    )
    parser.add_argument(
        "--only-closed-to-open", action="store_true", help="the closed-to-open part alone (no self/cross tables)"
    )
    parser.add_argument(
        "--out", required=True, help="REPORT.json; the Markdown table goes next to it as REPORT.md"
    )


def _load_model(args: argparse.Namespace) -> tuple[Any, str]:
    """The model to evaluate (on CUDA when present) and a label for the report."""
    import torch

    from talking_head.animation.pipeline import load_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.random_weights:
        from talking_head.nets.config import ModelConfig
        from talking_head.nets.model import TalkingHeadModel

        torch.manual_seed(args.seed)
        model = TalkingHeadModel(ModelConfig.preset(args.random_weights)).to(device)
        return model.eval().requires_grad_(False), f"random {args.random_weights} (seed {args.seed})"
    return load_model(args.weights, device=device, revision=args.revision), args.weights


def run(args: argparse.Namespace) -> int:
    """Evaluate, write REPORT.json + REPORT.md, print the table."""
    from talking_head.animation.person import model_device
    from talking_head.evaluation.evaluate import EvalConfig, evaluate
    from talking_head.evaluation.machine import machine_info
    from talking_head.evaluation.report import markdown_report, write_report
    from talking_head.nets.precision import resolve_precision

    config = EvalConfig(
        shots=args.shots,
        steps=args.steps,
        holdout=args.holdout,
        max_clips=args.max_clips,
        max_seconds=args.max_seconds,
        cross=not args.no_cross,
        cross_frames=args.cross_frames,
        baseline_copy=not args.no_copy,
        baseline_warp=not args.no_warp,
        landmarks_backend=args.landmarks,
        seed=args.seed,
        precision=args.precision,
        half=args.half,
        ordinary=not args.only_closed_to_open,
        closed_to_open=args.closed_to_open or args.only_closed_to_open,
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model, weights = _load_model(args)
    report = evaluate(model, args.videos, config, progress=lambda msg: log.info("%s", msg))
    report["weights"] = weights
    report["machine"] = machine_info()
    report["precision"] = resolve_precision(args.precision, model_device(model)).name
    json_path, md_path = write_report(report, args.out)
    print(markdown_report(report))
    print(f"wrote {json_path} and {md_path}")
    return 0

"""``python -m talking_head export RUN --out DIR``: a training run → a weights folder.

The folder holds the EMA weights of E and G, D's person-generic part, config.json and a model card.
"""

from __future__ import annotations

import argparse

from talking_head.training.hub import export_run, weights_files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` command's arguments to ``parser``."""
    parser.add_argument("run", metavar="RUN", help="run folder written by the train command (holds checkpoint.pt)")
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="weights folder to write (config.json, *.safetensors, README.md)",
    )
    parser.add_argument("--raw", action="store_true", help="export the raw E and G instead of their EMA")
    parser.add_argument("--fp16", action="store_true", help="store the weights as float16 (half the size)")


def run(args: argparse.Namespace) -> int:
    """Export and list what was written."""
    folder = export_run(args.run, args.out, use_ema=not args.raw, half=args.fp16)
    for name, size in weights_files(folder):
        print(f"{size / 1e6:10.2f} MB  {folder / name}")
    return 0

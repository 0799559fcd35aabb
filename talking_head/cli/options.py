"""Options several commands share, so that they read and say the same."""

from __future__ import annotations

import argparse
import os

# As the app's (talking_head.web.state.ENV_WEIGHTS); not imported from there, so that --help stays fast.
ENV_WEIGHTS = "TALKING_HEAD_WEIGHTS"


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """``--weights`` (default ``$TALKING_HEAD_WEIGHTS`` or ``./weights``) and ``--revision``."""
    parser.add_argument(
        "--weights",
        default=os.environ.get(ENV_WEIGHTS, "weights"),
        help=f"weights folder or Hugging Face repo id (default: ${ENV_WEIGHTS} or ./weights)",
    )
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of --weights")

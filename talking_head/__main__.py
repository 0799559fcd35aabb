"""Command-line entry point: ``python -m talking_head <command> ...``.

Each command lives in ``talking_head/cli/<command>.py`` with
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only
when their command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from typing import NoReturn

DESCRIPTION = "Few-shot neural talking heads: landmarks, data, training, animation, evaluation, benchmarks."
COMMANDS = {
    "landmarks": "Detect 68-point landmarks in a photo or a clip; write an overlay and tracks.",
    "prepare": "Prepare a folder of talking-face clips for meta-learning.",
    "train": "Meta-train the embedder, generator and discriminator.",
    "export": "Export a training run to a weights folder.",
    "export-onnx": "Export G to ONNX for ONNX Runtime rendering on a CPU.",
    "push": "Upload a weights folder to the Hugging Face Hub.",
    "animate": "Animate photos of a person with a driving clip or landmark track.",
    "edit": "Edit a portrait's expression by its landmarks (mouth, eyes, brows, head pose); write one still.",
    "evaluate": "Evaluate weights with the paper's self- and cross-reenactment protocol.",
    "bench": "Benchmark the networks, landmarks and the end-to-end pipeline.",
}


def _module(command: str) -> str:
    """The module of a command: ``export-onnx`` lives in ``talking_head/cli/export_onnx.py``."""
    return f"talking_head.cli.{command.replace('-', '_')}"


def _available_commands() -> dict[str, str]:
    found = {}
    for name, help_text in COMMANDS.items():
        if importlib.util.find_spec(_module(name)) is not None:
            found[name] = help_text
    return found


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit 2), like every other user error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def one_line(error: BaseException) -> str:
    """An error's message on one line (messages may be wrapped for the web page)."""
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print one line and return 2, never a traceback."""
    parser = _Parser(prog="python -m talking_head", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = _available_commands()
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if a in commands), None)
    for name, help_text in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(_module(name)).add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(_module(args.command))
    from talking_head.errors import TalkingHeadError

    try:
        return int(module.run(args) or 0)
    except TalkingHeadError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

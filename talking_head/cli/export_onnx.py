"""``python -m talking_head export-onnx WEIGHTS --out DIR``: G as an ONNX graph for CPU rendering.

Writes ``DIR/generator.onnx`` (G's rendering call, spectral norms folded in,
float32, dynamic batch; :mod:`talking_head.nets.onnx_export`), checks it
against PyTorch with ONNX Runtime when that is installed, and prints a line
for the model card. A graph in the weights folder itself is used by the app
and the CLI for exactly those weights (its fingerprint is checked); anywhere
else, rendering exports into the per-user cache on first use instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# ONNX Runtime's x̂ may differ from PyTorch's by float32 rounding; beyond this the graph is wrong.
MAX_DIFFERENCE = 1e-4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``export-onnx`` command's arguments to ``parser``."""
    parser.add_argument("weights", metavar="WEIGHTS", help="weights folder or Hugging Face repo id")
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder to write generator.onnx into (e.g. the weights folder)",
    )
    parser.add_argument("--revision", help="branch, tag or commit of a Hub repo")


def run(args: argparse.Namespace) -> int:
    """Export G, check it against PyTorch and print what was written."""
    from talking_head.animation.pipeline import load_model
    from talking_head.errors import TalkingHeadError
    from talking_head.nets.onnx_export import GRAPH_NAME, export_generator, generator_fingerprint, made_with
    from talking_head.nets.runtime import import_onnxruntime, max_difference

    model = load_model(args.weights, device="cpu", revision=args.revision)
    path = Path(args.out) / GRAPH_NAME
    start = time.perf_counter()
    try:
        export_generator(model.generator, path)
    except ImportError as error:
        raise TalkingHeadError(
            f"the ONNX export needs onnx and onnxscript ({error}): pip install onnx onnxscript"
        ) from error
    print(f"{path.stat().st_size / 1e6:10.2f} MB  {path}  ({time.perf_counter() - start:.1f} s)")
    print(f"made from G with fingerprint {generator_fingerprint(model.generator)[:16]}…")
    if import_onnxruntime() is None:
        print("onnxruntime is not installed: the graph was not checked (pip install onnxruntime)")
    else:
        difference = max_difference(model.generator, path)
        print(f"ONNX Runtime vs PyTorch fp32 on random inputs: max |Δx̂| = {difference:.2e}")
        if difference > MAX_DIFFERENCE:
            raise TalkingHeadError(
                f"the exported graph differs from PyTorch by {difference:.2e} (> {MAX_DIFFERENCE:g}); do not ship it"
            )
    print(
        f"model card: `{GRAPH_NAME}`: G for ONNX Runtime, made with `python -m talking_head export-onnx` ({made_with()})"
    )
    return 0

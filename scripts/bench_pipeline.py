"""Speed of the person pipeline: fine-tuning ms/step and rendering frames/s.

Random weights of each preset (``cpu`` always; ``paper`` too where CUDA is
present), a person embedded from T shots of the synthetic talking clip
(the example photo with small head motions), then:

- fine-tuning: ``finetune_person`` for warm-up + N steps; median ms/step;
- rendering: the warp and G in batches on a synthetic moving-landmark track;
  on a CPU PyTorch fp32, PyTorch bf16 and ONNX Runtime interleaved, median
  frames/s over rounds (:func:`talking_head.evaluation.bench_runtime.bench_runtimes`);
  on CUDA fp32 then bf16, median frames/s over batches.

Prints the machine first. Medians, not means: a shared machine has outliers.
A thin command line over :mod:`talking_head.evaluation.speed` (``bench_finetune``,
``bench_render``) and :mod:`talking_head.evaluation.bench_runtime`.

    python scripts/bench_pipeline.py --shots 1 8 --steps 10 --frames 64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talking_head.evaluation.bench_runtime import bench_runtimes
from talking_head.evaluation.machine import machine_info
from talking_head.evaluation.speed import bench_finetune, bench_render


def run_preset(preset: str, shots: list[int], steps: int, frames: int, batch: int) -> list[dict]:
    """Fine-tuning rows (one per shot count), then rendering rows (PyTorch fp32, bf16, ONNX Runtime)."""
    rows = []
    for count in shots:
        ft = bench_finetune(preset, steps, count)
        rows.append(
            {
                "preset": preset,
                "device": ft["device"],
                "what": "fine-tuning",
                "shots": ft["shots"],
                "ms_per_step": round(ft["ms_per_step"], 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows + (
        render_cuda(preset, frames, batch) if torch.cuda.is_available() else render_cpu(preset, frames, batch)
    )


def render_cpu(preset: str, frames: int, batch: int) -> list[dict]:
    """PyTorch fp32, PyTorch bf16 and ONNX Runtime side by side, interleaved."""
    rows = []
    for render in bench_runtimes(preset, batches=(batch,), rounds=max(3, frames // batch))["rows"]:
        frames_per_s = round(render["frames_per_s"], 2) if render["frames_per_s"] else None
        rows.append(
            {
                "preset": preset,
                "device": "cpu",
                "what": "rendering",
                "batch": batch,
                "variant": render["variant"],
            }
            | {"frames_per_s": frames_per_s, "note": render["note"]}
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def render_cuda(preset: str, frames: int, batch: int) -> list[dict]:
    """fp32, then bf16 autocast, on the GPU."""
    rows = []
    for precision in ("fp32", "bf16"):
        render = bench_render(preset, frames, batch, precision)
        rows.append(
            {
                "preset": preset,
                "device": render["device"],
                "what": "rendering",
                "batch": batch,
                "precision": precision,
                "frames_per_s": round(render["frames_per_s"], 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", help="presets to run (default: cpu, plus paper on CUDA)")
    parser.add_argument(
        "--shots", nargs="+", type=int, default=[1, 8], help="T values for fine-tuning (default 1 8)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed fine-tuning steps (default 10)")
    parser.add_argument("--frames", type=int, default=64, help="timed rendered frames (default 64)")
    parser.add_argument("--batch", type=int, default=8, help="rendering batch size (default 8)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = args.presets or (["cpu", "paper"] if torch.cuda.is_available() else ["cpu"])
    machine = machine_info()
    print(machine["summary"], flush=True)
    rows = [
        row
        for preset in presets
        for row in run_preset(preset, args.shots, args.steps, args.frames, args.batch)
    ]
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

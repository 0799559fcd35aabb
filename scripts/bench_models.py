"""Size and speed of the networks E, G (+P), D for each ModelConfig preset.

Prints the machine, parameter counts (E, G with P, P alone, D's conv part V
and its per-video W), MACs per frame of E and G, and ms/frame of E and G per
batch size (median over repeats) on CPU, plus CUDA bf16 where a GPU exists.
A thin command line over :mod:`talking_head.evaluation.bench` (``network_sizes``,
``bench_networks``).

    python scripts/bench_models.py --presets paper cpu --batch-sizes 1 8 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talking_head.evaluation.bench import format_sizes
from talking_head.evaluation.machine import machine_info
from talking_head.evaluation.speed import bench_networks, network_sizes
from talking_head.nets.config import PRESETS

NUM_VIDEOS_FOR_W = 1000  # W size shown for scale: one row per training video


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per measurement (median is printed)"
    )
    args = parser.parse_args()
    machine = machine_info()
    print(machine["summary"])
    for name in args.presets:
        print("\n== " + format_sizes(network_sizes(name, num_videos=NUM_VIDEOS_FOR_W)))
        for r in bench_networks(name, tuple(args.batch_sizes), args.repeats):
            ms_g = r["generator_ms_per_frame"]
            line = (
                f"{r['device']} {r['dtype']} batch {r['batch']:3d}: E {r['embedder_ms_per_frame']:8.1f} ms/frame | "
                f"G {ms_g:8.1f} ms/frame = {r['generator_frames_per_s']:6.1f} frames/s"
            )
            if "generator_cpu_ms_per_frame" in r:
                cpu_g = r["generator_cpu_ms_per_frame"]
                idle_ms = cpu_g / machine["torch_threads"]
                line += (
                    f" (CPU time {cpu_g:.1f} ms/frame -> idle-machine estimate {1000 / idle_ms:.1f} frames/s)"
                )
            print(line)


if __name__ == "__main__":
    main()

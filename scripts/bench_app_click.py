"""Click to video in the app: ``app.animate`` (the page's ``/animate`` handler) end to end.

The shipped weights (``weights/``, or ``--weights``), the astronaut photo and a
5 s example motion, with the page's own defaults for everything else: the
whole path a click takes (input checks, the photo's landmarks, embedding,
fine-tuning, warping, G, encoding the result and the overlay). The first call
also loads the weights and the landmark detector (a cold start, reported
apart); then ``--repeats`` clicks per step count, medians. Prints the machine.

    python scripts/bench_app_click.py --steps 0 20 --repeats 3 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

# Run from a checkout without installing the package.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import app
from talking_head.evaluation.machine import machine_info
from talking_head.media.video import probe_video

PHOTO = ROOT / "examples" / "astronaut.png"
MOTION = ROOT / "examples" / "motions" / "calm-talking.npz"


def click(steps: int, seconds: float) -> tuple[float, int]:
    """One click: (seconds from click to both videos written, frames in the result)."""
    start = time.perf_counter()
    video, _overlay, _status = app.animate([str(PHOTO)], None, str(MOTION), steps=steps, max_seconds=seconds)
    return time.perf_counter() - start, probe_video(video).num_frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 20], help="fine-tuning steps to time")
    parser.add_argument("--repeats", type=int, default=3, help="clicks per step count (median)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of the motion to render")
    parser.add_argument("--weights", help="weights folder or Hub repo id (default: the app's own choice)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.weights:
        os.environ["TALKING_HEAD_WEIGHTS"] = args.weights
    machine = machine_info()
    print(machine["summary"], flush=True)
    cold, frames = click(args.steps[0], args.seconds)
    print(
        f"cold start (loads weights and detector) + {args.steps[0]} steps: {cold:.1f} s, {frames} frames",
        flush=True,
    )
    rows = []
    for steps in args.steps:
        times = [click(steps, args.seconds)[0] for _ in range(args.repeats)]
        row = {"steps": steps, "frames": frames, "median_s": statistics.median(times), "runs_s": times}
        rows.append(row)
        print(
            f"{steps:3d} steps: median {row['median_s']:.1f} s over {len(times)} clicks "
            f"({', '.join(f'{t:.1f}' for t in times)}), {frames} frames",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "cold_s": cold, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Click to video in the app: ``app.animate`` (the page's ``/animate`` handler) end to end.

The shipped weights (``weights/``, or ``--weights``), the astronaut photo and a
5 s example motion, with the page's own defaults for everything else: the
whole path a click takes (input checks, the photo's landmarks, embedding,
fine-tuning, warping, G, encoding the result and the overlay). Starting the
app (weights, landmark detector, the rendering runtime's warm-up: the ONNX
graph, ``auto``'s measurement) is timed apart, then the first click, then
``--repeats`` clicks per step count and setting, medians.

``--settings`` compares rendering set-ups back to back in one process: each
is ``RUNTIME:PRECISION`` (the values of ``TALKING_HEAD_RUNTIME`` and
``TALKING_HEAD_PRECISION``, e.g. ``torch:fp32`` ``auto:auto``), and the
clicks alternate between them round by round, so a shared machine's load
falls on all alike. ``--profile`` adds the seconds spent per stage (summed
over the clicks of a setting; the rendering thread's stages overlap the
caller's, so they add up to more than the wall time). Prints the machine.

    python scripts/bench_app_click.py --steps 0 40 --repeats 3 --settings torch:fp32 auto:auto --profile
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run from a checkout without installing the package.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import app
from talking_head.animation import compositing, rendering
from talking_head.evaluation.machine import machine_info
from talking_head.media.video import probe_video
from talking_head.media.video_writer import VideoWriter
from talking_head.nets.runtime import Runtime
from talking_head.web import job

PHOTO = ROOT / "examples" / "astronaut.png"
MOTION = ROOT / "examples" / "motions" / "calm-talking.npz"

STAGE_SECONDS: collections.Counter[str] = collections.Counter()  # stage → seconds, while profiling


def _timed(stage: str, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            STAGE_SECONDS[stage] += time.perf_counter() - start

    return wrapped


# (module, function name, stage): what a click calls, wrapped by --profile where the module has it.
PROFILED = (
    (job, "prepare_job", "input checks + driving landmarks"),
    (job, "embed_person", "photo landmarks + embedding"),
    (job, "finetune_person", "fine-tuning"),
    (rendering, "warp_shots", "warp"),
    (rendering, "landmark_images", "landmark images"),
    (job, "paste_back", "paste-back"),
    (compositing.NativeCompositor, "fields", "compositing: the photo's field"),
    (compositing.NativeCompositor, "__call__", "compositing: the whole photo"),
    (job, "overlay_panels", "overlay panels"),
    (job, "mark_synthetic", "synthetic mark"),
    (VideoWriter, "write", "encoding (frames to ffmpeg)"),
    (VideoWriter, "close", "encoding (flush, audio)"),
)


def install_profile() -> None:
    """Time each stage of a click by wrapping the functions the job and the renderer call (this process only)."""
    for owner, name, stage in PROFILED:
        if hasattr(owner, name):
            setattr(owner, name, _timed(stage, getattr(owner, name)))
    renderer = Runtime.renderer

    def timed_renderer(self: Runtime, generator: Any, precision: Any) -> Callable:
        return _timed(f"G ({self.describe(precision)})", renderer(self, generator, precision))

    Runtime.renderer = timed_renderer


def use_setting(setting: str) -> None:
    runtime, _, precision = setting.partition(":")
    os.environ["TALKING_HEAD_RUNTIME"] = runtime
    os.environ["TALKING_HEAD_PRECISION"] = precision or "auto"


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (the ffmpeg encoders)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def click(steps: int, seconds: float) -> tuple[float, int, float]:
    """One click: (seconds from click to both videos written, frames in the result, CPU seconds it used).

    On a shared machine the CPU seconds say what the click costs whatever the
    load: on an idle machine with C cores its wall time lies between CPU / C and CPU.
    """
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    video, _overlay, _status = app.animate([str(PHOTO)], None, str(MOTION), steps=steps, max_seconds=seconds)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    return wall, probe_video(video).num_frames, cpu


def _print_profile(profile: dict[str, float], clicks: int) -> None:
    for stage, total in sorted(profile.items(), key=lambda kv: -kv[1]):
        print(f"      {stage:<34} {total / clicks:6.2f} s a click", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 40], help="fine-tuning steps to time")
    parser.add_argument("--repeats", type=int, default=3, help="clicks per step count and setting (median)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of the motion to render")
    parser.add_argument("--weights", help="weights folder or Hub repo id (default: the app's own choice)")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=[],
        metavar="RUNTIME:PRECISION",
        help="rendering set-ups compared back to back, e.g. torch:fp32 auto:auto (default: the environment's)",
    )
    parser.add_argument("--profile", action="store_true", help="also print the seconds per stage")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.weights:
        os.environ["TALKING_HEAD_WEIGHTS"] = args.weights
    settings = args.settings or [
        f"{os.environ.get('TALKING_HEAD_RUNTIME', 'auto')}:{os.environ.get('TALKING_HEAD_PRECISION', 'auto')}"
    ]
    if args.profile:
        install_profile()
    machine = machine_info()
    print(machine["summary"], flush=True)
    use_setting(settings[0])
    start = time.perf_counter()
    app.load_state()  # what the app does at start: weights, detector, the runtime's warm-up
    started = time.perf_counter() - start
    print(
        f"app start ({settings[0]}: weights, landmark detector, rendering warm-up): {started:.1f} s",
        flush=True,
    )
    model = app.load_state().weights.require()
    for setting in settings[1:]:  # the other set-ups' warm-up (a graph, auto's measurement), not in a click
        use_setting(setting)
        rendering.warm_up_rendering(model)
    use_setting(settings[0])
    first, frames, _ = click(args.steps[0], args.seconds)
    print(f"first click ({settings[0]}, {args.steps[0]} steps): {first:.1f} s, {frames} frames", flush=True)
    rows = []
    for steps in args.steps:
        times: dict[str, list[float]] = {s: [] for s in settings}
        cpu: dict[str, list[float]] = {s: [] for s in settings}
        profiles: dict[str, collections.Counter[str]] = {s: collections.Counter() for s in settings}
        for _ in range(args.repeats):
            for setting in settings:  # interleaved: one click of each setting per round
                use_setting(setting)
                STAGE_SECONDS.clear()
                wall, _, cpu_s = click(steps, args.seconds)
                times[setting].append(wall)
                cpu[setting].append(cpu_s)
                profiles[setting].update(STAGE_SECONDS)
        for setting in settings:
            runs = times[setting]
            row = {"steps": steps, "setting": setting, "frames": frames, "median_s": statistics.median(runs)}
            row |= {"runs_s": runs, "cpu_s": cpu[setting], "median_cpu_s": statistics.median(cpu[setting])}
            row |= {"profile_s": {k: v / len(runs) for k, v in profiles[setting].items()}}
            rows.append(row)
            print(
                f"{steps:3d} steps, {setting:<11}: median {row['median_s']:.1f} s over {len(runs)} clicks "
                f"({', '.join(f'{t:.1f}' for t in runs)}), {frames} frames; "
                f"CPU {row['median_cpu_s']:.1f} s a click (process + ffmpeg)",
                flush=True,
            )
            if args.profile:
                _print_profile(profiles[setting], len(runs))
        if len(settings) > 1:
            base = statistics.median(times[settings[0]])
            for setting in settings[1:]:
                print(
                    f"    {setting} vs {settings[0]}: {base / statistics.median(times[setting]):.2f}x faster"
                )
    if args.json:
        summary = {"machine": machine, "start_s": started, "first_click_s": first, "rows": rows}
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rendering side by side: PyTorch fp32, PyTorch bf16 and ONNX Runtime, at batch 1 and 8 (issue 24).

One person (the example photo), one moving-landmark track, and for each
variant the rendering path a click takes (the warp, then G on that runtime and
precision, uint8 frames out; :func:`talking_head.animation.rendering.rendered_batches`
in the caller's thread). The variants run interleaved, a batch each per round,
so a shared machine's load falls on all of them alike; medians of the rounds
after one warm-up round, wall time and the process's CPU time (all its
threads: what a frame costs whatever the load). ONNX Runtime renders G in float32; where it is not
installed or its export fails, its row says why.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from talking_head.evaluation.machine import machine_info
from talking_head.evaluation.synthetic import moving_track, synthetic_talking_frames

# (label, runtime, precision) of the compared variants.
VARIANTS = (
    ("PyTorch fp32", "torch", "fp32"),
    ("PyTorch bf16", "torch", "bf16"),
    ("ONNX Runtime fp32", "onnx", "fp32"),
)


def _model(preset: str, weights: str | None):
    import torch

    from talking_head.animation.pipeline import load_model
    from talking_head.nets.config import ModelConfig
    from talking_head.nets.model import TalkingHeadModel

    if weights:
        return load_model(weights, device="cpu")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TalkingHeadModel(ModelConfig.preset(preset)).eval().requires_grad_(False)


def _variants(model: Any) -> list[dict[str, Any]]:
    """Each variant with its resolved precision and runtime (ONNX: found, exported or why not)."""
    from talking_head.animation.rendering import rendering_setup

    rows = []
    for label, runtime, precision in VARIANTS:
        resolved_precision, resolved_runtime = rendering_setup(model, precision, runtime)
        rows.append(
            {
                "label": label,
                "runtime": resolved_runtime,
                "precision": resolved_precision,
                "ran": resolved_runtime.name == runtime,  # False: ONNX Runtime fell back to PyTorch
                "reason": resolved_runtime.reason,
            }
        )
    return rows


def bench_runtimes(
    preset: str = "cpu", weights: str | None = None, batches: tuple[int, ...] = (1, 8), rounds: int = 5
) -> dict[str, Any]:
    """ms/frame and frames/s of each variant and batch size: medians of ``rounds`` interleaved rounds (CPU)."""
    import torch

    from talking_head.animation.person import embed_person
    from talking_head.animation.rendering import rendered_batches

    model = _model(preset, weights)
    person = embed_person(model, list(synthetic_talking_frames(1, 512)))
    track = moving_track(person.source_landmarks, max(batches))
    variants = _variants(model)
    running = [v for v in variants if v["ran"]]
    times: dict[tuple[str, int], list[float]] = {(v["label"], b): [] for v in running for b in batches}
    cpu_times: dict[tuple[str, int], list[float]] = {key: [] for key in times}
    for round_ in range(rounds + 1):
        for batch in batches:
            for variant in running:
                start, cpu_start = time.perf_counter(), time.process_time()
                for _ in rendered_batches(
                    model, person, track[:batch], batch, variant["precision"], variant["runtime"], ahead=0
                ):
                    pass
                if round_:  # round 0 warms up every variant (sessions, bf16 copies, kernels)
                    times[(variant["label"], batch)].append(time.perf_counter() - start)
                    cpu_times[(variant["label"], batch)].append(time.process_time() - cpu_start)
    rows = []
    for variant in variants:
        for batch in batches:
            seconds, cpu = times.get((variant["label"], batch)), cpu_times.get((variant["label"], batch))
            ms = 1000 * statistics.median(seconds) / batch if seconds else None
            rows.append(
                {
                    "variant": variant["label"],
                    "batch": batch,
                    "ms_per_frame": ms,
                    "frames_per_s": 1000 / ms if ms else None,
                    # all threads of the process: what a frame costs whatever the machine's load
                    "cpu_ms_per_frame": 1000 * statistics.median(cpu) / batch if cpu else None,
                    "note": "" if variant["ran"] else variant["reason"],
                }
            )
    return {
        "preset": preset,
        "weights": weights or f"random {preset} weights",
        "image_size": model.config.image_size,
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "onnxruntime": _onnxruntime_version(),
        "rows": rows,
    }


def _onnxruntime_version() -> str | None:
    from talking_head.nets.runtime import import_onnxruntime

    ort = import_onnxruntime()
    return ort.__version__ if ort is not None else None


def format_runtimes(result: dict[str, Any], machine: dict[str, Any] | None = None) -> list[str]:
    """The side-by-side table of :func:`bench_runtimes`, with the CPU and the speed-up over PyTorch fp32."""
    if "rows" not in result:
        return [f"rendering runtimes: {result}"]
    machine = machine or machine_info()
    size = result["image_size"]
    lines = [
        (
            f"rendering: warp + G, {size}x{size}, {result['weights']}, {result['threads']} threads, "
            f"medians of {result['rounds']} interleaved rounds; onnxruntime {result['onnxruntime'] or 'not installed'}"
        ),
        f"  CPU {machine['cpu']} ({machine.get('cpu_family_model') or 'unknown family'}), load {machine['load_average_1m']}",
        f"  {'':<20}{'batch':>6}{'ms/frame':>10}{'frames/s':>10}{'vs fp32':>9}{'CPU ms/frame':>14}",
    ]
    base = {r["batch"]: r["ms_per_frame"] for r in result["rows"] if r["variant"] == "PyTorch fp32"}
    for row in result["rows"]:
        if row["ms_per_frame"] is None:
            lines.append(f"  {row['variant']:<20}{row['batch']:>6}  not run: {row['note']}")
            continue
        ratio = base.get(row["batch"])
        speedup = f"{ratio / row['ms_per_frame']:.2f}x" if ratio else ""
        lines.append(
            f"  {row['variant']:<20}{row['batch']:>6}{row['ms_per_frame']:>10.1f}{row['frames_per_s']:>10.1f}"
            f"{speedup:>9}{row['cpu_ms_per_frame']:>14.1f}"
        )
    return lines

"""Benchmarks: networks, fine-tuning, landmarks and the end-to-end pipeline.

Every number is a median over repeated runs after a warm-up run, measured on
the machine described by :func:`machine_info` (printed with the results):

- E and G milliseconds per frame, per preset and batch size (CPU float32;
  CUDA bfloat16 autocast when a GPU is present);
- fine-tuning milliseconds per step (one D' and one G' update, all shots);
- landmark frames per second on a synthetic 512×512 talking clip, full
  detection vs tracking with the previous box as a hint;
- the warp alone (``warp.warp_shots``, no network): CPU ms/frame at batch 8,
  256², one shot (:func:`bench_warp`);
- end-to-end seconds of ``python -m talking_head animate`` for a synthetic
  clip (10 s by default) with 0 and 40 fine-tuning steps, and the peak RSS of
  that process (its own ``VmHWM``; ffmpeg's processes not counted);
- fp32 and bf16 side by side (:func:`bench_precision`, DESIGN §8): G rendering
  frames/s at batch 8, training episodes/s and fine-tuning ms/step of one
  preset, with the CPU's bf16 flags, the conv micro-benchmark ``auto`` uses
  and what ``auto`` chose;
- rendering (warp + G) in PyTorch fp32, PyTorch bf16 and ONNX Runtime side
  by side at batch 1 and 8, interleaved (:mod:`talking_head.evaluation.bench_runtime`);
- the whole photo at 1024 against the 256² path per frame, interleaved, per
  face size, with the memory the stream holds (:mod:`talking_head.evaluation.bench_native`).

The results are a JSON-ready dict (:func:`run_benchmarks`) and a plain-text
table (:func:`format_table`), which also lists parameter counts and MACs per
frame (:func:`network_sizes`). ``scripts/bench_models.py`` and
``scripts/bench_pipeline.py`` are thin command lines over these functions
(the latter adds rendering frames/s, :func:`bench_render`).

The single measurements live in :mod:`talking_head.evaluation.speed`, the
machine description and timing helpers in :mod:`talking_head.evaluation.machine`,
the synthetic inputs in :mod:`talking_head.evaluation.synthetic`; this module
runs them together and formats the tables.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from talking_head.evaluation.bench_native import bench_native, format_native
from talking_head.evaluation.bench_runtime import bench_runtimes, format_runtimes
from talking_head.evaluation.machine import machine_info, peak_rss_mib, run_python_module
from talking_head.evaluation.speed import (
    bench_finetune,
    bench_landmarks,
    bench_networks,
    bench_render,
    bench_train,
    bench_warp,
    network_sizes,
)
from talking_head.evaluation.synthetic import (
    synthetic_talking_frames,
    write_synthetic_clip,
    write_synthetic_dataset,
)


@dataclass(frozen=True)
class BenchConfig:
    """What to measure; written into the results."""

    presets: tuple[str, ...] = ("cpu", "paper")  # network presets for E/G timings
    batch_sizes: tuple[int, ...] = (1, 8)  # batch sizes for E/G timings
    cpu_batch1_presets: tuple[str, ...] = ("paper",)  # presets timed at batch 1 only on CPU (seconds per frame)
    repeats: int = 3  # timed runs per measurement (the median is reported)
    finetune_preset: str = "cpu"  # preset for fine-tuning ms/step and the end-to-end runs
    finetune_steps: int = 5  # timed fine-tuning steps (after one warm-up step)
    shots: int = 1  # shots used for fine-tuning
    landmark_frames: int = 60  # frames of the synthetic clip for landmark frames/s
    clip_seconds: float = 10.0  # length of the synthetic driving clip for end-to-end runs
    clip_fps: float = 25.0  # its frame rate
    clip_size: int = 512  # its frame side in pixels
    end_to_end_steps: tuple[int, ...] = (0, 40)  # fine-tuning steps of the end-to-end runs
    weights: str | None = None  # weights for the end-to-end runs (None: random weights of finetune_preset)
    landmarks_backend: str = "auto"  # landmark detector to time
    precision: str = "auto"  # precision of the fine-tuning and end-to-end runs (auto, bf16, fp32)
    runtime: str | None = None  # the end-to-end runs' renderer (auto, onnx, torch; None: the environment's)
    compare_precisions: tuple[str, ...] = ("fp32", "bf16")  # precisions timed side by side (empty: skip)
    precision_preset: str = "cpu"  # preset of the side-by-side timings
    precision_render_frames: int = 16  # timed rendering frames per precision (after one warm-up batch)
    precision_batch: int = 8  # rendering batch size of the side-by-side timings
    precision_train_steps: int = 3  # timed training steps per precision (after one warm-up step)
    precision_train_batch: int = 2  # episodes per training step
    precision_train_k_shots: int = 2  # K of the training episodes
    runtime_batches: tuple[int, ...] = (1, 8)  # batch sizes of the runtime side-by-side (empty: skip it)
    runtime_rounds: int = 5  # interleaved timed rounds of the runtime side-by-side (after a warm-up round)
    only_runtimes: bool = False  # run the runtime side-by-side alone
    native_faces: tuple[int, ...] = (256, 384, 512)  # face sizes (px) of the native-output timings (empty: skip)
    native_photos: tuple[str, ...] = ()  # photos timed there as well, at their own size up to 1024
    native_frames: int = 32  # frames of each native-output timing
    native_rounds: int = 5  # interleaved timed rounds of those (after a warm-up round)
    only_native: bool = False  # run the native-output timings alone

    @classmethod
    def quick(cls) -> BenchConfig:
        """A seconds-long run on the tiny preset (for tests and smoke checks)."""
        return cls(
            presets=("tiny",),
            batch_sizes=(1, 2),
            repeats=1,
            finetune_preset="tiny",
            finetune_steps=1,
            landmark_frames=4,
            clip_seconds=0.4,
            clip_fps=10.0,
            clip_size=384,
            end_to_end_steps=(0, 1),
            precision_preset="tiny",
            precision_render_frames=2,
            precision_batch=2,
            precision_train_steps=1,
            runtime_batches=(1, 2),
            runtime_rounds=1,
            native_faces=(256,),
            native_frames=8,
            native_rounds=1,
        )


def bench_precision(config: BenchConfig, workdir: Path) -> dict[str, Any]:
    """Rendering frames/s, training episodes/s and fine-tuning ms/step per precision, and what ``auto`` picks.

    Also the conv micro-benchmark ``auto`` bases its choice on (run here even
    where ``auto`` skips it for lack of bf16 flags).
    """
    import torch

    from talking_head.nets.config import ModelConfig
    from talking_head.nets.precision import cpu_bf16_choice, measure_cpu_bf16_speedup, resolve_precision

    device = "cuda" if torch.cuda.is_available() else "cpu"
    auto = resolve_precision("auto", device)
    preset = config.precision_preset
    data = write_synthetic_dataset(
        workdir / "data",
        ModelConfig.preset(preset).image_size,
        num_videos=2,
        num_frames=config.precision_train_k_shots + 2,
        landmarks_backend=config.landmarks_backend,
    )
    rows = []
    for name in config.compare_precisions:
        render = bench_render(preset, config.precision_render_frames, config.precision_batch, name)
        training = bench_train(
            preset,
            config.precision_train_steps,
            config.precision_train_batch,
            config.precision_train_k_shots,
            data,
            workdir / f"run_{name}",
            name,
        )
        finetune = bench_finetune(preset, config.finetune_steps, config.shots, name)
        rows.append(
            {
                "precision": name,
                "render_frames_per_s": render["frames_per_s"],
                "train_episodes_per_s": training["episodes_per_s"],
                "finetune_ms_per_step": finetune["ms_per_step"],
                "render_cpu_ms_per_frame": render["cpu_ms_per_frame"],
                "finetune_cpu_ms_per_step": finetune["cpu_ms_per_step"],
                "content_loss": training["content_loss"],
            }
        )
    return {
        "preset": preset,
        "device": device,
        "batch": config.precision_batch,
        "train_batch": config.precision_train_batch,
        "train_k_shots": config.precision_train_k_shots,
        "threads": torch.get_num_threads(),
        "auto": auto.name,
        "auto_reason": auto.reason if device == "cuda" else cpu_bf16_choice()[1],
        "conv_bf16_speedup": measure_cpu_bf16_speedup() if device == "cpu" else None,
        "rows": rows,
    }


def _random_weights(preset: str, folder: Path) -> Path:
    import torch

    from talking_head.nets.config import ModelConfig
    from talking_head.nets.model import TalkingHeadModel

    torch.manual_seed(0)
    TalkingHeadModel(ModelConfig.preset(preset)).save_pretrained(folder)
    return folder


def _export_once(weights: str, config: BenchConfig) -> None:
    """The ONNX graph of these weights into the cache before the timed runs, which would export it on first use."""
    import torch

    from talking_head.animation.pipeline import load_model
    from talking_head.nets.precision import resolve_precision
    from talking_head.nets.runtime import resolve_runtime, runtime_from_env

    policy = config.runtime or runtime_from_env()
    if policy != "torch" and not torch.cuda.is_available():
        resolve_runtime(
            policy, load_model(weights, "cpu").generator, resolve_precision(config.precision, "cpu")
        )


def bench_end_to_end(config: BenchConfig, workdir: Path) -> list[dict[str, Any]]:
    """``python -m talking_head animate`` on a synthetic clip, once per step count."""
    import torch

    clip = write_synthetic_clip(
        workdir / "driving.mp4", config.clip_seconds, config.clip_fps, config.clip_size
    )
    photo = workdir / "photo.png"
    from PIL import Image

    Image.fromarray(next(synthetic_talking_frames(1, config.clip_size, seed=1))).save(photo)
    weights = config.weights or str(_random_weights(config.finetune_preset, workdir / "weights"))
    _export_once(weights, config)
    rows = []
    for steps in config.end_to_end_steps:
        out = workdir / f"out_{steps}.mp4"
        args = [
            "animate",
            "--photos",
            str(photo),
            "--driving",
            str(clip),
            "--steps",
            str(steps),
            "--out",
            str(out),
            "--weights",
            weights,
            "--landmarks",
            config.landmarks_backend,
        ]
        args += ["--precision", config.precision]
        # The child uses as many torch threads as this process (set with --threads).
        env = os.environ | {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
        if config.runtime is not None:
            env["TALKING_HEAD_RUNTIME"] = config.runtime
        result = run_python_module("talking_head", args, env=env)
        if result["exit_code"] == 0:
            result.pop("output_tail")
        rows.append(
            {"clip_seconds": config.clip_seconds, "fps": config.clip_fps, "steps": steps, "weights": weights}
            | result
        )
    return rows


def _timed(results: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    """Store ``fn()`` under ``key``; a failing part is recorded, not fatal (the rest still runs)."""
    start = time.perf_counter()
    try:
        results[key] = fn()
    except Exception as err:  # noqa: BLE001 - a benchmark part may fail; report it and go on
        results[key] = {"error": f"{type(err).__name__}: {err}"}
    results["seconds"][key] = time.perf_counter() - start


def run_benchmarks(
    config: BenchConfig = BenchConfig(), progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """All benchmarks; a JSON-ready dict with the machine, the config and every table."""
    say = progress or (lambda _msg: None)
    results: dict[str, Any] = {"machine": machine_info(), "config": asdict(config), "seconds": {}}
    say(results["machine"]["summary"])
    started = time.perf_counter()
    if config.only_runtimes or config.only_native:
        if config.only_runtimes:
            _bench_runtimes(config, results, say)
        if config.only_native:
            _bench_native(config, results, say)
        results["seconds"]["total"] = time.perf_counter() - started
        results["peak_rss_mib"] = peak_rss_mib()
        return results
    say("network sizes ...")
    _timed(results, "sizes", lambda: [network_sizes(p) for p in config.presets])
    say("networks ...")
    _timed(
        results,
        "networks",
        lambda: [
            row
            for p in config.presets
            for row in bench_networks(p, config.batch_sizes, config.repeats, p in config.cpu_batch1_presets)
        ],
    )
    say("fine-tuning ...")
    _timed(
        results,
        "finetune",
        lambda: bench_finetune(config.finetune_preset, config.finetune_steps, config.shots, config.precision),
    )
    say("landmarks ...")
    _timed(
        results,
        "landmarks",
        lambda: bench_landmarks(config.landmark_frames, config.clip_size, config.landmarks_backend),
    )
    say("warp ...")
    _timed(results, "warp", lambda: bench_warp(repeats=10 * config.repeats))
    say("end to end ...")
    with tempfile.TemporaryDirectory(prefix="talking_head_bench_") as tmp:
        _timed(results, "end_to_end", lambda: bench_end_to_end(config, Path(tmp)))
    if config.compare_precisions:
        say(f"precision ({', '.join(config.compare_precisions)}) ...")
        with tempfile.TemporaryDirectory(prefix="talking_head_bench_") as tmp:
            _timed(results, "precision", lambda: bench_precision(config, Path(tmp)))
    _bench_runtimes(config, results, say)
    _bench_native(config, results, say)
    results["seconds"]["total"] = time.perf_counter() - started
    results["peak_rss_mib"] = peak_rss_mib()
    return results


def _bench_native(config: BenchConfig, results: dict[str, Any], say: Callable[[str], None]) -> None:
    if not (config.native_faces or config.native_photos):
        return
    say("native output vs the 256² path ...")
    _timed(
        results,
        "native",
        lambda: bench_native(
            config.weights, config.native_faces, config.native_photos, config.native_frames,
            config.native_rounds, config.precision, config.runtime, config.precision_preset,
        ),
    )


def _bench_runtimes(config: BenchConfig, results: dict[str, Any], say: Callable[[str], None]) -> None:
    if not config.runtime_batches:
        return
    say(f"rendering runtimes (batch {', '.join(map(str, config.runtime_batches))}) ...")
    _timed(
        results,
        "runtimes",
        lambda: bench_runtimes(
            config.precision_preset, config.weights, config.runtime_batches, config.runtime_rounds
        ),
    )


def _f(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def format_sizes(sizes: dict[str, Any]) -> str:
    """Two lines of :func:`network_sizes`: parameter counts, then MACs per frame."""
    m = 1e6
    return (
        f"{sizes['preset']} ({sizes['image_size']}x{sizes['image_size']}, N={sizes['embedding_dim']}): "
        f"params E {sizes['embedder_params'] / m:.2f}M | G {sizes['generator_params'] / m:.2f}M "
        f"(P {sizes['projection_params'] / m:.2f}M, {sizes['adain_params']} AdaIN params) | "
        f"D conv part V {sizes['discriminator_v_params'] / m:.2f}M + W {sizes['num_videos']}x"
        f"{sizes['embedding_dim']} {sizes['discriminator_w_params'] / m:.2f}M\n"
        f"  MACs/frame E {sizes['embedder_macs_per_frame'] / 1e9:.2f} G | "
        f"G {sizes['generator_macs_per_frame'] / 1e9:.2f} G"
    )


def format_warp(warp: dict[str, Any]) -> str:
    """One line of :func:`bench_warp`."""
    size = warp["image_size"]
    return (
        f"warp alone ({warp['shots']} shot, {size}x{size}, batch {warp['batch']}, {warp['device']}, "
        f"{warp['threads']} threads): {_f(warp['ms_per_frame'], 2)} ms/frame "
        f"(process CPU {_f(warp['cpu_ms_per_frame'], 2)} ms/frame; "
        f"target <= {_f(warp['target_ms_per_frame'])})"
    )


def format_precision(prec: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    """The fp32 / bf16 side-by-side table of :func:`bench_precision` (medians), with the CPU and ``auto``'s choice."""
    if "rows" not in prec:
        return [f"precision: {prec}"]
    flags = ", ".join(machine.get("cpu_bf16_flags") or []) or "none"
    lines = [
        (
            f"precision ({prec['preset']} preset, {prec['device']}, {prec['threads']} threads; "
            f"CPU {machine['cpu']} {machine.get('cpu_family_model') or ''}, bf16 flags: {flags})"
        ),
        f"  auto -> {prec['auto']}: {prec['auto_reason']}",
    ]
    if prec.get("conv_bf16_speedup") is not None:
        lines.append(
            f"  conv micro-benchmark (auto's test): bf16 {_f(prec['conv_bf16_speedup'], 2)}x fp32 speed"
        )
    rows = {r["precision"]: r for r in prec["rows"]}
    names = list(rows)
    header = f"  {'':<34}" + "".join(f"{n:>10}" for n in names)
    if {"fp32", "bf16"} <= set(names):
        header += "  bf16 speed-up"
    lines.append(header)
    measures = [
        (f"render frames/s (batch {prec['batch']})", "render_frames_per_s", False),
        (
            f"train episodes/s (batch {prec['train_batch']}, K {prec['train_k_shots']})",
            "train_episodes_per_s",
            False,
        ),
        ("fine-tuning ms/step", "finetune_ms_per_step", True),
        ("render CPU ms/frame (process time)", "render_cpu_ms_per_frame", True),
        ("fine-tuning CPU ms/step", "finetune_cpu_ms_per_step", True),
    ]
    for label, key, lower_is_better in measures:
        line = f"  {label:<34}" + "".join(f"{_f(rows[n][key], 2):>10}" for n in names)
        if {"fp32", "bf16"} <= set(names):
            fp32, bf16 = rows["fp32"][key], rows["bf16"][key]
            line += f"  {_f(fp32 / bf16 if lower_is_better else bf16 / fp32, 2):>12}x"
        lines.append(line)
    lines.append(f"  content loss of the training runs: {rows[names[0]]['content_loss']}")
    return lines


def format_table(results: dict[str, Any]) -> str:
    """Plain-text tables of :func:`run_benchmarks`' results."""
    lines = [f"machine: {results['machine']['summary']}", ""]
    if "runtimes" in results:
        lines += [*format_runtimes(results["runtimes"], results["machine"]), ""]
    if "native" in results:
        lines += [*format_native(results["native"], results["machine"]), ""]
    if "networks" not in results:  # the runtime side-by-side alone
        lines.append(
            f"bench process peak RSS: {_f(results['peak_rss_mib'], 0)} MiB; total {_f(results['seconds']['total'])} s"
        )
        return "\n".join(lines) + "\n"
    sizes = results.get("sizes")
    if isinstance(sizes, list):
        lines += [format_sizes(r) for r in sizes] + [""]
    elif sizes is not None:
        lines += [f"sizes: {sizes}", ""]
    networks = results.get("networks")
    if isinstance(networks, list):
        lines += ["preset  device dtype     batch  E ms/frame  G ms/frame  G frames/s"]
        for r in networks:
            lines.append(
                f"{r['preset']:<7} {r['device']:<6} {r['dtype']:<9} {r['batch']:>5}  {_f(r['embedder_ms_per_frame']):>10}"
                f"  {_f(r['generator_ms_per_frame']):>10}  {_f(r['generator_frames_per_s'], 2):>10}"
            )
    else:
        lines.append(f"networks: {networks}")
    ft = results.get("finetune", {})
    if "ms_per_step" in ft:
        lines += [
            "",
            (
                f"fine-tuning ({ft['preset']}, {ft['device']}, {ft['precision']}, {ft['shots']} shot(s)): "
                f"{_f(ft['ms_per_step'])} ms/step"
            ),
        ]
    else:
        lines += ["", f"fine-tuning: {ft}"]
    lm = results.get("landmarks", {})
    if "detect_frames_per_s" in lm:
        lines.append(
            f"landmarks ({lm['backend']}, {lm['frame_size']}x{lm['frame_size']}): detection {_f(lm['detect_frames_per_s'])}"
            f" frames/s, tracking {_f(lm['track_frames_per_s'])} frames/s"
        )
    else:
        lines.append(f"landmarks: {lm}")
    warp = results.get("warp")
    if warp is not None:
        lines.append(format_warp(warp) if "ms_per_frame" in warp else f"warp: {warp}")
    e2e = results.get("end_to_end")
    if isinstance(e2e, list):
        lines += ["", "end to end (animate CLI)   steps  seconds  peak RSS MiB  exit"]
        for r in e2e:
            label = f"{_f(r['clip_seconds'])} s clip @ {_f(r['fps'], 0)} fps"
            lines.append(
                f"{label:<26} {r['steps']:>5}  {_f(r['seconds']):>7}  {_f(r['peak_rss_mib'], 0):>12}  {r['exit_code']:>4}"
            )
    else:
        lines += ["", f"end to end: {e2e}"]
    if "precision" in results:
        lines += ["", *format_precision(results["precision"], results["machine"])]
    lines += [
        "",
        f"bench process peak RSS: {_f(results['peak_rss_mib'], 0)} MiB; total {_f(results['seconds']['total'])} s",
    ]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write the JSON and the text table next to it (``.txt``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = out.with_suffix(".txt")
    table.write_text(format_table(results), encoding="utf-8")
    return out, table

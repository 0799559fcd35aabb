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
  and what ``auto`` chose.

The results are a JSON-ready dict (:func:`run_benchmarks`) and a plain-text
table (:func:`format_table`), which also lists parameter counts and MACs per
frame (:func:`network_sizes`). ``scripts/bench_models.py`` and
``scripts/bench_pipeline.py`` are thin command lines over these functions
(the latter adds rendering frames/s, :func:`bench_render`).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"


@dataclass(frozen=True)
class BenchConfig:
    """What to measure; written into the results."""

    presets: tuple[str, ...] = ("cpu", "paper")  # network presets for E/G timings
    batch_sizes: tuple[int, ...] = (1, 8)  # batch sizes for E/G timings
    cpu_batch1_presets: tuple[str, ...] = (
        "paper",
    )  # presets timed at batch 1 only on CPU (seconds per frame)
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
    compare_precisions: tuple[str, ...] = ("fp32", "bf16")  # precisions timed side by side (empty: skip)
    precision_preset: str = "cpu"  # preset of the side-by-side timings
    precision_render_frames: int = 16  # timed rendering frames per precision (after one warm-up batch)
    precision_batch: int = 8  # rendering batch size of the side-by-side timings
    precision_train_steps: int = 3  # timed training steps per precision (after one warm-up step)
    precision_train_batch: int = 2  # episodes per training step
    precision_train_k_shots: int = 2  # K of the training episodes

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
        )


# ----- machine and timing helpers -----------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo", encoding="utf-8") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    return platform.processor() or platform.machine()


def _cpu_family_model() -> str | None:
    """``family F model M`` from ``/proc/cpuinfo`` (names the generation where the model name is generic)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = (part.strip() for part in line.partition(":"))
            if key in ("cpu family", "model") and key not in fields:
                fields[key] = value
            if not key:
                break
    return f"family {fields['cpu family']} model {fields['model']}" if len(fields) == 2 else None


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
        return round(kib / 2**20, 1)
    return None


def machine_info() -> dict[str, Any]:
    """CPU, its bf16 flags, cores, memory, load, torch version/threads and GPU, with a one-line ``summary``."""
    import torch

    from talking_head.nets.precision import cpu_bf16_flags

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    info = {
        "cpu": _cpu_model(),
        "cpu_family_model": _cpu_family_model(),
        "cpu_bf16_flags": list(cpu_bf16_flags()),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average_1m": round(load[0], 2) if load else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
    }
    info["summary"] = (
        f"{info['cpu']} ({info['cpu_family_model'] or 'unknown family'}; bf16 flags: {', '.join(info['cpu_bf16_flags']) or 'none'}); {info['cores']} cores; {info['memory_gib']} GiB RAM; load {info['load_average_1m']}; "
        f"torch {info['torch']} ({info['torch_threads']} threads); {gpu or 'no GPU'}"
    )
    return info


def median_times(
    fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None
) -> tuple[float, float]:
    """Median wall time and process CPU time (seconds) of ``fn`` over ``repeats`` runs after a warm-up run.

    On a shared machine the wall time grows with the load; CPU time / threads
    estimates the wall time the same work takes on an idle machine.
    """
    walls, cpus = [], []
    for i in range(repeats + 1):
        sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        sync()
        if i:  # the first run warms caches and allocators
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu_start)
    return statistics.median(walls), statistics.median(cpus)


def median_seconds(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up run."""
    return median_times(fn, repeats, sync)[0]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _devices() -> list[tuple[str, Any]]:
    import torch

    devices = [("cpu", torch.float32)]
    if torch.cuda.is_available():
        devices.append(("cuda", torch.bfloat16))
    return devices


# ----- networks ------------------------------------------------------------


def bench_networks(
    preset: str, batch_sizes: tuple[int, ...], repeats: int, cpu_batch1_only: bool = False
) -> list[dict[str, Any]]:
    """E and G ms/frame for one preset, per device and batch size (no gradients, cached SN).

    ``cpu_batch1_only`` keeps the CPU timings at batch 1 (the paper preset takes
    seconds per frame there; bigger batches only add minutes to the run).
    """
    import torch
    from torch.nn.utils import parametrize

    from talking_head.nets.config import ModelConfig
    from talking_head.nets.embedder import Embedder
    from talking_head.nets.generator import Generator

    config = ModelConfig.preset(preset)
    torch.manual_seed(0)
    embedder, generator = Embedder(config).eval(), Generator(config).eval()
    rows = []
    for device, dtype in _devices():
        embedder.to(device), generator.to(device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for batch in [1] if device == "cpu" and cpu_batch1_only else batch_sizes:
            x = torch.randn(batch, 3, config.image_size, config.image_size, device=device)
            y = torch.randn_like(x)
            e = torch.rand(batch, config.embedding_dim, device=device)
            autocast = torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32)
            # parametrize.cached(): spectral norms computed once per call, as at inference.
            with torch.no_grad(), autocast, parametrize.cached():
                e_s = median_seconds(lambda x=x, y=y: embedder(x, y), repeats, sync)
                warp = x if config.warp_guided else None  # any image: G's cost does not depend on it
                g_s, g_cpu_s = median_times(lambda y=y, e=e, w=warp: generator(y, e, warp=w), repeats, sync)
            row = {
                "preset": preset,
                "device": device,
                "dtype": str(dtype).removeprefix("torch."),
                "batch": batch,
                "embedder_ms_per_frame": 1000 * e_s / batch,
                "generator_ms_per_frame": 1000 * g_s / batch,
                "generator_frames_per_s": batch / g_s,
            }
            if device == "cpu":  # process CPU time: an idle-machine estimate on a shared CPU
                row["generator_cpu_ms_per_frame"] = 1000 * g_cpu_s / batch
            rows.append(row)
    return rows


def _param_count(module: Any, skip_prefix: str | None = None) -> int:
    """Trainable parameter count (spectral-norm originals counted once)."""
    return sum(
        p.numel() for n, p in module.named_parameters() if not (skip_prefix and n.startswith(skip_prefix))
    )


def network_sizes(preset: str, num_videos: int = 1000) -> dict[str, Any]:
    """Parameter counts of E, G (with P), P, D's conv part V and its per-video W; MACs per frame of E and G.

    Built on the meta device: shapes only, so even the paper preset costs nothing.
    ``num_videos`` sizes W for scale (one row per training video).
    FlopCounterMode counts 2 FLOPs per multiply-accumulate.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from talking_head.nets.config import ModelConfig
    from talking_head.nets.discriminator import VIDEO_TABLE_PREFIX, Discriminator
    from talking_head.nets.embedder import Embedder
    from talking_head.nets.generator import Generator

    config = ModelConfig.preset(preset)
    with torch.device("meta"):
        embedder, generator = Embedder(config).eval(), Generator(config).eval()
        discriminator = Discriminator(config, num_videos=num_videos)
        x = torch.zeros(1, config.image_channels, config.image_size, config.image_size)
        y = torch.zeros(1, config.landmark_channels, config.image_size, config.image_size)
        e = torch.zeros(1, config.embedding_dim)
    macs = []
    warp = x if config.warp_guided else None
    for fn in (lambda: embedder(x, y), lambda: generator(y, e=e, warp=warp)):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        macs.append(counter.get_total_flops() / 2)
    v_params = _param_count(discriminator, skip_prefix=VIDEO_TABLE_PREFIX)
    return {
        "preset": preset,
        "image_size": config.image_size,
        "embedding_dim": config.embedding_dim,
        "embedder_params": _param_count(embedder),
        "generator_params": _param_count(generator),
        "projection_params": _param_count(generator.projection),
        "adain_params": generator.n_adain_params,
        "discriminator_v_params": v_params,
        "discriminator_w_params": _param_count(discriminator) - v_params,
        "num_videos": num_videos,
        "embedder_macs_per_frame": macs[0],
        "generator_macs_per_frame": macs[1],
    }


# ----- synthetic clip ------------------------------------------------------


def synthetic_talking_frames(num_frames: int, size: int = 512, seed: int = 0) -> Iterator[np.ndarray]:
    """The example photo with small head motions (shift, scale, roll): ``size``² RGB frames."""
    import cv2

    from talking_head.media.images import load_image

    photo = cv2.resize(load_image(REPO_EXAMPLE), (size, size), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 4)
    for t in range(num_frames):
        angle = 3.0 * np.sin(0.21 * t + phase[0])
        scale = 1.0 + 0.03 * np.sin(0.13 * t + phase[1])
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
        matrix[:, 2] += size * 0.02 * np.sin([0.17 * t + phase[2], 0.11 * t + phase[3]])
        yield cv2.warpAffine(photo, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)


def write_synthetic_clip(path: Path, seconds: float, fps: float, size: int) -> Path:
    """Write :func:`synthetic_talking_frames` as an MP4 (no audio) of ``seconds`` at ``fps``."""
    from talking_head.media.video_writer import VideoWriter

    with VideoWriter(path, fps) as writer:
        for frame in synthetic_talking_frames(max(1, round(seconds * fps)), size):
            writer.write(frame)
    return path


# ----- landmarks -----------------------------------------------------------


def bench_landmarks(num_frames: int, size: int, backend: str = "auto") -> dict[str, Any]:
    """Landmark frames/s on the synthetic clip: full detection per frame vs ``track_landmarks``."""
    from talking_head.face.landmarks import get_detector
    from talking_head.face.tracking import track_landmarks

    detector = get_detector(backend)
    frames = list(synthetic_talking_frames(num_frames, size))  # decoded up front: not timed
    detector.detect(frames[0])  # warm-up (FAN's first call builds kernels)
    start = time.perf_counter()
    for frame in frames:
        detector.detect(frame)
    full_s = time.perf_counter() - start
    start = time.perf_counter()
    track = track_landmarks(frames, detector, fps=25.0)
    track_s = time.perf_counter() - start
    return {
        "backend": detector.name,
        "frame_size": size,
        "frames": num_frames,
        "detect_frames_per_s": num_frames / full_s,
        "track_frames_per_s": num_frames / track_s,
        "track_face_fraction": float(track.face_fraction),
    }


# ----- fine-tuning ---------------------------------------------------------


def bench_finetune(preset: str, steps: int, shots: int, precision: str | None = None) -> dict[str, Any]:
    """Fine-tuning ms/step (median of ``steps`` timed steps after a warm-up step) on random weights."""
    import torch

    from talking_head.animation.finetune import finetune_person
    from talking_head.animation.person import embed_person
    from talking_head.nets.config import ModelConfig
    from talking_head.nets.model import TalkingHeadModel
    from talking_head.nets.precision import resolve_precision

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = resolve_precision(precision, device)
    model = TalkingHeadModel(ModelConfig.preset(preset)).to(device)
    photos = list(synthetic_talking_frames(shots, 512))
    person = embed_person(model, photos)
    stamps: list[float] = []
    cpu_stamps: list[float] = []  # process CPU time: an idle-machine estimate on a shared CPU

    def record(step: int, total: int, losses: dict[str, float]) -> None:
        if device == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())

    start, cpu_start = time.perf_counter(), time.process_time()
    finetune_person(model, person, steps=steps + 1, callback=record, precision=resolved)
    step_times = np.diff([start] + stamps)[1:]  # drop the warm-up step
    cpu_step_times = np.diff([cpu_start] + cpu_stamps)[1:]
    return {
        "preset": preset,
        "device": device,
        "precision": resolved.name,
        "shots": len(person.shots),
        "steps_timed": len(step_times),
        "ms_per_step": 1000 * float(np.median(step_times)),
        "cpu_ms_per_step": 1000 * float(np.median(cpu_step_times)),
    }


# ----- rendering -----------------------------------------------------------


def moving_track(source_landmarks: np.ndarray, num_frames: int) -> np.ndarray:
    """``(T, 68, 2)`` crop landmarks: ``source_landmarks`` nodding and opening the mouth."""
    t = np.arange(num_frames)[:, None, None]
    track = np.repeat(source_landmarks[None], num_frames, 0) + np.array([0.0, 1.0]) * 3 * np.sin(t / 5)
    track[:, 56:59, 1] += 4 * np.abs(np.sin(t[:, :, 0] / 3))  # lower lip
    return track.astype(np.float32)


def bench_render(preset: str, frames: int, batch: int, precision: str | None = "fp32") -> dict[str, Any]:
    """Median frames/s over batches of ``render_landmarks`` (the first batch is a warm-up), random weights."""
    import torch

    from talking_head.animation.person import embed_person
    from talking_head.animation.pipeline import render_landmarks
    from talking_head.nets.config import ModelConfig
    from talking_head.nets.model import TalkingHeadModel
    from talking_head.nets.precision import resolve_precision

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = resolve_precision(precision, device)
    model = TalkingHeadModel(ModelConfig.preset(preset)).to(device).eval()
    person = embed_person(model, list(synthetic_talking_frames(1, 512)))
    track = moving_track(person.source_landmarks, frames + batch)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: list[float] = []
    cpu_times: list[float] = []  # process CPU time: an idle-machine estimate on a shared CPU
    sync()
    last, cpu_last = time.perf_counter(), time.process_time()
    for index, _ in enumerate(render_landmarks(model, person, track, batch_size=batch, precision=resolved)):
        if (index + 1) % batch == 0:
            sync()
            now, cpu_now = time.perf_counter(), time.process_time()
            times.append(now - last)
            cpu_times.append(cpu_now - cpu_last)
            last, cpu_last = now, cpu_now
    return {
        "preset": preset,
        "device": device,
        "batch": batch,
        "precision": resolved.name,
        "frames_per_s": batch / statistics.median(times[1:]),
        "cpu_ms_per_frame": 1000 * statistics.median(cpu_times[1:]) / batch,
    }


# ----- training ----------------------------------------------------------------


def write_synthetic_dataset(
    folder: Path, image_size: int, num_videos: int, num_frames: int, landmarks_backend: str = "auto"
) -> Path:
    """A prepared folder of ``num_videos`` clips: the example face with moving landmarks (for throughput only).

    The example photo is framed once, as ``embed_person`` frames a photo;
    every frame reuses that crop with :func:`moving_track` landmarks.
    """
    from talking_head.animation.person import analyze_photo
    from talking_head.face.landmarks import get_detector
    from talking_head.training.data import MANIFEST_NAME, save_prepared_clip

    photo = next(synthetic_talking_frames(1, 512))
    _, shot = analyze_photo(photo, "example", get_detector(landmarks_backend), image_size)
    if shot is None:
        raise RuntimeError("no face found in the example photo")
    track = moving_track(shot.points, num_frames)
    lines = []
    for v in range(num_videos):
        rel = f"clips/video{v:02d}/clip.npz"
        boxes = np.tile([0.0, 0.0, float(image_size)], (num_frames, 1))
        save_prepared_clip(folder / rel, [shot.crop] * num_frames, track, boxes, np.arange(num_frames))
        lines.append(
            {
                "identity": f"video{v:02d}",
                "clip": "clip",
                "source": rel,
                "file": rel,
                "frames_used": num_frames,
                "frames_total": num_frames,
                "fps": 25.0,
                "frame_size": [image_size, image_size],
                "face_size": float(image_size),
                "backend": "synthetic",
                "skipped": None,
                "seconds": 0.0,
            }
        )
    (folder / MANIFEST_NAME).write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return folder


def bench_train(
    preset: str, steps: int, batch: int, k_shots: int, data_dir: Path, run_dir: Path, precision: str | None = None
) -> dict[str, Any]:
    """Meta-learning episodes/s of :func:`talking_head.training.train.train`: median of ``steps`` steps after a warm-up step."""
    import torch

    from talking_head.nets.config import ModelConfig
    from talking_head.nets.precision import resolve_precision
    from talking_head.training.train import STATS_NAME, TrainConfig, train

    device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = resolve_precision(precision, device)
    config = TrainConfig(
        k_shots=k_shots,
        batch_size=batch,
        max_steps=steps + 1,
        log_every=1,
        sample_every=0,
        ckpt_every=10**9,
        seed=0,
    )
    result = train(data_dir, run_dir, ModelConfig.preset(preset), config, device=device, precision=resolved)
    lines = (run_dir / STATS_NAME).read_text(encoding="utf-8").splitlines()
    rates = [json.loads(line)["episodes_per_s"] for line in lines][1:]  # the first step warms up
    return {
        "preset": preset,
        "device": device,
        "precision": resolved.name,
        "batch": batch,
        "k_shots": k_shots,
        "steps_timed": len(rates),
        "content_loss": result.content_loss_kind,
        "episodes_per_s": statistics.median(rates),
    }


# ----- fp32 vs bf16 ---------------------------------------------------------------


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


# ----- warp ----------------------------------------------------------------

WARP_TARGET_MS_PER_FRAME = 3.0  # the warp should cost far less than G (issue 11)


def bench_warp(batch: int = 8, image_size: int = 256, repeats: int = 30) -> dict[str, Any]:
    """The warp alone on CPU: ``warp.warp_shots`` of one shot to ``batch`` targets, median over ``repeats``.

    The shot is the example photo framed at ``image_size`` (dlib landmarks);
    the targets are its landmarks nodding and opening the mouth (:func:`moving_track`).
    """
    import torch

    from talking_head.face.framing import crop_box_from_landmarks, crop_image, points_to_crop
    from talking_head.face.landmarks import get_detector
    from talking_head.nets.tensors import images_to_tensor
    from talking_head.nets.warp import warp_shots

    frame = next(synthetic_talking_frames(1, 512))
    face = get_detector("dlib").detect(frame)
    box = crop_box_from_landmarks(face.points)
    points = np.asarray(points_to_crop(face.points, box, image_size), dtype=np.float32)  # (68, 2)
    shot = images_to_tensor(crop_image(frame, box, image_size)[None].copy())  # (1, 3, S, S)
    shot_points = torch.from_numpy(points)[None]  # (1, 68, 2)
    targets = torch.from_numpy(moving_track(points, batch))  # (B, 68, 2)
    with torch.no_grad():
        wall_s, cpu_s = median_times(lambda: warp_shots(shot, shot_points, targets), repeats)
    ms = 1000 * wall_s / batch
    return {
        "device": "cpu",
        "batch": batch,
        "image_size": image_size,
        "shots": 1,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "ms_per_frame": ms,
        # Process CPU time of all threads: with 1 thread, an idle-machine estimate on a shared CPU.
        "cpu_ms_per_frame": 1000 * cpu_s / batch,
        "target_ms_per_frame": WARP_TARGET_MS_PER_FRAME,
        "within_target": ms <= WARP_TARGET_MS_PER_FRAME,
    }


def format_warp(warp: dict[str, Any]) -> str:
    """One line of :func:`bench_warp`."""
    size = warp["image_size"]
    return (
        f"warp alone ({warp['shots']} shot, {size}x{size}, batch {warp['batch']}, {warp['device']}, "
        f"{warp['threads']} threads): {_f(warp['ms_per_frame'], 2)} ms/frame "
        f"(process CPU {_f(warp['cpu_ms_per_frame'], 2)} ms/frame; "
        f"target <= {_f(warp['target_ms_per_frame'])})"
    )


# ----- end to end ----------------------------------------------------------


def _random_weights(preset: str, folder: Path) -> Path:
    import torch

    from talking_head.nets.config import ModelConfig
    from talking_head.nets.model import TalkingHeadModel

    torch.manual_seed(0)
    TalkingHeadModel(ModelConfig.preset(preset)).save_pretrained(folder)
    return folder


# Runs a module as ``python -m`` would, then writes its own peak RSS (VmHWM) to a file.
# The child measures itself: wait4's ru_maxrss would include the parent's RSS at fork time.
_PEAK_WRAPPER = """
import atexit, runpy, sys
peak_file = sys.argv[1]

def _write_peak():
    with open("/proc/self/status") as status, open(peak_file, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM")))

atexit.register(_write_peak)
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def run_python_module(module: str, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """``python -m module args`` in a child: wall seconds, exit code, output tail and its peak RSS in MiB.

    The peak is the child's own high-water mark (``VmHWM``), not counting
    processes it starts (ffmpeg).
    """
    with tempfile.TemporaryDirectory(prefix="talking_head_peak_") as tmp:
        peak_file = Path(tmp) / "peak_kib"
        command = [sys.executable, "-c", _PEAK_WRAPPER, str(peak_file), module, *args]
        start = time.perf_counter()
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=False)
        seconds = time.perf_counter() - start
        peak = int(peak_file.read_text()) / 1024 if peak_file.exists() else None
    return {
        "seconds": seconds,
        "exit_code": proc.returncode,
        "peak_rss_mib": peak,
        "output_tail": proc.stdout.decode(errors="replace")[-2000:],
    }


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
        result = run_python_module("talking_head", args, env=env)
        if result["exit_code"] == 0:
            result.pop("output_tail")
        rows.append(
            {"clip_seconds": config.clip_seconds, "fps": config.clip_fps, "steps": steps, "weights": weights}
            | result
        )
    return rows


# ----- everything ----------------------------------------------------------


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
    results["seconds"]["total"] = time.perf_counter() - started
    results["peak_rss_mib"] = peak_rss_mib()
    return results


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
        lines.append(f"  conv micro-benchmark (auto's test): bf16 {_f(prec['conv_bf16_speedup'], 2)}x fp32 speed")
    rows = {r["precision"]: r for r in prec["rows"]}
    names = list(rows)
    header = f"  {'':<34}" + "".join(f"{n:>10}" for n in names)
    if {"fp32", "bf16"} <= set(names):
        header += "  bf16 speed-up"
    lines.append(header)
    measures = [
        (f"render frames/s (batch {prec['batch']})", "render_frames_per_s", False),
        (f"train episodes/s (batch {prec['train_batch']}, K {prec['train_k_shots']})", "train_episodes_per_s", False),
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

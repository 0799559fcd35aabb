"""Single speed measurements: E and G per frame, network sizes, landmarks, fine-tuning, rendering, training, the warp.

Each returns a JSON-ready dict; :func:`talking_head.evaluation.bench.run_benchmarks`
runs them together. Heavy modules are imported inside each function, so
importing this one costs nothing.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from talking_head.evaluation.machine import median_seconds, median_times
from talking_head.evaluation.synthetic import moving_track, synthetic_talking_frames


def _devices() -> list[tuple[str, Any]]:
    import torch

    devices = [("cpu", torch.float32)]
    if torch.cuda.is_available():
        devices.append(("cuda", torch.bfloat16))
    return devices


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
    resolved = resolve_precision(precision, device, task="train")
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


def bench_train(
    preset: str,
    steps: int,
    batch: int,
    k_shots: int,
    data_dir: Path,
    run_dir: Path,
    precision: str | None = None,
) -> dict[str, Any]:
    """Meta-learning episodes/s of :func:`talking_head.training.train.train`: median of ``steps`` steps after a warm-up step."""
    import torch

    from talking_head.nets.config import ModelConfig
    from talking_head.nets.precision import resolve_precision
    from talking_head.training.config import TrainConfig
    from talking_head.training.run_folder import STATS_NAME
    from talking_head.training.train import train

    device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = resolve_precision(precision, device, task="train")
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

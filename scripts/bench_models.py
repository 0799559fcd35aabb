"""Size and speed of the networks E, G (+P), D for each ModelConfig preset.

Prints the machine, parameter counts (E, G with P, P alone, D's conv part V
and its per-video W), MACs per frame of E and G, and ms/frame of E and G per
batch size (median over repeats) on CPU, plus CUDA bf16 where a GPU exists.

    python scripts/bench_models.py --presets paper cpu --batch-sizes 1 8 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talking_head.config import PRESETS, ModelConfig
from talking_head.discriminator import VIDEO_TABLE_PREFIX, Discriminator
from talking_head.embedder import Embedder
from talking_head.generator import Generator

NUM_VIDEOS_FOR_W = 1000  # W size shown for scale: one row per training video


def describe_machine() -> str:
    """One line naming the CPU, its core count, torch threads and any GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}; {os.cpu_count()} cores; torch {torch.__version__}, {torch.get_num_threads()} threads; {gpu}"


def count_params(module: nn.Module, skip_prefix: str | None = None) -> int:
    """Trainable parameter count (spectral-norm originals counted once)."""
    return sum(p.numel() for n, p in module.named_parameters() if not (skip_prefix and n.startswith(skip_prefix)))


def macs_per_frame(config: ModelConfig) -> tuple[float, float]:
    """Multiply-accumulates per frame of E and G (FlopCounterMode counts 2 FLOPs per MAC).

    Runs on the meta device: shapes only, so even the paper size costs nothing.
    """
    with torch.device("meta"):
        embedder, generator = Embedder(config).eval(), Generator(config).eval()
        x = torch.zeros(1, config.image_channels, config.image_size, config.image_size)
        y = torch.zeros(1, config.landmark_channels, config.image_size, config.image_size)
        e = torch.zeros(1, config.embedding_dim)
    macs = []
    for fn in (lambda: embedder(x, y), lambda: generator(y, e=e)):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        macs.append(counter.get_total_flops() / 2)
    return macs[0], macs[1]


def median_ms_per_frame(
    fn: Callable[[], object], batch: int, repeats: int, sync: Callable[[], None]
) -> tuple[float, float]:
    """Median wall time and process CPU time per frame (ms) over ``repeats`` runs, after one warm-up run.

    On a shared machine the wall time grows with the load; CPU time / threads
    estimates the wall time the same work takes on an idle machine.
    """
    walls, cpus = [], []
    for i in range(repeats + 1):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync()
        if i:  # the first run warms caches and allocators
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return 1000 * statistics.median(walls) / batch, 1000 * statistics.median(cpus) / batch


def bench_preset(name: str, config: ModelConfig, batch_sizes: list[int], repeats: int) -> None:
    """Print sizes, MACs and timings for one preset."""
    torch.manual_seed(0)
    embedder, generator = Embedder(config).eval(), Generator(config).eval()
    discriminator = Discriminator(config, num_videos=NUM_VIDEOS_FOR_W)
    v_params = count_params(discriminator, skip_prefix=VIDEO_TABLE_PREFIX)
    print(f"\n== preset {name}: {config.image_size}x{config.image_size}, N={config.embedding_dim}")
    print(f"params  E {count_params(embedder) / 1e6:7.2f}M | G {count_params(generator) / 1e6:7.2f}M "
          f"(P {count_params(generator.projection) / 1e6:.2f}M, {generator.n_adain_params} AdaIN params) | "
          f"D conv part V {v_params / 1e6:7.2f}M + W {NUM_VIDEOS_FOR_W}x{config.embedding_dim} "
          f"{(count_params(discriminator) - v_params) / 1e6:.2f}M")

    def inputs(batch: int, device: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.randn(batch, 3, config.image_size, config.image_size, device=device, dtype=dtype)
        y = torch.randn_like(x)
        e = torch.rand(batch, config.embedding_dim, device=device, dtype=dtype)
        return x, y, e

    macs_e, macs_g = macs_per_frame(config)
    print(f"MACs/frame  E {macs_e / 1e9:.2f} G | G {macs_g / 1e9:.2f} G")

    devices = [("cpu", torch.float32)] + ([("cuda", torch.bfloat16)] if torch.cuda.is_available() else [])
    for device, dtype in devices:
        embedder.to(device), generator.to(device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for batch in batch_sizes:
            x, y, e = inputs(batch, device, torch.float32)
            autocast = torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32)
            # parametrize.cached(): spectral norms are computed once per call, as at inference.
            with torch.no_grad(), autocast, parametrize.cached():
                ms_e, _ = median_ms_per_frame(lambda: embedder(x, y), batch, repeats, sync)
                ms_g, cpu_g = median_ms_per_frame(lambda: generator(y, e), batch, repeats, sync)
            line = (f"{device} {str(dtype).removeprefix('torch.')} batch {batch:3d}: E {ms_e:8.1f} ms/frame | "
                    f"G {ms_g:8.1f} ms/frame = {1000 / ms_g:6.1f} frames/s")
            if device == "cpu":
                idle_ms = cpu_g / torch.get_num_threads()
                line += f" (CPU time {cpu_g:.1f} ms/frame -> idle-machine estimate {1000 / idle_ms:.1f} frames/s)"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median is printed)")
    args = parser.parse_args()
    print(describe_machine())
    print(f"load average (other processes compete for the CPU): {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    for name in args.presets:
        bench_preset(name, PRESETS[name], args.batch_sizes, args.repeats)


if __name__ == "__main__":
    main()

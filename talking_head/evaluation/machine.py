"""The machine a benchmark ran on, and how it times: medians after a warm-up, CPU time, peak memory.

Every benchmark prints :func:`machine_info`'s summary with its numbers; on a
shared machine the process CPU time (:func:`median_times`) estimates what the
same work takes on an idle one.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


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

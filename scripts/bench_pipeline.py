"""Speed of the person pipeline: fine-tuning ms/step and rendering frames/s.

Random weights of each preset (``cpu`` always; ``paper`` too where CUDA is
present), a person embedded from the example photo (T shots: the photo and
shifted/mirrored copies), then:

- fine-tuning: ``finetune_person`` for warm-up + N steps; median ms/step;
- rendering: ``render_landmarks`` on a synthetic moving-landmark track in
  batches; median frames/s over batches (fp32, plus bf16 on CUDA).

Prints the machine first. Medians, not means: a shared machine has outliers.

    python scripts/bench_pipeline.py --shots 1 8 --steps 10 --frames 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

# Run from a checkout without installing the package.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from talking_head.bench import machine_info
from talking_head.config import ModelConfig
from talking_head.finetune import finetune_person
from talking_head.images import load_image
from talking_head.model import TalkingHeadModel
from talking_head.person import Person, embed_person
from talking_head.pipeline import render_landmarks

EXAMPLE = REPO / "examples" / "astronaut.png"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def example_shots(count: int) -> list[np.ndarray]:
    """The example photo, shifted and mirrored: ``count`` distinct shots of one face."""
    photo = load_image(EXAMPLE)
    shots = []
    for i in range(count):
        shifted = np.roll(photo, shift=(4 * i, -3 * i), axis=(0, 1))
        shots.append(np.ascontiguousarray(shifted[:, ::-1] if i % 2 else shifted))
    return shots


def moving_track(person: Person, num_frames: int) -> np.ndarray:
    """``(T, 68, 2)`` crop landmarks: the person's own, nodding and opening the mouth."""
    base = person.source_landmarks
    t = np.arange(num_frames)[:, None, None]
    track = np.repeat(base[None], num_frames, 0) + np.array([0.0, 1.0]) * 3 * np.sin(t / 5)
    track[:, 56:59, 1] += 4 * np.abs(np.sin(t[:, :, 0] / 3))  # lower lip
    return track.astype(np.float32)


def bench_finetune(model: TalkingHeadModel, person: Person, steps: int, device: str) -> float:
    """Median ms per fine-tuning step after one warm-up step."""
    stamps: list[float] = []

    def record(step: int, total: int, losses: dict[str, float]) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    start = time.perf_counter()
    finetune_person(model, person, steps + 1, callback=record)
    return 1000 * statistics.median(np.diff([start] + stamps)[1:])


def bench_render(
    model: TalkingHeadModel, person: Person, frames: int, batch: int, bf16: bool, device: str
) -> float:
    """Median frames/s over batches of ``render_landmarks`` (first batch is warm-up)."""
    track = moving_track(person, frames + batch)
    times: list[float] = []
    _sync(device)
    last = time.perf_counter()
    for index, _ in enumerate(render_landmarks(model, person, track, batch_size=batch, bf16=bf16)):
        if (index + 1) % batch == 0:
            _sync(device)
            now = time.perf_counter()
            times.append(now - last)
            last = now
    return batch / statistics.median(times[1:])


def run_preset(preset: str, device: str, shots: list[int], steps: int, frames: int, batch: int) -> list[dict]:
    torch.manual_seed(0)
    model = TalkingHeadModel(ModelConfig.preset(preset)).to(device).eval()
    rows = []
    for count in shots:
        person = embed_person(model, example_shots(count))
        rows.append(
            {
                "preset": preset,
                "device": device,
                "what": "fine-tuning",
                "shots": len(person.shots),
                "ms_per_step": round(bench_finetune(model, person, steps, device), 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    person = embed_person(model, example_shots(1))
    for bf16 in [False, True] if device == "cuda" else [False]:
        rows.append(
            {
                "preset": preset,
                "device": device,
                "what": "rendering",
                "batch": batch,
                "bf16": bf16,
                "frames_per_s": round(bench_render(model, person, frames, batch, bf16, device), 2),
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
    device = "cuda" if torch.cuda.is_available() else "cpu"
    presets = args.presets or (["cpu", "paper"] if device == "cuda" else ["cpu"])
    machine = machine_info()
    print(machine["summary"], flush=True)
    rows = [
        row
        for preset in presets
        for row in run_preset(preset, device, args.shots, args.steps, args.frames, args.batch)
    ]
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

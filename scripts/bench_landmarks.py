"""Landmark benchmark: frames/s per available backend (full detection vs tracking), rasterization time.

Prints the machine, then a plain-text table. The clip is a synthetic 512x512
"talking" clip (``examples/astronaut.png`` with small head motions) unless
``--clip`` is given. FAN is measured only when its weights load.

    python scripts/bench_landmarks.py [--clip PATH] [--frames 100] [--raster-calls 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from talking_head.animation.overlay import compose_overlay
from talking_head.errors import TalkingHeadError
from talking_head.evaluation.machine import machine_info
from talking_head.evaluation.synthetic import synthetic_talking_frames
from talking_head.face.detection import LandmarkDetector
from talking_head.face.landmarks import get_detector
from talking_head.face.raster import rasterize_landmarks
from talking_head.face.tracking import track_landmarks
from talking_head.media.video_reader import VideoReader

RASTER_SIZE = 256


def load_frames(clip: str | None, num_frames: int, size: int) -> tuple[list[np.ndarray], float, str]:
    """Frames to measure on (held in memory so decoding is not timed), their fps and a description."""
    if clip is None:
        frames = list(synthetic_talking_frames(num_frames, size))
        return frames, 25.0, f"synthetic {size}x{size} talking clip (examples/astronaut.png), {len(frames)} frames"
    with VideoReader(clip) as reader:
        frames = list(itertools.islice(reader, num_frames))
        fps = reader.info.fps
    height, width = frames[0].shape[:2]
    return frames, fps, f"{clip}: {width}x{height}, first {len(frames)} frames"


def bench_backend(detector: LandmarkDetector, frames: list[np.ndarray], fps: float) -> dict[str, Any]:
    """Frames/s of full detection on every frame, and of ``track_landmarks`` (box hints, lost-test)."""
    detector.detect(frames[0])  # warm-up: first calls allocate (and FAN builds its kernels)
    start = time.perf_counter()
    found = 0
    for frame in frames:
        try:
            detector.detect(frame)
            found += 1
        except TalkingHeadError:
            pass
    detect_s = time.perf_counter() - start
    start = time.perf_counter()
    track = track_landmarks(frames, detector, fps)
    track_s = time.perf_counter() - start
    return {
        "backend": detector.name,
        "frames": len(frames),
        "detect_fps": len(frames) / detect_s,
        "detect_found": found / len(frames),
        "track_fps": len(frames) / track_s,
        "track_found": track.face_fraction,
    }


def bench_raster(points: np.ndarray, calls: int) -> dict[str, Any]:
    """Median time of one ``rasterize_landmarks`` call at 256x256 over ``calls`` calls."""
    times = []
    for _ in range(calls + 1):
        start = time.perf_counter()
        rasterize_landmarks(points, RASTER_SIZE)
        times.append(time.perf_counter() - start)
    return {"size": RASTER_SIZE, "calls": calls, "median_ms": 1e3 * statistics.median(times[1:])}


def bench_overlay(frame: np.ndarray, points: np.ndarray, box: np.ndarray, calls: int) -> float:
    """Median ms to compose one overlay frame (drawing + rasterization at the frame's size)."""
    times = []
    for _ in range(calls + 1):
        start = time.perf_counter()
        compose_overlay(frame, points, box)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times[1:])


def scaled_to(points: np.ndarray, size: int) -> np.ndarray:
    """Landmarks fitted into a ``size``² canvas with a 15% margin (like a face crop)."""
    low, high = points.min(axis=0), points.max(axis=0)
    scale = 0.7 * size / float((high - low).max())
    return ((points - (low + high) / 2) * scale + size / 2).astype(np.float32)


def run(args: argparse.Namespace) -> dict[str, Any]:
    frames, fps, clip = load_frames(args.clip, args.frames, args.size)
    results: dict[str, Any] = {"machine": machine_info(), "clip": clip, "backends": [], "unavailable": {}}
    sample = None
    for name in ("dlib", "fan"):
        try:
            detector = get_detector(name)
        except TalkingHeadError as error:  # WeightsError: FAN weights not cached and no internet
            results["unavailable"][name] = str(error)
            continue
        results["backends"].append(bench_backend(detector, frames, fps))
        if sample is None:
            sample = detector.detect(frames[0])
    if sample is not None:
        results["raster"] = bench_raster(scaled_to(sample.points, RASTER_SIZE), args.raster_calls)
        results["overlay_ms"] = bench_overlay(frames[0], sample.points, sample.box, 200)
    return results


def format_table(results: dict[str, Any]) -> str:
    lines = [f"machine: {results['machine']['summary']}", f"clip: {results['clip']}", ""]
    header = f"{'backend':<8} {'frames':>6} {'detect fps':>11} {'found':>7} {'track fps':>10} {'found':>7}"
    lines += [header, "-" * len(header)]
    for row in results["backends"]:
        lines.append(
            f"{row['backend']:<8} {row['frames']:>6} {row['detect_fps']:>11.1f} {100 * row['detect_found']:>6.1f}% "
            f"{row['track_fps']:>10.1f} {100 * row['track_found']:>6.1f}%"
        )
    for name, reason in results["unavailable"].items():
        lines.append(f"{name:<8} unavailable: {reason}")
    if "raster" in results:
        raster = results["raster"]
        lines += [
            "",
            (
                f"rasterize_landmarks {raster['size']}x{raster['size']}: {raster['median_ms']:.3f} ms "
                f"(median of {raster['calls']} calls)"
            ),
            f"compose_overlay at the clip's size: {results['overlay_ms']:.2f} ms per frame (median of 200)",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", help="measure on this clip instead of the synthetic one")
    parser.add_argument("--frames", type=int, default=100, help="frames to measure on (default 100)")
    parser.add_argument("--size", type=int, default=512, help="side of the synthetic clip (default 512)")
    parser.add_argument("--raster-calls", type=int, default=1000, help="rasterization calls (default 1000)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.raster_calls < 1 or args.frames < 1:
        parser.error("--frames and --raster-calls must be positive")
    results = run(args)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

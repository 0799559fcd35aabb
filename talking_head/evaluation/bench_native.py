"""Native-resolution output against the 256² path, per frame, in one run (issue 23).

For each face size the example photo is zoomed so that its face (the
landmarks' box) spans that many pixels of a 1024 × 1024 photo, then animated
with an example motion two ways, interleaved round by round so a shared
machine's load falls on both alike:

- the 256² path: landmarks → warp → G → the crop (``animate_person``'s
  frames, consumed), G on the run's runtime and precision;
- the native path: the same frames composited into the whole photo at 1024
  (:class:`~talking_head.animation.compositing.NativeCompositor`, ``photo``
  output), as ``animate --output photo`` and the page make them.

Medians over the rounds after a warm-up round: wall ms a frame, the process's
CPU ms a frame (all its threads), and their ratio to the 256² path (at most
1.5 wanted); and the per-photo work, done once (the mask, the upsampled
layer). Photos given by path are timed the same way, at their own size up
to 1024. Memory: the largest Python-traced allocation while the native
path streams the clip (:mod:`tracemalloc`, numpy's arrays included; torch's
own allocator is not traced), against one output frame's size and the clip's.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PHOTO = ROOT / "examples" / "astronaut.png"
EXAMPLE_MOTION = ROOT / "examples" / "motions" / "head-tilts.npz"
SIDE = 1024  # the output's longer side


def zoomed_photo(photo: np.ndarray, points: np.ndarray, face: int, side: int = SIDE) -> np.ndarray:
    """``photo`` scaled so the landmarks' box spans ``face`` px, framed on it in a ``side`` × ``side`` photo
    (mirrored where the photo ends): ``(side, side, 3)`` uint8."""
    low, high = points.min(0), points.max(0)
    scale = face / float(max(high - low))
    centre = (low + high) / 2 * scale
    matrix = np.array([[scale, 0.0, side / 2 - centre[0]], [0.0, scale, side / 2 - centre[1]]])
    return cv2.warpAffine(photo, matrix, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)


def _people(model, faces: Sequence[int], photos: Sequence[str | Path]) -> list[tuple[str, Any]]:
    """(label, person) for each face size of the example photo and each photo given."""
    from talking_head.animation.person import embed_person
    from talking_head.face.landmarks import get_detector
    from talking_head.media.images import load_image

    detector = get_detector()
    people = []
    if faces:
        example = load_image(EXAMPLE_PHOTO)
        points = detector.detect(example).points
        for face in faces:
            photo = zoomed_photo(example, points, face)
            people.append((f"example, face {face} px", embed_person(model, [photo], detector=detector)))
    for path in photos:
        people.append((Path(path).name, embed_person(model, [load_image(path)], detector=detector)))
    return people


def _timed(run) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - start, time.process_time() - cpu


def _peak_traced(compositor, frames) -> tuple[float, int]:
    """The largest traced allocation (bytes) while ``frames`` stream through ``compositor``, and the count."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    count = sum(1 for _ in compositor.frames(frames))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return float(peak), count


def bench_native(
    weights: str | None = None,
    faces: Sequence[int] = (256, 384, 512),
    photos: Sequence[str | Path] = (),
    frames: int = 32,
    rounds: int = 3,
    precision: str | None = None,
    runtime: str | None = None,
    preset: str = "cpu",
) -> dict[str, Any]:
    """ms a frame of the 256² and the native path per face (medians of ``rounds`` interleaved rounds)."""
    import torch

    from talking_head.animation.compositing import NativeCompositor
    from talking_head.animation.pipeline import animate_person, load_driving
    from talking_head.animation.rendering import rendering_setup
    from talking_head.evaluation.bench_runtime import _model

    model = _model(preset, weights)
    resolved_precision, resolved_runtime = rendering_setup(model, precision, runtime)
    motion = load_driving(EXAMPLE_MOTION, model.config.image_size)
    motion.points = motion.points[:frames]  # 125 frames long
    people = _people(model, faces, photos)
    render = lambda person: animate_person(  # noqa: E731 - one call site each below
        model, person, motion, batch_size=8, precision=resolved_precision, runtime=resolved_runtime
    )
    compositors, setup_ms = [], []
    for _, person in people:  # the per-photo work (mask, upsampled layer), once per request
        start = time.perf_counter()
        compositors.append(NativeCompositor.for_person(person, "photo", SIDE))
        setup_ms.append(1000 * (time.perf_counter() - start))
    times: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for round_ in range(rounds + 1):
        for index, ((_, person), compositor) in enumerate(zip(people, compositors)):
            base = _timed(lambda: sum(1 for _ in render(person)))
            native = _timed(lambda: sum(1 for _ in compositor.frames(render(person))))
            if round_:  # round 0 warms up (sessions, kernels, the compositor's first frames)
                times.setdefault((index, "base"), []).append(base)
                times.setdefault((index, "native"), []).append(native)
    rows, size = [], model.config.image_size
    for index, ((label, person), compositor) in enumerate(zip(people, compositors)):
        median = {
            (kind, k): 1000 * statistics.median(t[k] for t in times[(index, kind)]) / frames
            for kind in ("base", "native")
            for k in (0, 1)
        }
        peak, count = _peak_traced(compositor, render(person))
        frame_bytes = compositor.still.nbytes
        rows.append(
            {
                "photo": label,
                "output": f"{compositor.canvas.width}x{compositor.canvas.height}",
                "face_px": float(np.ptp(person.source_landmarks[:, 0]) * compositor.canvas.box.size / size),
                "base_ms_per_frame": median[("base", 0)],
                "native_ms_per_frame": median[("native", 0)],
                "ratio": median[("native", 0)] / median[("base", 0)],
                "base_cpu_ms_per_frame": median[("base", 1)],
                "native_cpu_ms_per_frame": median[("native", 1)],
                "cpu_ratio": median[("native", 1)] / median[("base", 1)],
                "setup_ms": setup_ms[index],
                "peak_traced_mib": peak / 2**20,
                "peak_in_frames": peak / frame_bytes,
                "clip_frames": count,
                "clip_mib": count * frame_bytes / 2**20,
            }
        )
    return {
        "weights": weights or f"random {preset} weights",
        "precision": resolved_precision.policy,
        # ONNX Runtime renders in float32 whatever the precision policy says
        "dtype": "float32" if resolved_runtime.name == "onnx" else str(resolved_precision.dtype).split(".")[-1],
        "runtime": resolved_runtime.name,
        "threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "frames": frames,
        "rounds": rounds,
        "rows": rows,
    }


def format_native(result: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    """The table of :func:`bench_native`, with the machine and what rendered."""
    if "rows" not in result:
        return [f"native output: {result}"]
    lines = [
        (
            f"native output (whole photo, longer side {SIDE}) vs the 256² path: {result['weights']}, G {result['dtype']} "
            f"on {result['runtime']}, {result['threads']} torch / {result['opencv_threads']} OpenCV threads, "
            f"{result['frames']} frames, medians of {result['rounds']} interleaved rounds"
        ),
        f"  CPU {machine['cpu']} ({machine.get('cpu_family_model') or 'unknown family'}), "
        f"{machine['cores']} cores, load {machine['load_average_1m']}",
        f"  {'photo':<26}{'output':>10}{'face':>6}{'256² ms':>9}{'native ms':>10}{'ratio':>7}{'CPU ratio':>10}"
        f"{'peak MiB':>9}{'frames':>7}{'setup ms':>9}",
    ]
    for row in result["rows"]:
        lines.append(
            f"  {row['photo'][:26]:<26}{row['output']:>10}{row['face_px']:>6.0f}{row['base_ms_per_frame']:>9.1f}"
            f"{row['native_ms_per_frame']:>10.1f}{row['ratio']:>6.2f}x{row['cpu_ratio']:>9.2f}x"
            f"{row['peak_traced_mib']:>9.1f}{row['peak_in_frames']:>7.1f}{row['setup_ms']:>9.0f}"
        )
    ratios = [row["ratio"] for row in result["rows"]]
    lines.append(
        f"  ratio median {statistics.median(ratios):.2f}x, max {max(ratios):.2f}x (at most 1.5x wanted); "
        f"peak: the most traced memory while the clip of {result['rows'][0]['clip_frames']} frames streams "
        f"({result['rows'][0]['clip_mib']:.0f} MiB at full size), and that in output frames; setup: once per photo"
    )
    return lines

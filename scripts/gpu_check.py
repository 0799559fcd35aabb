"""The app's whole path on a GPU, checked for non-finite values, timed stage by stage.

For each example photo: landmarks and embedding, ``--steps`` fine-tuning steps
(precision ``auto``: bf16 autocast on CUDA, every loss in float32), rendering
``--frames`` frames of an example motion and encoding the MP4. Every
fine-tuning loss, ψ', every tensor of G', and G's raw output on the first
driving frames must be finite, and fine-tuning must not have stopped early;
the script exits 1 naming what failed. Timings are printed per stage, with
the machine (GPU name, torch, CUDA).

    python scripts/gpu_check.py                       # CUDA, 40 steps, 125 frames
    python scripts/gpu_check.py --device cpu --steps 2 --frames 8   # the same checks on a CPU

Run it whenever a CUDA machine is at hand (e.g. a Space or a lent GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import torch

from talking_head.animation.finetune import finetune_person
from talking_head.animation.person import landmark_images
from talking_head.animation.pipeline import embed_person, load_driving, load_model, render_video
from talking_head.evaluation.machine import machine_info
from talking_head.face.landmarks import get_detector
from talking_head.media.video import probe_video
from talking_head.nets.finite import all_finite
from talking_head.nets.precision import resolve_precision
from talking_head.nets.tensors import images_to_tensor
from talking_head.nets.warp import warp_shots

PHOTOS = [ROOT / "examples" / "astronaut.png"]
MOTION = ROOT / "examples" / "motions" / "calm-talking.npz"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _raw_output_finite(model, person, motion, device: torch.device, count: int = 8) -> bool:
    """G' on the first driving frames (its float output, before conversion to uint8) is finite."""
    points = torch.from_numpy(np.asarray(motion.points[:count], dtype=np.float32)).to(device)
    y = images_to_tensor(landmark_images(points.cpu().numpy(), model.config.image_size), device)
    generator = person.generator if person.generator is not None else model.generator
    warp = None
    if model.config.warp_guided:
        shots = images_to_tensor(person.shots, device)
        shot_points = torch.from_numpy(np.asarray(person.shot_landmarks, dtype=np.float32)).to(device)
        warp = warp_shots(shots, shot_points, points)
    precision = resolve_precision(None, device)
    with torch.inference_mode(), precision.autocast():
        out = generator(y, adain_params=person.adain_params.to(device), warp=warp)
    return all_finite([out.float()])


def check_photo(model, photo: Path, steps: int, frames: int, out_dir: Path) -> dict:
    """Run the app's path on one photo; the timings and which checks failed."""
    device = next(model.parameters()).device
    detector = get_detector(device=str(device) if device.type == "cuda" else None)
    timings, failures = {}, []

    start = time.perf_counter()
    person = embed_person(model, [photo], detector=detector)
    _sync(device)
    timings["landmarks+embedding"] = time.perf_counter() - start

    losses: list[dict[str, float]] = []
    start = time.perf_counter()
    tuned = finetune_person(model, person, steps, callback=lambda s, t, l: losses.append(l))
    _sync(device)
    timings["fine-tuning"] = time.perf_counter() - start
    if not all(math.isfinite(v) for step in losses for v in step.values()):
        failures.append("a fine-tuning loss is not finite")
    if tuned.finetune_notice:
        failures.append(tuned.finetune_notice)
    if steps and not all_finite([tuned.adain_params, *tuned.generator.state_dict().values()]):
        failures.append("ψ' or a tensor of G' is not finite")

    motion = load_driving(MOTION, model.config.image_size, max_seconds=frames / 25.0)
    if not _raw_output_finite(model, tuned, motion, device):
        failures.append("G's raw output is not finite")
    start = time.perf_counter()
    result = render_video(model, tuned, motion, out_dir / f"{photo.stem}.mp4")
    _sync(device)
    timings["rendering+encoding"] = time.perf_counter() - start
    written = probe_video(result.out).num_frames
    if written != len(motion):
        failures.append(f"{written} frames written of {len(motion)}")
    return {
        "photo": photo.name,
        "steps": steps,
        "frames": written,
        "precision_train": resolve_precision(None, device, task="train").name,
        "precision_render": resolve_precision(None, device).name,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "ms_per_step": round(1000 * timings["fine-tuning"] / max(steps, 1), 1),
        "frames_per_s": round(written / timings["rendering+encoding"], 1),
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=40, help="fine-tuning steps (the app's GPU default)")
    parser.add_argument("--frames", type=int, default=125, help="driving frames rendered (5 s at 25 fps)")
    parser.add_argument("--photos", nargs="*", type=Path, default=PHOTOS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (use --device cpu for the same checks on a CPU)", file=sys.stderr)
        return 2
    info = machine_info()
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(args.device)
        info["cuda"] = torch.version.cuda
    print("machine:", json.dumps(info))
    model = load_model(args.weights, device=args.device)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for photo in args.photos:
            result = check_photo(model, photo, args.steps, args.frames, Path(tmp))
            results.append(result)
            status = "OK" if not result["failures"] else "FAILED: " + "; ".join(result["failures"])
            print(
                f"{result['photo']}: {status} · fine-tuning {result['precision_train']}, rendering "
                f"{result['precision_render']} · "
                + ", ".join(f"{stage} {s:.2f} s" for stage, s in result["seconds"].items())
                + f" · {result['ms_per_step']} ms/step, {result['frames_per_s']} frames/s"
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

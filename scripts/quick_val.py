"""A quick look at a checkpoint or weights folder on fixed validation episodes (minutes, not the full evaluate).

    python scripts/quick_val.py runs/ssim weights --data data/prepared/val --episodes 48

For each source (a run folder, a ``checkpoint.pt`` or an exported weights
folder) it renders the same seeded 1-shot episodes (no fine-tuning: the FF
row) and prints SSIM, mouth SSIM and sharpness of G's frame next to the warp
alone and the real frames, with the metrics of ``evaluate`` on whole 256²
frames. It is for choosing which checkpoints deserve the full ``evaluate``
run; it does not replace it (no hold-out frames of other clips' shots, no
landmark error or CSIM).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from talking_head.evaluation.metrics import mouth_metrics, sharpness, ssim
from talking_head.nets.model import TalkingHeadModel
from talking_head.nets.warp import warp_episodes
from talking_head.training.checkpoint import load_checkpoint
from talking_head.training.data import EpisodeDataset, tensor_to_image
from talking_head.training.episodes import fixed_batch, generate
from talking_head.training.hub import model_from_checkpoint


def load_networks(source: Path) -> TalkingHeadModel:
    """An exported weights folder, or the EMA networks of a run folder / checkpoint file."""
    if source.is_dir() and (source / "generator.safetensors").exists():
        return TalkingHeadModel.from_pretrained(source)
    checkpoint = load_checkpoint(source)
    print(f"{source}: checkpoint at step {checkpoint.get('step', '?')}")
    return model_from_checkpoint(checkpoint, name=str(source))


def score(images: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Means of SSIM, mouth SSIM and sharpness of (B, 3, H, W) frames against the targets."""
    rows = {"ssim": [], "mouth_ssim": [], "sharpness": []}
    for image, real, points in zip(images, batch["target_image"], batch["target_points"]):
        fake, true = tensor_to_image(image), tensor_to_image(real)
        rows["ssim"].append(ssim(fake, true))
        rows["mouth_ssim"].append(mouth_metrics(fake, true, points.numpy())["mouth_ssim"])
        rows["sharpness"].append(sharpness(fake))
    return {k: statistics.fmean(v) for k, v in rows.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sources", nargs="+", type=Path, help="run folders, checkpoint files or weights folders"
    )
    parser.add_argument(
        "--data", type=Path, default=Path("data/prepared/val"), help="prepared validation folder"
    )
    parser.add_argument("--episodes", type=int, default=48, help="fixed 1-shot episodes (default 48)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = EpisodeDataset(args.data, k_shots=1, flip=False)
    batch = fixed_batch(dataset, args.episodes, torch.device("cpu"))
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    print(f"{args.episodes} episodes of {len(dataset)} clips in {args.data}")
    with torch.no_grad():
        warp = warp_episodes(batch["shot_images"], batch["shot_points"], batch["target_points"])
    real = score(batch["target_image"], batch)
    print(f"{'source':40s} {'SSIM':>7s} {'mouth':>7s} {'sharp':>7s}")
    print(f"{'real frames':40s} {'':>7s} {'':>7s} {real['sharpness']:7.1f}")
    base = score(warp, batch)
    print(f"{'warp only':40s} {base['ssim']:7.4f} {base['mouth_ssim']:7.4f} {base['sharpness']:7.1f}")
    for source in args.sources:
        start = time.perf_counter()
        model = load_networks(source)
        with torch.no_grad():
            parts = [{k: v[i : i + 8] for k, v in batch.items()} for i in range(0, args.episodes, 8)]
            frames = torch.cat([generate(model.embedder, model.generator, part)[1] for part in parts])
        m = score(frames, batch)
        print(
            f"{str(source)[-40:]:40s} {m['ssim']:7.4f} {m['mouth_ssim']:7.4f} {m['sharpness']:7.1f}"
            f"   (Δ warp {m['ssim'] - base['ssim']:+.4f} / {m['mouth_ssim'] - base['mouth_ssim']:+.4f},"
            f" {time.perf_counter() - start:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One episode through E and G: ê from the K shots, x̂ (warp-guided or not) from the target's landmarks.

Also the targets cut to crops (``TrainConfig.crop_size``: G and D see crops,
E still embeds whole shots) and the fixed episodes of the sample grids.
"""

from __future__ import annotations

import torch

from talking_head.errors import TalkingHeadError
from talking_head.nets.embedder import Embedder
from talking_head.nets.generator import Generator
from talking_head.nets.losses import lip_box
from talking_head.nets.warp import warp_episodes
from talking_head.training.data import EpisodeDataset


def fixed_batch(dataset: EpisodeDataset, count: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The same ``count`` episodes at every sample step (seeded, no flips)."""
    items = [dataset[(i % len(dataset), 1_000_003 + i)] for i in range(count)]
    return {k: torch.stack([item[k] for item in items]).to(device) for k in items[0]}


def generate(
    embedder: Embedder, generator: Generator, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """ê from the episode's K shots, then x̂ = G(y_t, ê[, warp]); returns (ê, x̂, warp or None)."""
    e_hat = embedder.embed_frames(batch["shot_images"], batch["shot_landmarks"])  # (B, N)
    corners = batch.get("crop_corners")  # (B·n, 2) with n crops per target, or None
    repeats = 1 if corners is None else corners.shape[0] // e_hat.shape[0]
    e_hat = e_hat.repeat_interleave(repeats, dim=0)
    warp = None
    if generator.config.warp_guided:
        with torch.no_grad():  # the warp is an input, not a function of any parameter
            if corners is None:
                warp = warp_episodes(batch["shot_images"], batch["shot_points"], batch["target_points"])
            else:  # warped to the whole frame's points, then cut like the target
                warp = warp_episodes(batch["shot_images"], batch["shot_points"], batch["frame_points"])
                warp = _crop(warp.repeat_interleave(repeats, dim=0), corners, batch["target_image"].shape[-1])
    return e_hat, generator(batch["target_landmarks"], e_hat, warp=warp), warp


def _crop_corners(points: torch.Tensor, image_size: int, size: int, mouth_share: float) -> torch.Tensor:
    """(B, 2) integer (x, y) top-left corners of ``size``² crops inside an ``image_size``² frame.

    A ``mouth_share`` of them (drawn per sample) centre on the lips of
    ``points`` (B, 68, 2), jittered by up to size/8; the others lie anywhere.
    """
    room = image_size - size
    anywhere = torch.rand(points.shape[0], 2, device=points.device) * room
    low, high = lip_box(points)
    centre = (low + high) / 2
    jitter = (torch.rand(points.shape[0], 2, device=points.device) * 2 - 1) * (size / 8)
    on_mouth = centre + jitter - size / 2
    chosen = torch.where(
        torch.rand(points.shape[0], 1, device=points.device) < mouth_share, on_mouth, anywhere
    )
    return chosen.round().clamp(0, room).long()


def _crop(images: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, S, S) → (B, C, size, size): each image cut at its own corner (B, 2) (x, y)."""
    return torch.stack(
        [image[:, y : y + size, x : x + size] for image, (x, y) in zip(images, corners.tolist())]
    )


def crop_targets(
    batch: dict[str, torch.Tensor], size: int, mouth_share: float, per_target: int = 1
) -> dict[str, torch.Tensor]:
    """The batch with its targets (image, landmark image, points, video index) cut to ``size``² crops.

    ``per_target`` crops of each target, in a row (B·n targets for B episodes:
    the shots stay B, embedded once). The corners travel as ``crop_corners``
    and the whole-frame target points (B, 68, 2) as ``frame_points``, so that
    :func:`generate` makes the warp of the whole frame and cuts it the same way.
    """
    image_size = batch["target_image"].shape[-1]
    if size >= image_size:
        raise TalkingHeadError(f"crop_size {size} must be smaller than the image size {image_size}")
    targets = {
        key: batch[key].repeat_interleave(per_target, dim=0)
        for key in ("target_image", "target_landmarks", "target_points", "video_index")
    }
    corners = _crop_corners(targets["target_points"], image_size, size, mouth_share)
    return {
        **batch,
        "target_image": _crop(targets["target_image"], corners, size),
        "target_landmarks": _crop(targets["target_landmarks"], corners, size),
        "target_points": targets["target_points"] - corners[:, None].to(targets["target_points"].dtype),
        "video_index": targets["video_index"],
        "crop_corners": corners,
        "frame_points": batch["target_points"],
    }

"""The networks' image convention: RGB uint8 ``(B, H, W, 3)`` ↔ float ``(B, 3, H, W)`` in [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch


def images_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 ``(B, H, W, 3)`` → float ``(B, 3, H, W)`` in [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def tensor_to_images(tensor: torch.Tensor) -> np.ndarray:
    """Float ``(B, 3, H, W)`` in [-1, 1] → RGB uint8 ``(B, H, W, 3)`` on the CPU."""
    scaled = tensor.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255)
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

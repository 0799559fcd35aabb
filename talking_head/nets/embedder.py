"""Embedder E(x, y; φ) → ê: the person embedding of Zakharov et al. 2019."""

from __future__ import annotations

import torch
from torch import nn

from talking_head.nets.config import ModelConfig
from talking_head.nets.layers import ResBlockDown, SelfAttention


class Embedder(nn.Module):
    """E: maps a frame x and its landmark image y to ê ∈ R^N.

    Residual down-blocks without normalization (``config.embedder_channels``,
    image_size → 4×4), self-attention after the block that outputs
    ``config.embedder_attention_size``, global sum pooling, then ReLU.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        in_ch, size = config.image_channels + config.landmark_channels, config.image_size
        for i, out_ch in enumerate(config.embedder_channels):
            blocks.append(ResBlockDown(in_ch, out_ch, preactivation=i > 0))
            in_ch, size = out_ch, size // 2
            if size == config.embedder_attention_size:
                blocks.append(SelfAttention(out_ch))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: frames (B, 3, H, W) in [-1, 1]; y: landmark images (B, 3, H, W) → ê (B, N)."""
        h = self.blocks(torch.cat([x, y], dim=1))  # (B, N, 4, 4)
        return torch.relu(h.sum(dim=(2, 3)))  # (B, N)

    def embed_frames(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ê_i = mean over K frames: x, y (B, K, 3, H, W) → (B, N)."""
        b, k = x.shape[:2]
        e = self(x.flatten(0, 1), y.flatten(0, 1))  # (B·K, N)
        return e.view(b, k, -1).mean(dim=1)

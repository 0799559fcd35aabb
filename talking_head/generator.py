"""Generator G(y, ê; ψ, P) → x̂ of Zakharov et al. 2019, with the projection P."""

from __future__ import annotations

import torch
from torch import nn

from talking_head.config import ModelConfig
from talking_head.layers import AdaINResBlock, ResBlockDown, ResBlockUp, SelfAttention, adain, sn_conv, sn_linear


class Generator(nn.Module):
    """G: renders a frame from a landmark image y and AdaIN parameters ψ̂ = P·ê.

    - down path: res-down blocks with instance norm (``generator_down_channels``),
      self-attention at ``generator_down_attention_size``;
    - bottleneck: ``generator_bottleneck_blocks`` AdaIN res blocks;
    - up path: AdaIN res-up blocks (``generator_up_channels``), self-attention
      at ``generator_up_attention_size``;
    - head: AdaIN → ReLU → 3×3 conv → tanh.

    ψ (``generator`` weights) is person-generic; the AdaIN scales and biases come
    from ``project(ê)`` (P, spectral-normalized, no bias) or are given directly
    (fine-tuning's person-specific ψ').
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        down: list[nn.Module] = []
        in_ch, size = config.landmark_channels, config.image_size
        for i, out_ch in enumerate(config.generator_down_channels):
            down.append(ResBlockDown(in_ch, out_ch, norm="instance", preactivation=i > 0))
            in_ch, size = out_ch, size // 2
            if size == config.generator_down_attention_size:
                down.append(SelfAttention(out_ch))
        self.down = nn.Sequential(*down)
        # AdaIN blocks take ψ slices, so they live in a ModuleList walked in forward().
        self.adain_blocks = nn.ModuleList()
        for _ in range(config.generator_bottleneck_blocks):
            self.adain_blocks.append(AdaINResBlock(in_ch, in_ch))
        self.up_attention_index = -1  # index in adain_blocks after which attention runs
        for out_ch in config.generator_up_channels:
            self.adain_blocks.append(ResBlockUp(in_ch, out_ch))
            in_ch, size = out_ch, size * 2
            if size == config.generator_up_attention_size:
                self.up_attention_index = len(self.adain_blocks) - 1
        attn_width = self.adain_blocks[self.up_attention_index].out_ch
        self.up_attention = SelfAttention(attn_width) if self.up_attention_index >= 0 else None
        self.head_channels = in_ch
        self.head_conv = sn_conv(in_ch, config.image_channels)
        self.n_adain_params = sum(b.n_adain_params for b in self.adain_blocks) + 2 * in_ch
        # P: ê (N) → ψ̂ (n_adain_params); "a learned matrix", so no bias.
        self.projection = sn_linear(config.embedding_dim, self.n_adain_params, bias=False)

    def project(self, e: torch.Tensor) -> torch.Tensor:
        """ψ̂ = P·ê: (B, N) → (B, n_adain_params)."""
        return self.projection(e)

    def forward(
        self, y: torch.Tensor, e: torch.Tensor | None = None, adain_params: torch.Tensor | None = None
    ) -> torch.Tensor:
        """y: landmark images (B, 3, H, W); give ê (B, N) or ψ (B, n) / (n,) → x̂ (B, 3, H, W) in [-1, 1]."""
        if (e is None) == (adain_params is None):
            raise ValueError("pass exactly one of e (embedding) or adain_params (ψ)")
        params = self.project(e) if adain_params is None else adain_params
        if params.dim() == 1:
            params = params.unsqueeze(0)
        if params.shape[-1] != self.n_adain_params:
            raise ValueError(f"adain_params has {params.shape[-1]} entries, G needs {self.n_adain_params}")
        params = params.expand(y.shape[0], -1)  # one ψ shared by a batch, or one per sample
        h = self.down(y)  # (B, C, H/2^d, W/2^d)
        offset = 0
        for i, block in enumerate(self.adain_blocks):
            h = block(h, params[:, offset : offset + block.n_adain_params])
            offset += block.n_adain_params
            if i == self.up_attention_index:
                h = self.up_attention(h)
        c = self.head_channels
        h = torch.relu(adain(h, params[:, offset : offset + c], params[:, offset + c : offset + 2 * c]))
        return torch.tanh(self.head_conv(h))  # (B, 3, H, W)

"""Generator G(y, ê; ψ, P) → x̂ of Zakharov et al. 2019, with the projection P; optionally warp-guided (DESIGN §7)."""

from __future__ import annotations

import torch
from torch import nn

from talking_head.nets.config import ModelConfig
from talking_head.nets.layers import (
    AdaINResBlock,
    ResBlockDown,
    ResBlockUp,
    SelfAttention,
    adain,
    sn_conv,
    sn_linear,
)

# Channels of the warp-guided head: a residual over the warp (RGB) and the logit of the blend mask α.
_WARP_HEAD_CHANNELS = 4


class Generator(nn.Module):
    """G: renders a frame from a landmark image y and AdaIN parameters ψ̂ = P·ê.

    - down path: res-down blocks with instance norm (``generator_down_channels``),
      self-attention at ``generator_down_attention_size``;
    - bottleneck: ``generator_bottleneck_blocks`` AdaIN res blocks;
    - up path: AdaIN res-up blocks (``generator_up_channels``), self-attention
      at ``generator_up_attention_size``; with ``generator_skips`` each up
      block's output gets a 1×1 projection of the down-path features of the
      same resolution added (U-Net), so fine detail need not pass the 16×16
      bottleneck;
    - head: AdaIN → ReLU → 3×3 conv → tanh (the paper's).

    Warp-guided (``config.warp_guided``): G's input is y concatenated with the
    person's shots warped to y's landmarks (:mod:`talking_head.nets.warp`), and the
    head (AdaIN → ReLU → 3×3 conv) outputs a residual Δ over the warp and a
    blend-mask logit m: rgb = warp + Δ, α = sigmoid(m),
    x̂ = α·warp + (1 − α)·rgb. That head conv starts at zero (and carries no
    spectral norm: σ of a zero matrix is 0), so an untrained G returns the
    warp exactly and training only has to add what a warp cannot paint.

    ψ (``generator`` weights) is person-generic; the AdaIN scales and biases come
    from ``project(ê)`` (P, spectral-normalized, no bias) or are given directly
    (fine-tuning's person-specific ψ').
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        down: list[nn.Module] = []
        in_ch, size = config.landmark_channels, config.image_size
        if config.warp_guided:
            in_ch += config.image_channels
        skip_sources = {size: in_ch}  # feature-map side → width of the down-path output at that side
        for i, out_ch in enumerate(config.generator_down_channels):
            down.append(ResBlockDown(in_ch, out_ch, norm="instance", preactivation=i > 0))
            in_ch, size = out_ch, size // 2
            if size == config.generator_down_attention_size:
                down.append(SelfAttention(out_ch))
            skip_sources[size] = out_ch
        self.down = nn.Sequential(*down)
        # AdaIN blocks take ψ slices, so they live in a ModuleList walked in forward().
        self.adain_blocks = nn.ModuleList()
        for _ in range(config.generator_bottleneck_blocks):
            self.adain_blocks.append(AdaINResBlock(in_ch, in_ch))
        self.up_attention_index = -1  # index in adain_blocks after which attention runs
        self.skips = nn.ModuleDict()  # str(index in adain_blocks) → 1×1 projection of the down features
        for out_ch in config.generator_up_channels:
            self.adain_blocks.append(ResBlockUp(in_ch, out_ch))
            in_ch, size = out_ch, size * 2
            if config.generator_skips:
                self.skips[str(len(self.adain_blocks) - 1)] = sn_conv(skip_sources[size], out_ch, 1)
            if size == config.generator_up_attention_size:
                self.up_attention_index = len(self.adain_blocks) - 1
        attn_width = self.adain_blocks[self.up_attention_index].out_ch
        self.up_attention = SelfAttention(attn_width) if self.up_attention_index >= 0 else None
        self.head_channels = in_ch
        if config.warp_guided:
            self.warp_head = nn.Conv2d(in_ch, _WARP_HEAD_CHANNELS, 3, padding=1)
            nn.init.zeros_(self.warp_head.weight)
            nn.init.zeros_(self.warp_head.bias)
        else:
            self.head_conv = sn_conv(in_ch, config.image_channels)
        self.n_adain_params = sum(b.n_adain_params for b in self.adain_blocks) + 2 * in_ch
        # P: ê (N) → ψ̂ (n_adain_params); "a learned matrix", so no bias.
        self.projection = sn_linear(config.embedding_dim, self.n_adain_params, bias=False)

    def project(self, e: torch.Tensor) -> torch.Tensor:
        """ψ̂ = P·ê: (B, N) → (B, n_adain_params)."""
        return self.projection(e)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The down path; with skips, also its output at each feature-map side (the input included)."""
        if not self.config.generator_skips:
            return self.down(x), {}
        features = {x.shape[-1]: x}
        h = x
        for layer in self.down:
            h = layer(h)
            features[h.shape[-1]] = h  # attention keeps the side: it replaces that block's entry
        return h, features

    def forward(
        self,
        y: torch.Tensor,
        e: torch.Tensor | None = None,
        adain_params: torch.Tensor | None = None,
        warp: torch.Tensor | None = None,
        return_mask: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """y: landmark images (B, 3, H, W); give ê (B, N) or ψ (B, n) / (n,) → x̂ (B, 3, H, W) in [-1, 1].

        ``warp`` (B, 3, H, W): the shots warped to y's landmarks, required
        when the model is warp-guided. ``return_mask`` also returns the blend
        mask α (B, 1, H, W) (ones for a model that is not warp-guided).
        """
        if (e is None) == (adain_params is None):
            raise ValueError("pass exactly one of e (embedding) or adain_params (ψ)")
        if self.config.warp_guided and warp is None:
            raise ValueError("this generator is warp-guided: pass warp, the shots warped to y's landmarks")
        params = self.project(e) if adain_params is None else adain_params
        if params.dim() == 1:
            params = params.unsqueeze(0)
        if params.shape[-1] != self.n_adain_params:
            raise ValueError(f"adain_params has {params.shape[-1]} entries, G needs {self.n_adain_params}")
        params = params.expand(y.shape[0], -1)  # one ψ shared by a batch, or one per sample
        x = torch.cat([y, warp.to(y.dtype)], dim=1) if self.config.warp_guided else y  # (B, 3 or 6, H, W)
        h, features = self._encode(x)  # (B, C, H/2^d, W/2^d)
        offset = 0
        for i, block in enumerate(self.adain_blocks):
            h = block(h, params[:, offset : offset + block.n_adain_params])
            offset += block.n_adain_params
            if str(i) in self.skips:
                h = h + self.skips[str(i)](features[h.shape[-1]])
            if i == self.up_attention_index:
                h = self.up_attention(h)
        c = self.head_channels
        h = torch.relu(adain(h, params[:, offset : offset + c], params[:, offset + c : offset + 2 * c]))
        if not self.config.warp_guided:
            x_hat = torch.tanh(self.head_conv(h))  # (B, 3, H, W)
            return (x_hat, torch.ones_like(x_hat[:, :1])) if return_mask else x_hat
        out = self.warp_head(h)  # (B, 4, H, W)
        warp = warp.to(out.dtype)
        alpha = torch.sigmoid(out[:, 3:])  # (B, 1, H, W)
        rgb = warp + out[:, :3]
        x_hat = alpha * warp + (1 - alpha) * rgb
        return (x_hat, alpha) if return_mask else x_hat

"""Building blocks shared by E, G and D (Zakharov et al. 2019, BigGAN/SAGAN style).

Every conv and linear layer is spectrally normalized (``sn_conv``/``sn_linear``,
also used for P and W). Residual blocks are BigGAN's: pre-activation, a
learnable 1×1 skip only where the width changes, average pooling to go down and
nearest-neighbour upsampling to go up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv(in_ch: int, out_ch: int, kernel_size: int = 3, bias: bool = True) -> nn.Module:
    """Spectral-normalized ``Conv2d`` with 'same' padding."""
    return spectral_norm(nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias))


def sn_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    """Spectral-normalized ``Linear``."""
    return spectral_norm(nn.Linear(in_features, out_features, bias=bias))


def sn_embedding(num_embeddings: int, dim: int) -> nn.Module:
    """Spectral-normalized ``Embedding`` (the per-video table W of D)."""
    return spectral_norm(nn.Embedding(num_embeddings, dim))


def adain(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance norm: ``(1 + scale) · IN(x) + bias``.

    x: (B, C, H, W); scale, bias: (B, C). The paper does not say how ψ maps to
    the AdaIN scale; we use ``1 + scale`` so that ψ = 0 is a plain instance
    norm, which keeps signal flowing when P·ê is small at initialization.
    """
    x = F.instance_norm(x, eps=eps)
    return x * (1 + scale[:, :, None, None]) + bias[:, :, None, None]


def _split_scale_bias(params: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2C) → scale (B, C), bias (B, C)."""
    return params[:, :channels], params[:, channels:]


class SelfAttention(nn.Module):
    """SAGAN self-attention in BigGAN's form; ``gamma`` starts at 0 so the block starts as identity.

    Keys and values are max-pooled 2× (BigGAN), which cuts the cost of the
    attention map by 4 — it matters at 64×64 in G.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = sn_conv(channels, channels // 8, 1, bias=False)
        self.key = sn_conv(channels, channels // 8, 1, bias=False)
        self.value = sn_conv(channels, channels // 2, 1, bias=False)
        self.out = sn_conv(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, C/8)
        k = F.max_pool2d(self.key(x), 2).flatten(2).transpose(1, 2)  # (B, HW/4, C/8)
        v = F.max_pool2d(self.value(x), 2).flatten(2).transpose(1, 2)  # (B, HW/4, C/2)
        # softmax(q kᵀ) v without the 1/√d scaling (SAGAN).
        if x.is_cuda:  # fused kernels never build the (HW × HW/4) map: 4M entries per image at 64×64
            o = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=1.0).squeeze(1)
        else:  # torch's CPU build falls back to a slower unfused path for these head sizes
            o = torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1), v)  # (B, HW, C/2)
        o = o.transpose(1, 2).reshape(b, c // 2, h, w)  # (B, C/2, H, W)
        return x + self.gamma * self.out(o)


class ResBlockDown(nn.Module):
    """BigGAN residual down-block: [norm] → ReLU → conv → [norm] → ReLU → conv → avg-pool, plus skip.

    ``preactivation=False`` drops the first norm/ReLU (for the block that sees
    the raw image). ``norm="instance"`` gives G's down path; ``None`` gives E/D.
    ``downsample=False`` gives D's extra block at 4×4.
    """

    def __init__(
        self, in_ch: int, out_ch: int, norm: str | None = None, preactivation: bool = True, downsample: bool = True
    ) -> None:
        super().__init__()
        if norm not in (None, "instance"):
            raise ValueError(f"norm must be None or 'instance', got {norm!r}")
        self.preactivation = preactivation
        self.downsample = downsample
        make_norm = (lambda c: nn.InstanceNorm2d(c, affine=True)) if norm else (lambda c: nn.Identity())
        self.norm1 = make_norm(in_ch) if preactivation else nn.Identity()
        self.conv1 = sn_conv(in_ch, out_ch)
        self.norm2 = make_norm(out_ch)
        self.conv2 = sn_conv(out_ch, out_ch)
        self.skip = sn_conv(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) → (B, Cout, H/2, W/2)
        h = F.relu(self.norm1(x)) if self.preactivation else x
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        s = x
        if self.downsample:
            h = F.avg_pool2d(h, 2)
            s = F.avg_pool2d(s, 2)  # pool before the 1×1 conv: same result, 4× cheaper
        if self.skip is not None:
            s = self.skip(s)
        return h + s


class AdaINResBlock(nn.Module):
    """Residual block with AdaIN, optionally upsampling 2× (G's bottleneck and up path).

    AdaIN → ReLU → [up] → conv → AdaIN → ReLU → conv, plus a ([up], 1×1 conv) skip.
    Each of the two norms has its OWN scale and bias, taken from
    ``params`` (B, n_adain_params) in the order (scale1, bias1, scale2, bias2).
    """

    def __init__(self, in_ch: int, out_ch: int, upsample: bool = False) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.upsample = in_ch, out_ch, upsample
        self.conv1 = sn_conv(in_ch, out_ch)
        self.conv2 = sn_conv(out_ch, out_ch)
        self.skip = sn_conv(in_ch, out_ch, 1) if in_ch != out_ch else None

    @property
    def n_adain_params(self) -> int:
        """Number of ψ entries this block consumes: a (scale, bias) pair per norm."""
        return 2 * (self.in_ch + self.out_ch)

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        p1, p2 = params[:, : 2 * self.in_ch], params[:, 2 * self.in_ch :]
        h = F.relu(adain(x, *_split_scale_bias(p1, self.in_ch)))
        # 1×1 conv before the upsampling: same result (both are per-pixel), 4× cheaper.
        s = x if self.skip is None else self.skip(x)
        if self.upsample:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, Cin, 2H, 2W)
            s = F.interpolate(s, scale_factor=2.0, mode="nearest")  # (B, Cout, 2H, 2W)
        h = self.conv1(h)
        h = self.conv2(F.relu(adain(h, *_split_scale_bias(p2, self.out_ch))))
        return h + s


class ResBlockUp(AdaINResBlock):
    """BigGAN residual up-block with AdaIN (G's up path): :class:`AdaINResBlock` with ``upsample=True``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(in_ch, out_ch, upsample=True)

"""Lip-square patch discriminator D_lip (ours, not in the paper): the adversarial loss where the blur is.

Pixel-aligned losses (L1, SSIM) are lowest for the mean of all mouths G has
seen: a pale band where teeth and a dark interior should be. The paper's
answer to blur is the adversarial loss with feature matching; its D scores
the whole frame, where the mouth is a few percent of the pixels. D_lip looks
only at the square around the lips (the mouth region of ``evaluate``,
resampled to 64²), conditioned on the same square of the landmark image, and
scores overlapping patches (a PatchGAN), so a blurred band cannot pass for
teeth anywhere in it.

Input: the lip square of x or x̂ and of y, concatenated (B, 6, 64, 64).
Output: one raw score per sample (the mean of the patch logits, for the hinge
loss) and the activations of each block (for feature matching).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from talking_head.nets.layers import sn_conv
from talking_head.nets.losses import MOUTH_SSIM_SIZE, mouth_squares

LIP_SQUARE_SIZE = MOUTH_SSIM_SIZE  # side the lip square is resampled to (64, as evaluate's mouth metrics)


class LipDiscriminator(nn.Module):
    """D_lip: spectral-normalized 4×4 stride-2 convs (64² → 8²), then a 3×3 conv to one logit per patch."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), in_channels: int = 6) -> None:
        super().__init__()
        layers, width = [], in_channels
        for out in channels:
            layers.append(spectral_norm(nn.Conv2d(width, out, kernel_size=4, stride=2, padding=1)))
            width = out
        self.downs = nn.ModuleList(layers)
        self.head = sn_conv(width, 1, kernel_size=3)

    def forward(self, squares: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 6, S, S) lip squares (image and landmarks) → scores (B,), block activations."""
        feats, h = [], squares
        for conv in self.downs:
            h = F.leaky_relu(conv(h), 0.2)  # (B, C, S/2, S/2)
            feats.append(h)
        patches = self.head(h)  # (B, 1, 8, 8) for 64² squares
        return patches.flatten(1).mean(dim=1), feats


def lip_inputs(
    images: torch.Tensor, landmark_images: torch.Tensor, points: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The lip squares of ``images`` and ``landmark_images`` side by side, (B, 6, 64, 64), and which fit.

    ``points`` ``(B, 68, 2)`` in pixels of the images. The second value is a
    (B,) bool: squares that lie inside their image (a crop may cut the mouth off).
    """
    both = torch.cat([images.float(), landmark_images.float()], dim=1)
    return mouth_squares(both, points, size=LIP_SQUARE_SIZE)

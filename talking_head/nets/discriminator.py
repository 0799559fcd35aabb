"""Projection discriminator D(x, y, i; θ, W, w0, b) of Zakharov et al. 2019."""

from __future__ import annotations

import torch
from torch import nn

from talking_head.nets.config import ModelConfig
from talking_head.nets.layers import ResBlockDown, SelfAttention, sn_embedding

# Prefix of the per-video table W in the state dict; W is training state, never exported.
VIDEO_TABLE_PREFIX = "video_table."


class Discriminator(nn.Module):
    """D: realism score V(x, y; θ)ᵀ (W_i + w0) + b, plus block activations for feature matching.

    - V (θ): res-down blocks without normalization (``discriminator_channels``,
      image_size → 4×4), self-attention at ``discriminator_attention_size``,
      ``discriminator_extra_blocks`` res blocks at 4×4, sum pooling, ReLU → (B, N).
    - W: per-video table (``num_videos`` rows of N), spectral-normalized as a
      matrix; created/resized with :meth:`set_num_videos`. Not exported.
    - w0 (N), b (scalar): shared, exported with θ.

    The score is a raw logit: the hinge loss takes it as is (no sigmoid).
    """

    def __init__(self, config: ModelConfig, num_videos: int = 0) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        self.feature_indices: list[int] = []  # which entries of `blocks` are residual blocks
        in_ch, size = config.image_channels + config.landmark_channels, config.image_size
        for i, out_ch in enumerate(config.discriminator_channels):
            self.feature_indices.append(len(blocks))
            blocks.append(ResBlockDown(in_ch, out_ch, preactivation=i > 0))
            in_ch, size = out_ch, size // 2
            if size == config.discriminator_attention_size:
                blocks.append(SelfAttention(out_ch))
        for _ in range(config.discriminator_extra_blocks):
            self.feature_indices.append(len(blocks))
            blocks.append(ResBlockDown(in_ch, in_ch, downsample=False))
        self.blocks = nn.ModuleList(blocks)
        self.w0 = nn.Parameter(torch.zeros(config.embedding_dim))
        self.b = nn.Parameter(torch.zeros(()))
        self.video_table: nn.Module | None = None
        self.set_num_videos(num_videos)

    @property
    def num_videos(self) -> int:
        """Rows of W (0 when D has no per-video table, e.g. after loading exported weights)."""
        return 0 if self.video_table is None else self.video_table.num_embeddings

    def set_num_videos(self, num_videos: int) -> None:
        """Create or resize W to ``num_videos`` rows; existing rows are kept, new rows are random.

        Replaces the parameter: rebuild the optimizer (or its W group) afterwards.
        """
        if num_videos < 0:
            raise ValueError(f"num_videos must be ≥ 0, got {num_videos}")
        old = self.video_table
        if num_videos == 0:
            self.video_table = None
            return
        table = sn_embedding(num_videos, self.config.embedding_dim)
        if old is not None:
            keep = min(num_videos, old.num_embeddings)
            with torch.no_grad():
                original = table.parametrizations.weight.original
                original[:keep] = old.parametrizations.weight.original[:keep]
        self.video_table = table.to(self.w0.device, self.w0.dtype)

    def video_embedding(self, video_index: torch.Tensor) -> torch.Tensor:
        """W_i (spectral-normalized rows) for a batch of video indices (B,) → (B, N); L_MCH compares these to ê_i."""
        if self.video_table is None:
            raise ValueError("this discriminator has no per-video table W; call set_num_videos(n) first")
        return self.video_table(video_index)

    def features(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """V(x, y; θ) (B, N) and the activation after each residual block."""
        h = torch.cat([x, y], dim=1)  # (B, 6, H, W)
        feats: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i in self.feature_indices:
                feats.append(h)
        return torch.relu(h.sum(dim=(2, 3))), feats  # (B, N)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        video_index: torch.Tensor | None = None,
        w: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Score (B,) and features.

        With ``video_index`` (B,): V ᵀ(W_i + w0) + b (meta-learning). With ``w``
        (N,) or (B, N): V ᵀ w + b (fine-tuning's w'). With neither: V ᵀ w0 + b.
        """
        if video_index is not None and w is not None:
            raise ValueError("pass video_index or w, not both")
        v, feats = self.features(x, y)
        if w is None:
            w = self.w0 if video_index is None else self.video_embedding(video_index) + self.w0
        score = (v * w).sum(dim=-1) + self.b  # (B,)
        return score, feats

    def generic_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict of the person-generic part (θ, w0, b), without W."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(VIDEO_TABLE_PREFIX)}

"""How the warps of K shots are blended for one target: by face likeness, and inside the lips by mouth shape.

Each shot is warped to the target by the thin-plate spline (:mod:`talking_head.nets.warp`);
the K warps are then blended with weights ``softmax(−d_k / τ)``:

- over the face, ``d_k`` is the mean landmark distance between shot k and the
  target, in the target's inter-ocular distances (:func:`shot_weights`);
- inside the lips (``mouth_aware``), ``d_k`` compares mouth *shapes* only: the
  20 lip points of each, centred on their own mean (:func:`mouth_shot_weights`).
  A photo that shows its teeth is the best evidence for a target whose
  mouth opens the same way, whatever the rest of the face does; the
  face-wide distance would prefer a shot with the same head pose instead.
  The lip region is a soft ellipse around the target's lips (:func:`mouth_mask`).

With one shot there is nothing to blend and both give that shot's warp.
"""

from __future__ import annotations

import torch

# Landmark indices of the outer eye corners (iBUG 68): the face's scale for distances.
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45
MOUTH = slice(48, 68)  # outer and inner lips
# Softmax temperature of the K-shot weights, in inter-ocular distances.
DEFAULT_TEMPERATURE = 0.002
# Whether renders blend the lips by mouth shape (warp_shots' default). Chosen on val's select half
# (6 clips, 8 shots, shipped weights, fp32): mouth SSIM of the warp 0.838 → 0.853 and of FF 0.852 → 0.856,
# better or equal on every clip, SSIM unchanged (0.752); the report half's numbers are in docs/WARP.md.
MOUTH_AWARE = True
# The lip region: the lips' box half-sides times these (x, y), feathered over this share of its radius.
MOUTH_REACH = (1.35, 1.8)
MOUTH_FEATHER = 0.25


def inter_ocular(points: torch.Tensor) -> torch.Tensor:
    """Outer-eye-corner distance of ``(..., 68, 2)`` landmarks → ``(...)``."""
    return (points[..., LEFT_EYE_OUTER, :] - points[..., RIGHT_EYE_OUTER, :]).norm(dim=-1)


def _per_target(shot_points: torch.Tensor) -> torch.Tensor:
    """``(K, 68, 2)`` shared or ``(B, K, 68, 2)`` per target → ``(B or 1, K, 68, 2)`` float."""
    return shot_points.float() if shot_points.dim() == 4 else shot_points.float()[None]


def shot_weights(
    shot_points: torch.Tensor, target_points: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> torch.Tensor:
    """Blend weights of K shots for B targets, rows summing to 1: → ``(B, K)``.

    ``shot_points``: ``(K, 68, 2)`` shared by all targets, or ``(B, K, 68, 2)``
    per target; ``target_points``: ``(B, 68, 2)``. The distance of shot k to
    target b is the mean landmark distance divided by the target's
    inter-ocular distance; weights are ``softmax(−d / τ)``.
    """
    diff = target_points[:, None].float() - _per_target(shot_points)  # (B, K, 68, 2)
    distance = diff.norm(dim=-1).mean(-1) / inter_ocular(target_points.float()).clamp_min(1.0)[:, None]
    return torch.softmax(-distance / temperature, dim=1)


def mouth_shot_weights(
    shot_points: torch.Tensor, target_points: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> torch.Tensor:
    """Like :func:`shot_weights` on the mouth's shape only: each mouth's 20 points about their own mean."""
    shots = _per_target(shot_points)[..., MOUTH, :]
    target = target_points.float()[:, None, MOUTH, :]
    shape = lambda points: points - points.mean(dim=-2, keepdim=True)
    distance = (shape(target) - shape(shots)).norm(dim=-1).mean(-1)
    distance = distance / inter_ocular(target_points.float()).clamp_min(1.0)[:, None]
    return torch.softmax(-distance / temperature, dim=1)


def mouth_mask(target_points: torch.Tensor, image_size: int) -> torch.Tensor:
    """The lip region of each target: ``(B, 1, S, S)`` in [0, 1], 1 on the lips, fading out around them."""
    lips = target_points.float()[:, MOUTH]  # (B, 20, 2)
    low, high = lips.amin(dim=1), lips.amax(dim=1)
    centre = (low + high) / 2
    reach = torch.tensor(MOUTH_REACH, device=lips.device)
    floor = (
        0.1 * inter_ocular(target_points.float()).clamp_min(1.0)[:, None]
    )  # a closed mouth is still a region
    half = torch.maximum((high - low) / 2, floor) * reach  # (B, 2)
    axis = torch.arange(image_size, device=lips.device, dtype=torch.float32)
    dx = (axis[None, None, :] - centre[:, 0, None, None]) / half[:, 0, None, None]
    dy = (axis[None, :, None] - centre[:, 1, None, None]) / half[:, 1, None, None]
    radius = torch.sqrt(dx**2 + dy**2)  # (B, S, S)
    return ((1 - radius) / MOUTH_FEATHER + 0.5).clamp(0, 1)[:, None]


def blend_warps(
    warped: list[torch.Tensor],
    shot_points: torch.Tensor,
    target_points: torch.Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    mouth_aware: bool = False,
) -> torch.Tensor:
    """The K warps ``(B, C, S, S)`` each, blended per target (see the module docstring) → ``(B, C, S, S)``."""
    if len(warped) == 1:
        return warped[0]
    dtype = warped[0].dtype
    weights = shot_weights(shot_points, target_points, temperature).to(dtype)  # (B, K)
    face = sum(w[:, None, None, None] * image for w, image in zip(weights.unbind(1), warped))
    if not mouth_aware:
        return face
    lips = mouth_shot_weights(shot_points, target_points, temperature).to(dtype)
    mouth = sum(w[:, None, None, None] * image for w, image in zip(lips.unbind(1), warped))
    mask = mouth_mask(target_points, warped[0].shape[-1]).to(dtype)
    return face + mask * (mouth - face)

"""Losses of the few-shot talking-head model (Zakharov et al., 2019, Sec. 3.2 and 3.4).

Generator side (E, G and, in meta-learning, the embeddings W):

    L = L_CNT(x, x̂) + L_ADV(x̂, y, i) + L_MCH(ê_i, W_i)
    L_CNT = w_vgg19 · Σ_l |VGG19_l(x) − VGG19_l(x̂)|₁ + w_vggface · Σ_l |VGGFace_l(x) − VGGFace_l(x̂)|₁
    L_ADV = w_adv · (−D(x̂, y, i)) + w_fm · Σ_k |D_k(x) − D_k(x̂)|₁
    L_MCH = w_mch · |ê_i − W_i|₁                      (FT variant only)

Discriminator side: the hinge loss. Every function here is pure (tensors in,
scalar tensor out) and unweighted except ``ContentLoss``, which applies the
content weights of its ``LossConfig``; the trainer multiplies the others by
``LossConfig.adversarial_weight`` etc.

Every loss runs in float32 with autocast switched off inside it
(:func:`talking_head.nets.precision.float32_loss`), whatever precision the networks run in. Under bf16
autocast a convolution, a mean or a product stays bf16 even when its inputs
were cast to float32 first, and bf16's 8-bit mantissa breaks the SSIM-type
terms: a variance computed as E[x²] − E[x]² cancels to large negative values,
the SSIM ratio's denominator reaches 0, and one −inf turns every weight into
NaN a step later (seen at step 14–30 of 40 fine-tuning steps on 3 of 12 val
faces). The networks themselves may stay bf16.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from talking_head.errors import WeightsError
from talking_head.nets.perceptual import VGG19Features, VGGFaceFeatures, load_vgg_weights
from talking_head.nets.precision import float32_loss

logger = logging.getLogger(__name__)

CONTENT_LOSS_CHOICES = ("auto", "vgg", "pixel")
ENV_VGG19 = "TALKING_HEAD_VGG19"
ENV_VGGFACE = "TALKING_HEAD_VGGFACE"


def _env_source(name: str) -> str | None:
    return os.environ.get(name) or None


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and the content-loss setup; defaults are the arXiv v2 weights.

    ``LossConfig.arxiv_v1()`` gives the weights of the first arXiv version.
    """

    vgg19_weight: float = 1.5e-1  # weight of the VGG19 (ImageNet) part of L_CNT
    vggface_weight: float = 2.5e-2  # weight of the VGGFace part of L_CNT
    adversarial_weight: float = 1.0  # weight of −D(x̂) in L_ADV
    feature_matching_weight: float = 10.0  # weight of the feature-matching part of L_ADV
    embedding_match_weight: float = 10.0  # weight of L_MCH = |ê − W|₁ (FT variant only; 0 disables)
    pixel_weight: float = 1.0  # weight of the pixel-space content loss used when VGG weights are unavailable
    mouth_weight: float = (
        0.0  # weight of an extra L1 inside the target's lip square (warp-guided training; 0 = off)
    )
    ssim_weight: float = 0.0  # weight of 1 − SSIM of the whole target (0 = off)
    mouth_ssim_weight: float = 0.0  # weight of 1 − SSIM of the lip square, as evaluate scores it (0 = off)
    detail_weight: float = 0.0  # weight of the local detail-energy match (detail_loss; 0 = off)
    lip_adversarial_weight: float = 0.0  # weight of −D_lip(x̂) on the lip square (0 with 0 below: no D_lip)
    lip_feature_matching_weight: float = 0.0  # weight of feature matching on D_lip's activations
    content_loss: str = "auto"  # "vgg" (VGG required), "pixel", or "auto" (VGG if it loads, else pixel)
    # local .safetensors/.pth file or Hub "repo_id[:filename]"; default: env TALKING_HEAD_VGG19
    vgg19_source: str | None = field(default_factory=lambda: _env_source(ENV_VGG19))
    # same for VGG-Face; default: env TALKING_HEAD_VGGFACE
    vggface_source: str | None = field(default_factory=lambda: _env_source(ENV_VGGFACE))
    vggface_channel_order: str = "bgr"  # "bgr" for Caffe-converted VGG-Face weights, "rgb" for Torch7 ports

    def __post_init__(self) -> None:
        problems = []
        if self.content_loss not in CONTENT_LOSS_CHOICES:
            problems.append(
                f"content_loss must be one of {', '.join(CONTENT_LOSS_CHOICES)}, got {self.content_loss!r}"
            )
        if self.vggface_channel_order not in ("bgr", "rgb"):
            problems.append(
                f"vggface_channel_order must be 'bgr' or 'rgb', got {self.vggface_channel_order!r}"
            )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_weight") and not (isinstance(value, (int, float)) and value >= 0):
                problems.append(f"{f.name} must be a number >= 0, got {value!r}")
        if problems:
            raise ValueError("invalid LossConfig: " + "; ".join(problems))

    @property
    def adversarial_on(self) -> bool:
        """Whether the generator's loss has an adversarial term (−D(x̂) or feature matching), so D must run."""
        return self.adversarial_weight > 0 or self.feature_matching_weight > 0

    @property
    def lip_adversarial_on(self) -> bool:
        """Whether training has the lip-square discriminator D_lip (either of its weights above 0)."""
        return self.lip_adversarial_weight > 0 or self.lip_feature_matching_weight > 0

    @classmethod
    def arxiv_v1(cls, **overrides: Any) -> LossConfig:
        """The weights of arXiv v1 (1905.08233v1): VGG19 1e-2, VGGFace 2e-3, match 80."""
        return cls(**{**ARXIV_V1_WEIGHTS, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LossConfig:
        """Build from a dict; unknown keys raise ``ValueError`` naming them, missing keys take defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown LossConfig keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)


ARXIV_V1_WEIGHTS: dict[str, float] = {
    "vgg19_weight": 1e-2,
    "vggface_weight": 2e-3,
    "embedding_match_weight": 80.0,
}
"""LossConfig fields that differ in arXiv v1 from the v2 defaults."""


# Lip landmarks (iBUG 68) and the padding of the square around them: the mouth region of evaluate.
_LIPS = slice(48, 68)
MOUTH_PAD = 0.25


def lip_box(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Corners (low, high), each (B, 2), of the box around each ``(B, 68, 2)`` landmark set's lips (48–67)."""
    lips = points[:, _LIPS].float()
    return lips.amin(dim=1), lips.amax(dim=1)


def lip_square(points: torch.Tensor, pad: float = MOUTH_PAD) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre (B, 2) and side (B,) of the square around each ``(B, 68, 2)`` landmark set's lips.

    The side is the lips' larger extent plus ``pad`` of it on each side: the mouth region of evaluate.
    """
    low, high = lip_box(points)
    return (low + high) / 2, (high - low).amax(dim=1) * (1 + 2 * pad)


def mouth_mask(points: torch.Tensor, image_size: int, pad: float = MOUTH_PAD) -> torch.Tensor:
    """(B, 1, S, S) masks of the square around each ``(B, 68, 2)`` landmark set's lips, padded ``pad`` a side."""
    centre, side = lip_square(points, pad)
    half = side[:, None] / 2  # (B, 1)
    axis = torch.arange(image_size, device=points.device, dtype=torch.float32)
    inside_x = (axis[None] - centre[:, :1]).abs() <= half  # (B, S)
    inside_y = (axis[None] - centre[:, 1:]).abs() <= half
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]


@float32_loss
def mouth_l1_loss(pred: torch.Tensor, target: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Mean |x̂ − x| inside the lip square of each sample (float32): where a warp cannot paint the mouth."""
    mask = mouth_mask(points, pred.shape[-1])
    diff = (pred.float() - target.float()).abs() * mask
    return diff.sum() / (mask.sum() * pred.shape[1]).clamp_min(1.0)


# SSIM as evaluate computes it (talking_head.evaluation.metrics): 11-tap Gaussian, σ 1.5, K1 0.01, K2 0.03.
_SSIM_TAPS, _SSIM_SIGMA, _SSIM_K1, _SSIM_K2 = 11, 1.5, 0.01, 0.03
MOUTH_SSIM_SIZE = 64  # side the lip square is resampled to before SSIM, as in evaluate


def _ssim_window(device: torch.device) -> torch.Tensor:
    """The normalized 1-D Gaussian of SSIM (float32)."""
    taps = torch.arange(_SSIM_TAPS, device=device, dtype=torch.float32) - (_SSIM_TAPS - 1) / 2
    g = torch.exp(-(taps**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def _ssim_filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of (B, C, H, W) with the 1-D window ``g``, each channel on its own."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


@float32_loss
def ssim_per_sample(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each pair of (B, C, H, W) images in ``[-1, 1]`` (float32) → (B,).

    The same window and constants as the evaluation's SSIM, on the images
    mapped to [0, 1] (its luminance term is not offset-invariant, so [-1, 1]
    would score differently), so 1 − this is the metric itself as a loss: it
    rewards local contrast and structure, where an L1 settles for blur.
    """
    x, y = (pred.float() + 1) / 2, (target.float() + 1) / 2
    c1, c2 = _SSIM_K1**2, _SSIM_K2**2
    g = _ssim_window(x.device)
    mu_x, mu_y = _ssim_filter(x, g), _ssim_filter(y, g)
    var_x = _ssim_filter(x * x, g) - mu_x**2
    var_y = _ssim_filter(y * y, g) - mu_y**2
    cov = _ssim_filter(x * y, g) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean SSIM of (B, C, H, W) images in ``[-1, 1]``."""
    return 1.0 - ssim_per_sample(pred, target).mean()


def mouth_squares(
    images: torch.Tensor, points: torch.Tensor, size: int = MOUTH_SSIM_SIZE, pad: float = MOUTH_PAD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's lip square (side: the lips' larger extent + ``pad`` a side) resampled to ``size``².

    Returns (B, C, size, size) squares (bilinear, differentiable in the
    images) and a (B,) bool of the squares that lie inside their image: a
    crop that cuts the mouth off has nothing to score there.
    """
    b, _, h, w = images.shape
    centre, side = lip_square(points, pad)  # (B, 2) pixel (x, y), pixel centres at integers; (B,)
    inside = ((centre - side[:, None] / 2) >= -0.5).all(dim=1) & (
        (centre + side[:, None] / 2) <= torch.tensor([w, h], device=points.device) - 0.5
    ).all(dim=1)
    theta = images.new_zeros(b, 2, 3, dtype=torch.float32)
    theta[:, 0, 0], theta[:, 1, 1] = side / w, side / h
    theta[:, 0, 2] = (2 * centre[:, 0] + 1) / w - 1  # align_corners=False: pixel i at (2i + 1)/S − 1
    theta[:, 1, 2] = (2 * centre[:, 1] + 1) / h - 1
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images.float(), grid, mode="bilinear", align_corners=False), inside


@float32_loss
def mouth_ssim_loss(pred: torch.Tensor, target: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """1 − SSIM of the lip squares at 64² (the mouth SSIM of evaluate), over the samples whose square fits."""
    squares, inside = mouth_squares(
        torch.cat([pred.float(), target.float()], dim=1), points
    )  # one resampling
    fake, real = squares.split(pred.shape[1], dim=1)
    scores = ssim_per_sample(fake, real)
    keep = inside.float()
    return ((1.0 - scores) * keep).sum() / keep.sum().clamp_min(1.0)


_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))  # cv2.Laplacian's 3×3 kernel
DETAIL_WINDOW = 8  # side of the windows whose Laplacian energy is matched


@float32_loss
def detail_energy(images: torch.Tensor, window: int = DETAIL_WINDOW) -> torch.Tensor:
    """RMS Laplacian of the gray image in each ``window``² tile: (B, 1, H/window, W/window), float32.

    The local form of evaluate's sharpness (variance of the Laplacian):
    large on edges and texture, near zero where an image is blurred.
    """
    gray = images.float().mean(dim=1, keepdim=True)
    kernel = torch.tensor(_LAPLACIAN, device=images.device).view(1, 1, 3, 3)
    lap = F.conv2d(gray, kernel)
    return (F.avg_pool2d(lap**2, window, ceil_mode=True) + 1e-6).sqrt()


@float32_loss
def detail_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |E(x̂) − E(x)| of the tiles' detail energy (:func:`detail_energy`).

    Every pixel-aligned loss (L1, SSIM) is lowest for a blur where G cannot
    tell exactly where an edge lies; this one asks only for as much detail
    in each 8×8 tile as the real frame has, wherever it lies in the tile, so
    it pulls the other way: a stand-in for what the adversarial loss does
    when D cannot be trained long enough (on a CPU).
    """
    return (detail_energy(pred) - detail_energy(target)).abs().mean()


def weighted_extra_terms(
    config: LossConfig, pred: torch.Tensor, target: torch.Tensor, points: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The weighted terms beyond ``ContentLoss`` that ``config`` turns on, by name.

    ``mouth`` (L1 in the lip square), ``ssim``, ``detail`` and ``mouth_ssim``
    (see the functions above); ``points`` are the targets' ``(B, 68, 2)``
    landmarks in pixels of ``pred``. Terms with weight 0 are left out, so the
    dict is empty with the paper's weights. Meta-learning and fine-tuning
    both add these to L_CNT.
    """
    terms = {}
    if config.mouth_weight > 0:
        terms["mouth"] = config.mouth_weight * mouth_l1_loss(pred, target, points)
    if config.ssim_weight > 0:
        terms["ssim"] = config.ssim_weight * ssim_loss(pred, target)
    if config.detail_weight > 0:
        terms["detail"] = config.detail_weight * detail_loss(pred, target)
    if config.mouth_ssim_weight > 0:
        terms["mouth_ssim"] = config.mouth_ssim_weight * mouth_ssim_loss(pred, target, points)
    return terms


@float32_loss
def d_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: ``mean(relu(1 − D(x))) + mean(relu(1 + D(x̂)))``.

    Scores are raw (no sigmoid): a sigmoid would bound them in (0, 1) and make
    the real-side margin unreachable.
    """
    real = real_scores.float()
    fake = fake_scores.float()
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


@float32_loss
def g_adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator adversarial loss: ``−mean(D(x̂))`` (the hinge-GAN generator term)."""
    return -fake_scores.float().mean()


@float32_loss
def feature_matching_loss(
    real_feats: Sequence[torch.Tensor], fake_feats: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Feature matching: ``Σ_k mean|D_k(x) − D_k(x̂)|`` over D's block activations.

    The real activations are detached: the term trains the generator to
    reproduce them, not the discriminator to move them.
    """
    if len(real_feats) != len(fake_feats) or not real_feats:
        raise ValueError(
            f"need the same non-zero number of blocks, got {len(real_feats)} and {len(fake_feats)}"
        )
    total = fake_feats[0].new_zeros((), dtype=torch.float32)
    for real, fake in zip(real_feats, fake_feats):
        if real.shape != fake.shape:
            raise ValueError(f"feature shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}")
        total = total + (real.detach().float() - fake.float()).abs().mean()
    return total


@float32_loss
def embedding_match_loss(e_hat: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Embedding match L_MCH (unweighted): ``mean|ê − W|`` over batch and the N embedding dimensions.

    The paper writes ‖ê − W‖₁ (a sum over N). We take the mean so the value, and
    so the meaning of its weight, does not change with N or the batch size;
    the paper's sum equals N times this. Gradients reach both ê (so E) and W.
    """
    if e_hat.shape != w.shape:
        raise ValueError(
            f"e_hat and w must have the same shape, got {tuple(e_hat.shape)} and {tuple(w.shape)}"
        )
    return (e_hat.float() - w.float()).abs().mean()


@float32_loss
def pixel_content_loss(
    pred: torch.Tensor, target: torch.Tensor, scales: Sequence[int] = (1, 2, 4, 8)
) -> torch.Tensor:
    """Pixel-space stand-in for L_CNT when no VGG weights are available.

    ``Σ_s mean|pool_s(x̂) − pool_s(x)| + mean|∂_h x̂ − ∂_h x| + mean|∂_v x̂ − ∂_v x|``:
    L1 on the image and on average-pooled copies (factors ``scales``), which
    weights coarse structure (face shape, pose, colour) more than a single L1,
    plus L1 on horizontal and vertical finite differences, which rewards sharp
    edges where a plain L1 settles for blur. Images in ``[-1, 1]``, ``(B, 3, H, W)``.
    """
    pred = pred.float()
    target = target.float()
    total = pred.new_zeros(())
    for factor in scales:
        if factor > 1:
            pred_s, target_s = F.avg_pool2d(pred, factor), F.avg_pool2d(target, factor)
        else:
            pred_s, target_s = pred, target
        total = total + (pred_s - target_s).abs().mean()
    for dim in (-1, -2):
        total = total + (pred.diff(dim=dim) - target.diff(dim=dim)).abs().mean()
    return total


def _feature_l1(extractor: nn.Module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``Σ_l mean|φ_l(x̂) − φ_l(x)|`` over the extractor's taps (target side without gradients)."""
    with torch.no_grad():
        target_feats = extractor(target)
    return _features_l1(extractor(pred), target_feats)


@float32_loss
def _features_l1(fake_feats: Sequence[torch.Tensor], real_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """``Σ_l mean|fake_l − real_l|`` in float32 (the extractor itself may run in bf16)."""
    total = fake_feats[0].new_zeros(())
    for fake, real in zip(fake_feats, real_feats):
        total = total + (fake - real).abs().mean()
    return total


class ContentLoss(nn.Module):
    """L_CNT: weighted VGG19 + VGGFace feature L1, or a pixel-space fallback.

    ``kind`` records what is used (the trainer writes it into its config):

    - ``"vgg"``: VGG19 and VGGFace, as in the paper;
    - ``"vgg19"``: VGG19 only (the VGGFace source is missing or failed to load);
    - ``"pixel"``: ``pixel_content_loss`` times ``pixel_weight``.

    With ``content_loss="auto"`` a source that cannot be loaded (none given, a
    missing file, the Hub offline) causes one warning and a fallback; with
    ``"vgg"`` VGG19 is required (``WeightsError`` otherwise) and a given VGGFace
    source must load. VGGFace alone is not used: without VGG19 the loss is pixel.
    """

    def __init__(self, config: LossConfig | None = None, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else LossConfig()
        self.vgg19: VGG19Features | None = None
        self.vggface: VGGFaceFeatures | None = None
        self.kind = self._build_extractors()
        logger.info("content loss: %s", self.kind)
        if device is not None:
            self.to(device)

    def _build_extractors(self) -> str:
        """Load what the config asks for; return the kind and warn once if anything fell back."""
        cfg = self.config
        if cfg.content_loss == "pixel":
            return "pixel"
        required = cfg.content_loss == "vgg"
        try:
            self.vgg19 = _load_extractor(VGG19Features(), cfg.vgg19_source, ENV_VGG19)
        except WeightsError as error:
            if required:
                raise
            warnings.warn(f"{error} Using the pixel-space content loss instead of VGG.", stacklevel=3)
            return "pixel"
        try:
            self.vggface = _load_extractor(
                VGGFaceFeatures(cfg.vggface_channel_order), cfg.vggface_source, ENV_VGGFACE
            )
        except WeightsError as error:
            if required and cfg.vggface_source is not None:
                raise
            warnings.warn(f"{error} Using the VGG19 content loss without its VGGFace term.", stacklevel=3)
            return "vgg19"
        return "vgg"

    def terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted parts of L_CNT by name (``vgg19``, ``vggface`` or ``pixel``), for logging."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if self.kind == "pixel":
            return {"pixel": self.config.pixel_weight * pixel_content_loss(pred, target)}
        terms = {"vgg19": self.config.vgg19_weight * _feature_l1(self.vgg19, pred, target)}
        if self.vggface is not None:
            terms["vggface"] = self.config.vggface_weight * _feature_l1(self.vggface, pred, target)
        return terms

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """L_CNT of generated ``pred`` against real ``target``, both ``(B, 3, H, W)`` in ``[-1, 1]``."""
        return sum(self.terms(pred, target).values())


def _load_extractor(module: nn.Module, source: str | None, env_name: str) -> nn.Module:
    """Load weights into ``module`` or raise ``WeightsError`` saying how to provide them."""
    if not source:
        raise WeightsError(
            f"No {type(module).__name__} weights given: set {env_name} (or LossConfig) to a local "
            f".safetensors/.pth file or a Hub repo id."
        )
    load_vgg_weights(module, source)
    return module

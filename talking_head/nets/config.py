"""Model configuration: one frozen dataclass that rebuilds E, G (+P) and D.

The ``paper`` preset follows DESIGN.md §1 (Zakharov et al. 2019, 256×256,
N = 512). The paper gives sizes (E ≈ 15M, G ≈ 38M with P ≈ 6.7M, conv part of
D ≈ 20M parameters, G ≈ 47 GMACs per frame) but not every width, so these
choices are ours and land on those sizes (see ``scripts/bench_models.py``):

- E and D: res-down blocks 64, 128, 256, 512, 512, 512 (256 → 4), learnable
  1×1 skip only where the width changes, self-attention after the block that
  outputs 32×32; D adds one 512-wide res block at 4×4.
- G down path 64, 128, 256, 512 (256 → 16), bottleneck 4 × 512 at 16×16, up
  path 512, 256, 128, 64 (16 → 256). With separate (scale, bias) per AdaIN
  norm this gives 13,056 AdaIN parameters, so P is 512 × 13,056 ≈ 6.7M.
- Self-attention is BigGAN's variant (keys/values max-pooled 2×, C/8 query/key
  and C/2 value channels), which keeps attention at 64×64 affordable.

``cpu`` has the same topology with fewer channels (sized with the benchmark so
that G renders ≥ 5 frames/s at batch 8 on a 2-core CPU) and is warp-guided
(DESIGN §7): G refines the person's shots warped to the target landmarks and
has U-Net skips; it is the shipped model. ``paper-warp`` is the paper's sizes
made warp-guided the same way, for GPU runs. ``paper`` stays exactly as
published (G paints the whole face). ``tiny`` (warp-guided) is for tests.

A ``config.json`` written before ``warp_guided`` and ``generator_skips``
existed loads with both off, i.e. as the model it was.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talking_head.errors import WeightsError

# Fields stored as tuples; JSON gives lists back.
_TUPLE_FIELDS = ("embedder_channels", "generator_down_channels", "generator_up_channels", "discriminator_channels")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the networks E, G (with P) and D (without W).

    The number of training videos (rows of W) is not part of the config: W is
    training state, never exported; pass ``num_videos`` to the discriminator.
    """

    image_size: int = 256  # side of the square frames x and landmark images y, in pixels
    image_channels: int = 3  # channels of a frame x (RGB)
    landmark_channels: int = 3  # channels of a rasterized landmark image y
    embedding_dim: int = 512  # N: size of ê, of V(x, y), of W_i and w0; equals the last E and D width
    embedder_channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512)  # E: width of each res-down block, image_size → 4
    embedder_attention_size: int = 32  # E: feature-map side after which self-attention sits (0 = none)
    generator_down_channels: tuple[int, ...] = (64, 128, 256, 512)  # G: width of each res-down block (instance norm)
    generator_down_attention_size: int = 32  # G: down-path feature-map side with self-attention (0 = none)
    generator_bottleneck_blocks: int = 4  # G: AdaIN res blocks at the bottleneck, width = last down width
    generator_up_channels: tuple[int, ...] = (512, 256, 128, 64)  # G: width of each AdaIN res-up block
    generator_up_attention_size: int = 64  # G: up-path feature-map side with self-attention (0 = none)
    discriminator_channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512)  # D (V): width of each res-down block
    discriminator_attention_size: int = 32  # D: feature-map side after which self-attention sits (0 = none)
    discriminator_extra_blocks: int = 1  # D: res blocks at 4×4 after the down path
    warp_guided: bool = False  # G also sees the shots warped to y's landmarks and blends its output with that warp (DESIGN §7)
    generator_skips: bool = False  # G: U-Net skips, down-path features added to the up path at each resolution

    def __post_init__(self) -> None:
        # Frozen dataclass: normalize lists (from JSON) to tuples via object.__setattr__.
        for name in _TUPLE_FIELDS:
            object.__setattr__(self, name, tuple(int(c) for c in getattr(self, name)))
        self._validate()

    def _validate(self) -> None:
        problems = []
        size = self.image_size
        if size < 8 or size & (size - 1):
            problems.append(f"image_size must be a power of two ≥ 8, got {size}")
        else:
            n_down = (size // 4).bit_length() - 1  # blocks from image_size down to 4×4
            for name in ("embedder_channels", "discriminator_channels"):
                if len(getattr(self, name)) != n_down:
                    problems.append(f"{name} needs {n_down} widths to go from {size} to 4, got {len(getattr(self, name))}")
            n_g = len(self.generator_down_channels)
            if size >> n_g < 2:
                problems.append(f"generator_down_channels has {n_g} blocks, too many for image_size {size}")
        if len(self.generator_up_channels) != len(self.generator_down_channels):
            problems.append("generator_up_channels must have as many blocks as generator_down_channels")
        for name in ("embedder_channels", "discriminator_channels"):
            if getattr(self, name) and getattr(self, name)[-1] != self.embedding_dim:
                problems.append(f"{name}[-1] must equal embedding_dim ({self.embedding_dim}): ê and V are sum-pooled features")
        if any(c < 8 for name in _TUPLE_FIELDS for c in getattr(self, name)):
            problems.append("every width must be ≥ 8 (self-attention uses C/8 channels)")
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    # ----- serialization -------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**data)

    def to_json(self, path: str | Path) -> None:
        """Write the config as pretty JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> ModelConfig:
        """Read a config written by :meth:`to_json`; a bad file raises ``WeightsError`` naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise WeightsError(f"{path} is missing: a weights folder needs config.json next to the .safetensors files") from err
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise WeightsError(f"{path} is not valid JSON ({err}); re-export the weights") from err
        if not isinstance(data, dict):
            raise WeightsError(f"{path} must hold a JSON object of ModelConfig fields")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise WeightsError(f"{path} is not a valid model config: {err}") from err

    @classmethod
    def preset(cls, name: str) -> ModelConfig:
        """One of :data:`PRESETS` by name (``paper``, ``paper-warp``, ``cpu``, ``tiny``)."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


_PAPER = ModelConfig()

# Widths of the cpu preset, chosen with scripts/bench_models.py on a shared
# 2-core Xeon @ 2.5 GHz. On such a CPU, G is memory-bound at 128-256 px, so the
# widths are cut most there (8, 16) and kept larger at the 16×16 bottleneck and
# in E/D (128, N = 128), where they cost little. Uniform paper × 0.25 rendered
# ~4.1 frames/s at batch 8 (too slow); these widths (1.8 GMACs/frame) ~6.5
# frames/s, leaving ~25 % headroom over the 5 frames/s target.
# Warp guidance adds 3 input channels and the skips four 1×1 convs: +3 % MACs.
# G's up-path attention sits at 32×32 instead of 64×64: on a 2-core AMD EPYC (Zen 3,
# fp32, no bf16 units) attention over 4,096 positions took a quarter of G's time
# (7.6 → 10.3 frames/s at batch 8), where no width had to be given up.
_CPU = ModelConfig(
    embedding_dim=128,
    embedder_channels=(16, 32, 64, 128, 128, 128),
    generator_down_channels=(8, 16, 48, 128),
    generator_up_channels=(128, 48, 16, 8),
    generator_up_attention_size=32,
    discriminator_channels=(16, 32, 64, 128, 128, 128),
    warp_guided=True,
    generator_skips=True,
)

_PAPER_WARP = dataclasses.replace(_PAPER, warp_guided=True, generator_skips=True)

_TINY = ModelConfig(
    image_size=64,
    embedding_dim=32,
    embedder_channels=(8, 16, 16, 32),
    embedder_attention_size=16,
    generator_down_channels=(8, 16, 16, 32),
    generator_down_attention_size=8,
    generator_bottleneck_blocks=2,
    generator_up_channels=(32, 16, 16, 8),
    generator_up_attention_size=16,
    discriminator_channels=(8, 16, 16, 32),
    discriminator_attention_size=16,
    warp_guided=True,
    generator_skips=True,
)

PRESETS: dict[str, ModelConfig] = {"paper": _PAPER, "paper-warp": _PAPER_WARP, "cpu": _CPU, "tiny": _TINY}

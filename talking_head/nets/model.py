"""TalkingHeadModel: E, G (+P) and D together, saved as config.json + safetensors.

Weights folder layout (DESIGN §4)::

    config.json                  ModelConfig.to_dict()
    embedder.safetensors         E (φ)
    generator.safetensors        G (ψ) and P
    discriminator.safetensors    D's person-generic part: θ, w0, b (no per-video W)

Spectral norm: the files hold the raw state dicts, i.e. for every
spectral-normalized layer the unnormalized weight
(``…parametrizations.weight.original``) AND the power-iteration vectors
(``…parametrizations.weight.0._u`` / ``_v``). So loading gives bit-identical
outputs (eval mode computes σ from the stored u, v) and training or
fine-tuning can continue from the file. Never pickles.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors
from torch import nn

from talking_head.errors import WeightsError
from talking_head.nets.config import ModelConfig
from talking_head.nets.discriminator import VIDEO_TABLE_PREFIX, Discriminator
from talking_head.nets.embedder import Embedder
from talking_head.nets.generator import Generator

CONFIG_NAME = "config.json"
WEIGHT_FILES = {
    "embedder": "embedder.safetensors",
    "generator": "generator.safetensors",
    "discriminator": "discriminator.safetensors",
}
# Prefixes added by DDP / torch.compile wrappers; never written to disk.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class TalkingHeadModel(nn.Module):
    """The three networks of Zakharov et al. 2019: ``embedder`` (E), ``generator`` (G with P), ``discriminator`` (D).

    ``num_videos`` sizes D's per-video table W for meta-learning (0: no W, as
    after :meth:`from_pretrained`; see ``Discriminator.set_num_videos``).
    """

    def __init__(self, config: ModelConfig, num_videos: int = 0) -> None:
        super().__init__()
        self.config = config
        self.embedder = Embedder(config)
        self.generator = Generator(config)
        self.discriminator = Discriminator(config, num_videos=num_videos)

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and the three safetensors files into ``directory`` (created if needed).

        ``dtype`` (e.g. ``torch.float16``) stores floating tensors in that type;
        :meth:`from_pretrained` casts them back to the model's dtype.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.to_json(directory / CONFIG_NAME)
        states = {
            "embedder": self.embedder.state_dict(),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.generic_state_dict(),
        }
        for part, state in states.items():
            tensors = {_strip_wrappers(k): _for_storage(v, dtype) for k, v in state.items()}
            # Written with open(), not safetensors' save_file (which creates files with mode 0600),
            # so exported weights get the usual umask mode (world-readable: they are meant to be shared).
            data = save_tensors(tensors, metadata={"format": "pt", "part": part})
            (directory / WEIGHT_FILES[part]).write_bytes(data)
        return directory

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        revision: str | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> TalkingHeadModel:
        """Load from a local weights folder or a Hugging Face Hub repo id (``org/name``).

        Hub downloads go through ``huggingface_hub.snapshot_download`` (the
        cache; ``HF_HUB_OFFLINE=1`` uses cached files only); ``revision`` pins
        a branch, tag or commit. The model comes back in eval mode, on
        ``device`` (default CPU), in ``dtype`` (default float32), without W.
        Raises ``WeightsError`` naming the file for anything missing, corrupt
        or inconsistent with ``config.json``.
        """
        directory = resolve_weights_dir(source, revision=revision)
        config = ModelConfig.from_json(directory / CONFIG_NAME)
        model = cls(config)
        for part, filename in WEIGHT_FILES.items():
            _load_part(getattr(model, part), directory / filename, generic_discriminator=part == "discriminator")
        return model.to(device=device or "cpu", dtype=dtype or torch.float32).eval()


def resolve_weights_dir(source: str | Path, revision: str | None = None) -> Path:
    """A local folder as is, or the Hub snapshot folder of repo id ``source``; ``WeightsError`` if neither exists."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise WeightsError(f"{path} is a file; pass the weights folder that holds {CONFIG_NAME}")
    if not isinstance(source, str) or not _REPO_ID.match(source):
        raise WeightsError(f"weights folder {path} not found; pass an existing folder or a Hub repo id like org/name")
    return _download_snapshot(source, revision)


def _download_snapshot(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download  # imported here: only Hub loads need it
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    # Read the environment at call time (huggingface_hub reads it once, at import).
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=os.environ.get("HF_HUB_CACHE") or None,
            local_files_only=offline,
            allow_patterns=[CONFIG_NAME, "*.safetensors", "README.md"],
        )
    except LocalEntryNotFoundError as err:
        raise WeightsError(
            f"weights {repo_id!r} (revision {revision or 'main'}) are not in the Hugging Face cache and the Hub "
            f"cannot be reached{' (HF_HUB_OFFLINE is set)' if offline else ''}; download them once online or pass a local folder"
        ) from err
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise WeightsError(f"could not fetch weights {repo_id!r} from the Hugging Face Hub: {err}") from err
    return Path(folder)


def _strip_wrappers(key: str) -> str:
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _for_storage(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.contiguous()


def _load_part(module: nn.Module, path: Path, generic_discriminator: bool = False) -> None:
    """Load one safetensors file into ``module``, checking keys and shapes first."""
    if not path.is_file():
        raise WeightsError(f"{path} is missing; a weights folder needs {', '.join(WEIGHT_FILES.values())}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise WeightsError(f"{path} is not a readable safetensors file ({err}); re-download or re-export it") from err
    expected = module.state_dict()
    if generic_discriminator:
        expected = {k: v for k, v in expected.items() if not k.startswith(VIDEO_TABLE_PREFIX)}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = [k for k in expected.keys() & tensors.keys() if expected[k].shape != tensors[k].shape]
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"missing {_few(missing)}")
        if unexpected:
            details.append(f"unexpected {_few(unexpected)}")
        if wrong_shape:
            k = wrong_shape[0]
            details.append(f"{len(wrong_shape)} shape mismatch(es), e.g. {k}: file {tuple(tensors[k].shape)} "
                           f"vs config {tuple(expected[k].shape)}")
        raise WeightsError(f"{path} does not match config.json ({'; '.join(details)}); "
                           "the folder mixes files from different models — re-export it")
    module.load_state_dict(tensors, strict=not generic_discriminator)


def _few(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} key(s): {shown}{', …' if len(keys) > limit else ''}"

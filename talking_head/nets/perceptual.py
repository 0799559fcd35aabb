"""Frozen VGG feature extractors for the content loss L_CNT (no torchvision needed).

Two networks, both defined here so the library runs where torchvision is absent:

- ``VGG19Features``: VGG-19 trained on ImageNet (Simonyan & Zisserman, 2015).
- ``VGGFaceFeatures``: VGG-Face, a VGG-16 trained for face recognition
  (Parkhi, Vedaldi & Zisserman, BMVC 2015).

Both take images in ``[-1, 1]`` RGB, normalize them the way their network was
trained, and return the activations at relu1_1, relu2_1, relu3_1, relu4_1 and
relu5_1 (the layers the paper uses). The convolutions after relu5_1 are not
built at all, so nothing is computed past the last tap.

The layer layout is torchvision's (``features.N.weight``), so a torchvision
state dict loads as is; ``load_vgg_weights`` also reads Caffe-style names
(``conv1_1.weight`` / ``conv_1_1.weight``) used by most VGG-Face ports.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
from torch import nn

from talking_head.errors import WeightsError

logger = logging.getLogger(__name__)

TAP_NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
"""Names of the activations every extractor returns, in order."""

_BLOCK_CHANNELS = (64, 128, 256, 512, 512)
_VGG19_CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
_VGG16_CONVS_PER_BLOCK = (2, 2, 3, 3, 3)

# ImageNet statistics of RGB images in [0, 1] (torchvision's VGG19 training).
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# VGG-Face training mean, 0-255 pixel values, BGR order (Caffe release;
# the MatConvNet release lists the same numbers as RGB (129.1863, 104.7624, 93.5940)).
VGGFACE_MEAN_BGR = (93.5940, 104.7624, 129.1863)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_HUB_DEFAULT_FILENAMES = ("model.safetensors", "pytorch_model.bin")
_TORCHVISION_KEY = re.compile(r"(?:^|\.)features\.(\d+)\.(weight|bias)$")
_CAFFE_KEY = re.compile(r"(?:^|\.)conv_?(\d)_(\d)\.(weight|bias)$")


class VGGFeatures(nn.Module):
    """A frozen VGG trunk cut after relu5_1; subclasses set the depth and the input normalization.

    ``forward(x)`` takes ``(B, 3, H, W)`` images in ``[-1, 1]`` RGB and returns a
    list of 5 activations (``TAP_NAMES``); the k-th has ``(64, 128, 256, 512, 512)[k]``
    channels and spatial size ``H / 2**k``.
    """

    tap_names = TAP_NAMES

    def __init__(self, convs_per_block: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        self.conv_index: dict[tuple[int, int], int] = {}  # (block, conv) 1-based -> index in features
        self.tap_indices: list[int] = []  # index in features of each tapped ReLU
        in_channels = 3
        for block, (channels, n_convs) in enumerate(zip(_BLOCK_CHANNELS, convs_per_block), start=1):
            if block > 1:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            # The last block only needs its first conv: relu5_1 is the deepest tap.
            for conv in range(1, (n_convs if block < 5 else 1) + 1):
                self.conv_index[(block, conv)] = len(layers)
                layers.append(nn.Conv2d(in_channels, channels, kernel_size=3, padding=1))
                layers.append(nn.ReLU())
                if conv == 1:
                    self.tap_indices.append(len(layers) - 1)
                in_channels = channels
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stay in eval mode: the network is a fixed measuring instrument."""
        return super().train(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[-1, 1]`` RGB images to the input range the network was trained on."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the activations at ``TAP_NAMES`` for images ``x`` in ``[-1, 1]``, ``(B, 3, H, W)``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        h = self.normalize(x)
        taps: list[torch.Tensor] = []
        # self.features ends at relu5_1, so the loop computes nothing past the last tap.
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in self.tap_indices:
                taps.append(h)  # (B, C_k, H / 2**k, W / 2**k)
        return taps

    def expected_keys(self) -> list[str]:
        """State-dict keys this module needs (torchvision layout)."""
        return list(self.state_dict().keys())


class VGG19Features(VGGFeatures):
    """VGG-19 (ImageNet) trunk up to relu5_1, for the VGG19 term of L_CNT.

    Input normalization is torchvision's: RGB in ``[0, 1]``, minus
    ``IMAGENET_MEAN_RGB``, divided by ``IMAGENET_STD_RGB``.
    """

    def __init__(self) -> None:
        super().__init__(_VGG19_CONVS_PER_BLOCK)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` RGB -> ImageNet-standardized RGB."""
        return ((x + 1.0) * 0.5 - self.mean) / self.std


class VGGFaceFeatures(VGGFeatures):
    """VGG-Face (a VGG-16 for face recognition) trunk up to relu5_1, for the VGGFace term of L_CNT.

    Input normalization is the Caffe release's: pixel values 0-255, BGR channel
    order, minus ``VGGFACE_MEAN_BGR`` (no division). Ports of the Torch7 release
    (``VGG_FACE.t7``) expect the same numbers in RGB order: pass
    ``channel_order="rgb"`` for those weights.
    """

    def __init__(self, channel_order: str = "bgr") -> None:
        super().__init__(_VGG16_CONVS_PER_BLOCK)
        if channel_order not in ("bgr", "rgb"):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        self.channel_order = channel_order
        mean = VGGFACE_MEAN_BGR if channel_order == "bgr" else VGGFACE_MEAN_BGR[::-1]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` RGB -> mean-subtracted 0-255 values in the network's channel order."""
        x255 = (x + 1.0) * 127.5
        if self.channel_order == "bgr":
            x255 = x255.flip(1)
        return x255 - self.mean


def load_vgg_weights(module: VGGFeatures, source: str | os.PathLike[str]) -> Path:
    """Load pretrained weights into a VGG extractor; return the file they came from.

    ``source`` is a local ``.safetensors`` file or a ``.pth`` / ``.pt`` / ``.bin``
    file (read with ``torch.load(weights_only=True)``, never unpickling code), or
    a Hugging Face Hub ``repo_id`` or ``repo_id:filename`` (downloaded with
    ``hf_hub_download``, which honours ``HF_HUB_OFFLINE``; without a filename
    ``model.safetensors`` then ``pytorch_model.bin`` are tried).

    Accepted key names: torchvision's ``features.N.weight`` / ``features.N.bias``
    (any prefix such as ``module.``), or Caffe-style ``conv1_1.weight`` /
    ``conv_1_1.weight``. Keys the trunk does not use (``classifier.*``, ``fc6``,
    convolutions after relu5_1) are ignored.

    Raises ``WeightsError`` naming the file when it cannot be found, read, or
    when keys are missing or shapes differ.
    """
    path = _resolve_weights_file(source)
    state = _read_state_dict(path)
    mapped = _map_keys(module, state, path)
    params = module.state_dict()
    missing = [key for key in params if key not in mapped]
    if missing:
        raise WeightsError(
            f"{path} does not hold the {type(module).__name__} weights: missing {len(missing)} of "
            f"{len(params)} keys (first: {', '.join(missing[:4])}). Expected a torchvision-style "
            f"state dict (features.N.weight / features.N.bias) or Caffe-style names (conv1_1.weight); "
            f"check that the file is the right network."
        )
    for key, target in params.items():
        if mapped[key].shape != target.shape:
            raise WeightsError(
                f"{path}: {key} has shape {tuple(mapped[key].shape)}, {type(module).__name__} needs "
                f"{tuple(target.shape)}; check that the file is the right network."
            )
    with torch.no_grad():
        for key, target in params.items():
            target.copy_(mapped[key].to(dtype=target.dtype))
    logger.info("loaded %s weights from %s", type(module).__name__, path)
    return path


def _looks_like_local_path(source: str) -> bool:
    """A source spelled like a file path is local; anything else is a Hub ``repo_id[:filename]``."""
    if source.startswith(("/", ".", "~")) or re.match(r"^[A-Za-z]:[\\/]", source):
        return True
    return ":" not in source and source.lower().endswith(WEIGHT_SUFFIXES)


def _resolve_weights_file(source: str | os.PathLike[str]) -> Path:
    """Turn a local path or ``repo_id[:filename]`` into an existing local file."""
    text = os.fspath(source)
    local = Path(text).expanduser()
    if local.is_file():
        return local
    if isinstance(source, os.PathLike) or _looks_like_local_path(text):
        raise WeightsError(f"VGG weights file {local} not found; check the path (or give a Hub repo id).")
    repo_id, _, filename = text.partition(":")
    candidates = (filename,) if filename else _HUB_DEFAULT_FILENAMES
    return _download_from_hub(repo_id, candidates)


def _download_from_hub(repo_id: str, filenames: tuple[str, ...]) -> Path:
    """Fetch the first of ``filenames`` that exists in the Hub repo (or the local Hub cache)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    reasons = []
    for filename in filenames:
        try:
            return Path(hf_hub_download(repo_id=repo_id, filename=filename))
        except (OSError, ValueError, EntryNotFoundError) as error:
            reasons.append(f"{filename}: {type(error).__name__}")
    raise WeightsError(
        f"could not get VGG weights {repo_id}:{'|'.join(filenames)} from the Hugging Face Hub "
        f"({'; '.join(reasons)}). Without internet, download the file elsewhere and give its local "
        f"path (e.g. via TALKING_HEAD_VGG19 / TALKING_HEAD_VGGFACE)."
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read tensors from a safetensors or torch file without executing pickled code."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        elif suffix in WEIGHT_SUFFIXES:
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise WeightsError(f"{path}: unsupported weights file type {suffix!r}; use .safetensors or .pth.")
    except WeightsError:
        raise
    # torch.load / safetensors on a damaged or foreign file can raise almost anything
    # (UnpicklingError, IndexError, SafetensorError, ...): all mean "not a readable weights file".
    except Exception as error:
        raise WeightsError(
            f"could not read VGG weights from {path} ({error}); the file may be corrupt."
        ) from error
    # Training checkpoints often nest the weights one level down.
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict (found {type(state).__name__}).")
    return {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}


def _map_keys(module: VGGFeatures, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Rename the file's keys to ``features.N.{weight,bias}``; drop keys the trunk does not use."""
    wanted = set(module.state_dict().keys())
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        ours = _our_key(module, key)
        if ours is None or ours not in wanted:
            continue
        if ours in mapped:
            raise WeightsError(
                f"{path}: more than one tensor maps to {ours} (e.g. {key}); keep one network per file."
            )
        mapped[ours] = value
    return mapped


def _our_key(module: VGGFeatures, key: str) -> str | None:
    """The torchvision-layout name for a key, or None when it is not a trunk conv."""
    match = _TORCHVISION_KEY.search(key)
    if match:
        return f"features.{match.group(1)}.{match.group(2)}"
    match = _CAFFE_KEY.search(key)
    if match:
        index = module.conv_index.get((int(match.group(1)), int(match.group(2))))
        return None if index is None else f"features.{index}.{match.group(3)}"
    return None

"""G exported to ONNX for ONNX Runtime rendering on a CPU (DESIGN §9, lever 4).

What is exported: G's rendering call ``G(y, ψ[, warp]) → x̂`` with spectral
norms folded in (:func:`fold_spectral_norm`), float32, opset
:data:`OPSET`, a dynamic batch dimension and one ψ ``(1, n_adain_params)``
shared by the batch. P (ê → ψ̂) is not in the graph: rendering always passes ψ.
The TPS warp stays in PyTorch (its small linear solves go through numpy; it
costs a few ms a frame beside G's tens).

Every weight of the folded G is a graph initializer under its own state-dict
name (``down.0.conv1.weight``, ...), so one graph serves any G of the same
architecture: a fine-tuned G' is rendered by putting its tensors in place of
the stored ones (:mod:`talking_head.nets.runtime`); exporting again would take
tens of seconds.

Graph files carry the :func:`generator_fingerprint` of the G they were made
from in their metadata, so a graph next to the safetensors (``export-onnx``)
or in the per-user cache (:func:`graph_cache_dir`) is used only for the
weights it was made from.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

logger = logging.getLogger(__name__)

OPSET = 18  # grid_sample would need ≥ 16; InstanceNormalization, Resize and Softmax are older
GRAPH_NAME = "generator.onnx"  # the file name next to the safetensors and in the cache
GRAPH_FORMAT = 1  # bump when the exported call changes: older cached graphs are then ignored
FINGERPRINT_KEY = "talking_head.generator_sha256"  # metadata key of the graph's fingerprint
MADE_WITH_KEY = "talking_head.made_with"  # metadata key: the exporter's versions and opset
ENV_CACHE = "TALKING_HEAD_CACHE"  # cache folder override (default $XDG_CACHE_HOME/talking-head)
INPUTS = ("y", "psi", "warp")  # graph inputs: landmark images, ψ, the warped shots (warp-guided G only)
OUTPUT = "x_hat"
WEIGHT_PREFIX = (
    "generator."  # graph initializer name = this + the folded G's state-dict name (RenderCall's attribute)
)


def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in eval mode whose spectral-normalized weights are plain tensors.

    Eval mode: σ comes from the stored power-iteration vectors, as in
    rendering. ``parametrize.remove_parametrizations`` is not used: it edits
    the parametrized class, which a deep copy shares with ``module``.
    """
    folded = copy.deepcopy(module).eval().requires_grad_(False)
    with torch.no_grad():
        for sub in list(folded.modules()):
            if not parametrize.is_parametrized(sub):
                continue
            tensors = {name: getattr(sub, name).detach().clone() for name in sub.parametrizations}
            del sub._modules["parametrizations"]
            sub.__class__ = parametrize.type_before_parametrizations(sub)
            for name, tensor in tensors.items():
                sub.register_parameter(name, nn.Parameter(tensor, requires_grad=False))
    return folded


def rendering_tensors(generator: nn.Module) -> dict[str, torch.Tensor]:
    """The float32 tensors of the folded ``generator`` that rendering uses, by state-dict name (P left out)."""
    state = fold_spectral_norm(generator).state_dict()
    return {k: v.float().contiguous() for k, v in state.items() if not k.startswith("projection.")}


class RenderCall(nn.Module):
    """``G(y, adain_params=ψ, warp=warp)`` with positional inputs: what the graph computes."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, y: torch.Tensor, psi: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(y, adain_params=psi, warp=warp)  # (B, 3, S, S)


def generator_fingerprint(generator: nn.Module) -> str:
    """SHA-256 of G's config and tensors (and the graph format): names the weights a graph was made from."""
    digest = hashlib.sha256(f"format {GRAPH_FORMAT} opset {OPSET}\n".encode())
    config = getattr(generator, "config", None)
    if config is not None:
        digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(generator.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def _example_inputs(generator: nn.Module, batch: int = 2) -> tuple[torch.Tensor, ...]:
    config = generator.config
    size = config.image_size
    y = torch.zeros(batch, config.landmark_channels, size, size)
    psi = torch.zeros(1, generator.n_adain_params)
    if not config.warp_guided:
        return y, psi
    return y, psi, torch.zeros(batch, config.image_channels, size, size)


def export_generator(generator: nn.Module, path: str | os.PathLike) -> Path:
    """Export ``generator``'s rendering call to an ONNX file at ``path`` (opset :data:`OPSET`, dynamic batch).

    Uses ``torch.onnx.export(..., dynamo=True)``, which needs the ``onnx`` and
    ``onnxscript`` packages; it takes seconds to tens of seconds on a CPU.
    The file is written next to its final name and moved into place, so a
    half-written graph is never found.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    call = RenderCall(fold_spectral_norm(generator).cpu().float()).eval()
    inputs = _example_inputs(call.generator)
    names = INPUTS[: len(inputs)]
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = {name: ({0: batch} if name != "psi" else None) for name in names}
    start = time.perf_counter()
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            call,
            inputs,
            dynamo=True,
            opset_version=OPSET,
            input_names=list(names),
            output_names=[OUTPUT],
            dynamic_shapes=dynamic,
            verbose=False,
        )
    program.model.metadata_props[FINGERPRINT_KEY] = generator_fingerprint(generator)
    program.model.metadata_props[MADE_WITH_KEY] = made_with()
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        program.save(str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("exported G to %s in %.1f s", path, time.perf_counter() - start)
    return path


# Loggers of the exporter that report every pass at INFO (and every torchvision op it skips at WARNING).
_EXPORTER_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


def made_with() -> str:
    """How graphs are made here: ``torch.onnx.export(dynamo=True)``, the versions and the opset (for model cards)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        onnxscript = version("onnxscript")
    except PackageNotFoundError:
        onnxscript = "not installed"
    return (
        f"torch.onnx.export(dynamo=True), torch {torch.__version__}, onnxscript {onnxscript}, opset {OPSET}"
    )


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's own chatter (hundreds of lines per export) is not the user's to read."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def graph_fingerprint(path: str | os.PathLike) -> str | None:
    """The fingerprint stored in a graph file, ``None`` when it has none or cannot be read."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return None
    return _stored_fingerprint(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _stored_fingerprint(path: Path, mtime_ns: int, size: int) -> str | None:
    """Read once per file version (a graph is read again only when it changed on disk)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - a broken or foreign file is simply not our graph
        return None
    return next((p.value for p in model.metadata_props if p.key == FINGERPRINT_KEY), None)


def graph_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where exported graphs are cached: ``$TALKING_HEAD_CACHE``, else ``$XDG_CACHE_HOME/talking-head``, else ``~/.cache/talking-head``."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_CACHE, "").strip():
        return Path(environ[ENV_CACHE]).expanduser() / "onnx"
    base = environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base).expanduser() / "talking-head" / "onnx"


def find_graph(generator: nn.Module, folders: Iterable[str | os.PathLike] = ()) -> Path | None:
    """A graph made from ``generator``'s weights: in ``folders`` (e.g. the weights folder), then in the cache."""
    fingerprint = generator_fingerprint(generator)
    candidates = [Path(f) / GRAPH_NAME for f in folders]
    candidates.append(graph_cache_dir() / fingerprint[:32] / GRAPH_NAME)
    for candidate in candidates:
        if candidate.is_file() and graph_fingerprint(candidate) == fingerprint:
            return candidate
    return None


def cached_graph(generator: nn.Module, folders: Iterable[str | os.PathLike] = ()) -> Path:
    """:func:`find_graph`, or a new export into the cache (keyed by the weights' fingerprint) when there is none."""
    found = find_graph(generator, folders)
    if found is not None:
        return found
    path = graph_cache_dir() / generator_fingerprint(generator)[:32] / GRAPH_NAME
    logger.info("no ONNX graph for these weights yet: exporting G once into %s", path.parent)
    return export_generator(generator, path)

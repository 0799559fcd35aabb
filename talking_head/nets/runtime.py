"""The rendering runtime: ``auto | onnx | torch``, resolved once per G and CPU (DESIGN §9, lever 4).

G renders either in PyTorch (at the precision of :mod:`talking_head.nets.precision`)
or, on a CPU, through ONNX Runtime on the graph of :mod:`talking_head.nets.onnx_export`
(float32; its kernels need no bf16 hardware). Nothing is assumed:

- ``torch``: PyTorch, as before.
- ``onnx``: ONNX Runtime wherever it can run: on a CPU, with ``onnxruntime``
  installed and a graph for these weights (found or exported); PyTorch
  otherwise, with a log line saying why.
- ``auto`` (the default): like ``onnx``, then a short measurement on G itself
  (both runtimes, :data:`AUTO_BATCH` frames a call, interleaved, medians; seconds,
  once per process, thread count and precision) against PyTorch at the
  rendering precision. Against PyTorch fp32 (the same numbers within 1e-6)
  ONNX Runtime is kept when at least :data:`AUTO_MIN_SPEEDUP` × faster; against
  PyTorch bf16, unless bf16 is at least :data:`BF16_MIN_SPEEDUP` × faster than
  it: bf16 costs accuracy, so a tie goes to float32, the precision policy's own rule.
  A precision of ``bf16`` asked for explicitly stays in PyTorch: ONNX Runtime
  renders in float32 only (``fp32`` asked for may render in either: they
  agree within 1e-6).

CUDA always renders in PyTorch. A fine-tuned G' renders through the same
graph with its own tensors in place of the stored ones (:class:`OnnxGenerator`),
checked name by name and shape by shape, so one export serves every person.
The app reads the policy from ``TALKING_HEAD_RUNTIME`` (:func:`runtime_from_env`).
"""

from __future__ import annotations

import functools
import logging
import os
import statistics
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from talking_head.errors import TalkingHeadError
from talking_head.nets.onnx_export import (
    OUTPUT,
    WEIGHT_PREFIX,
    cached_graph,
    generator_fingerprint,
    graph_fingerprint,
    rendering_tensors,
)
from talking_head.nets.precision import Precision, parse_policy, policy_from_env

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")
ENV_RUNTIME = "TALKING_HEAD_RUNTIME"  # the app's runtime policy (default auto)
# auto keeps ONNX Runtime when it measures this much faster than PyTorch fp32 on G (same numbers:
# a switch must pay) ...
AUTO_MIN_SPEEDUP = 1.1
# ... and PyTorch bf16 only when bf16 measures this much faster than ONNX Runtime's float32
# (the bar nets/precision.py sets bf16 against fp32: bf16 costs accuracy, a tie goes to float32).
BF16_MIN_SPEEDUP = 1.25
# Frames per timed call of auto's measurement: half the rendering batch, a second or two on an idle
# 2-core CPU (bf16's lead over float32 grows with the batch: 1.3x at 1, 1.9x at 8 on an AMD EPYC Zen 5).
AUTO_BATCH = 4
AUTO_ROUNDS = 3  # timed calls per runtime, interleaved (after one warm-up call each)

# A rendering call: G(y, adain_params=ψ, warp=warp) → x̂, float32 tensors in and out.
Renderer = Callable[..., torch.Tensor]


def parse_runtime(policy: str) -> str:
    """``policy`` lower-cased and checked against :data:`RUNTIMES`; raises ``TalkingHeadError`` otherwise."""
    return parse_policy(policy, RUNTIMES, "runtime")


def runtime_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The policy in ``$TALKING_HEAD_RUNTIME`` (``auto`` when unset or empty)."""
    return policy_from_env(environ, ENV_RUNTIME, RUNTIMES, "runtime")


def import_onnxruntime() -> ModuleType | None:
    """The ``onnxruntime`` module, or ``None`` when it is not installed (rendering then stays in PyTorch)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


# ----- G on ONNX Runtime -------------------------------------------------------------


def _graph_with_tensors(graph: Path, tensors: Mapping[str, torch.Tensor]) -> bytes:
    """The graph's bytes with ``tensors`` in place of its initializers of the same names (and shapes)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    stored = {init.name: init for init in model.graph.initializer}
    for name, tensor in tensors.items():
        init = stored.get(WEIGHT_PREFIX + name)
        if init is None or tuple(init.dims) != tuple(tensor.shape):
            raise ValueError(f"the ONNX graph {graph} has no tensor {name} of shape {tuple(tensor.shape)}")
        init.CopyFrom(numpy_helper.from_array(tensor.detach().cpu().numpy(), init.name))
    return model.SerializeToString()


class OnnxGenerator:
    """G on ONNX Runtime's CPU provider, called like G for rendering (float32 tensors in and out).

    ``tensors`` (from :func:`~talking_head.nets.onnx_export.rendering_tensors`)
    replace the graph's stored weights: a fine-tuned G' on its base's graph.
    """

    def __init__(
        self,
        graph: str | os.PathLike,
        tensors: Mapping[str, torch.Tensor] | None = None,
        threads: int | None = None,
    ) -> None:
        ort = import_onnxruntime()
        if ort is None:
            raise TalkingHeadError("onnxruntime is not installed: pip install onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Threads that sleep between ops: spinning ones took 22% longer a frame on a busy machine
        # (G, batch 8, 2-core AMD EPYC Zen 5 at load 4).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = _graph_with_tensors(Path(graph), tensors) if tensors else str(graph)
        self.graph = Path(graph)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(
        self,
        y: torch.Tensor,
        e: torch.Tensor | None = None,
        adain_params: torch.Tensor | None = None,
        warp: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x̂ (B, 3, S, S) for y (B, 3, S, S), one ψ (n,) or (1, n) and, for a warp-guided G, warp (B, 3, S, S)."""
        if e is not None or adain_params is None:
            raise ValueError("the ONNX graph renders from ψ: pass adain_params, not e")
        psi = adain_params.detach().float().reshape(1, -1)
        feeds = {"y": y, "psi": psi, "warp": warp}
        arrays = {name: feeds[name].detach().float().cpu().contiguous().numpy() for name in self.input_names}
        (out,) = self.session.run([OUTPUT], arrays)
        return torch.from_numpy(out)


# module → (its tensors' versions and the graph, the session); entries go with the module.
_SESSIONS: weakref.WeakKeyDictionary[nn.Module, tuple[Any, OnnxGenerator]] = weakref.WeakKeyDictionary()
# G → the weights folder it was loaded from (where an exported graph may lie next to the safetensors).
_WEIGHTS_FOLDERS: weakref.WeakKeyDictionary[nn.Module, Path] = weakref.WeakKeyDictionary()


def _versions(module: nn.Module) -> tuple[tuple[int, int], ...]:
    return tuple((id(t), t._version) for t in [*module.parameters(), *module.buffers()])


def onnx_generator(graph: Path, generator: nn.Module, threads: int | None = None) -> OnnxGenerator:
    """An ONNX Runtime session rendering ``generator`` on ``graph`` (cached per module until its tensors change).

    The graph's own weights are used when it was made from this ``generator``;
    otherwise (a fine-tuned G') the generator's tensors are put in their place.
    """
    threads = threads or torch.get_num_threads()
    key = (graph, threads, _versions(generator))
    cached = _SESSIONS.get(generator)
    if cached is None or cached[0] != key:
        same = graph_fingerprint(graph) == generator_fingerprint(generator)
        start = time.perf_counter()
        session = OnnxGenerator(graph, None if same else rendering_tensors(generator), threads)
        what = "its own weights" if same else "the given G's weights"
        logger.debug("ONNX Runtime session on %s with %s in %.2f s", graph, what, time.perf_counter() - start)
        cached = (key, session)
        _SESSIONS[generator] = cached
    return cached[1]


def register_weights_folder(generator: nn.Module, folder: str | os.PathLike) -> None:
    """Remember that ``generator`` was loaded from ``folder``: a graph exported there is used for it."""
    _WEIGHTS_FOLDERS[generator] = Path(folder)


# ----- the policy ----------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    """A resolved runtime for one G: ONNX Runtime on ``graph``, or PyTorch."""

    policy: str  # what was asked: auto, onnx or torch
    name: str  # what renders: "onnx" or "torch"
    reason: str  # why (for logs and the benchmark)
    graph: Path | None = None  # the ONNX graph (name "onnx" only)
    threads: int = 0  # ONNX Runtime's intra-op threads (name "onnx" only)

    @property
    def is_onnx(self) -> bool:
        return self.name == "onnx"

    def describe(self, precision: Precision) -> str:
        """``"ONNX Runtime fp32"`` or ``"PyTorch bf16"``: what renders and in which precision."""
        return "ONNX Runtime fp32" if self.is_onnx else f"PyTorch {precision.name}"

    def renderer(self, generator: nn.Module, precision: Precision) -> Renderer:
        """What renders ``generator`` (G or a fine-tuned G' of the same architecture): a session or the network."""
        if self.is_onnx and self.graph is not None:
            return onnx_generator(self.graph, generator, self.threads)
        return precision.for_inference(generator)


def _torch_runtime(policy: str, reason: str) -> Runtime:
    return Runtime(policy, "torch", reason)


def resolve_runtime(
    policy: str | Runtime | None,
    generator: nn.Module,
    precision: Precision,
    folders: Iterable[str | os.PathLike] = (),
) -> Runtime:
    """The :class:`Runtime` for ``policy`` (``auto``, ``onnx``, ``torch``; ``None``: ``$TALKING_HEAD_RUNTIME``) and G.

    ``generator`` is the base model's G (a fine-tuned G' renders on its graph);
    ``precision`` the rendering precision ``auto`` compares against. The graph
    is looked for in ``folders``, the folder G was loaded from and the cache,
    and exported into the cache when missing. Never raises for a missing
    ``onnxruntime`` or a failed export: it falls back to PyTorch and logs why.
    A :class:`Runtime` passes through.
    """
    if isinstance(policy, Runtime):
        return policy
    policy = runtime_from_env() if policy is None else parse_runtime(policy)
    device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    if policy == "torch":
        return _torch_runtime(policy, "PyTorch asked for")
    if device.type != "cpu":
        return _torch_runtime(policy, f"{device.type}: PyTorch (ONNX Runtime renders on CPUs only)")
    if policy == "auto" and precision.policy == "bf16":  # a bf16 run asked for renders in bf16
        return _torch_runtime(policy, "bf16 asked for: ONNX Runtime renders in float32 only")
    ort = import_onnxruntime()
    if ort is None:
        runtime = _torch_runtime(policy, "onnxruntime is not installed (pip install onnxruntime)")
        _log_choice(runtime, warn=policy == "onnx")
        return runtime
    folders = [*folders, *([_WEIGHTS_FOLDERS[generator]] if generator in _WEIGHTS_FOLDERS else [])]
    try:
        graph = cached_graph(generator, folders)
    except Exception as error:  # noqa: BLE001 - any export failure falls back to PyTorch, with the reason logged
        runtime = _torch_runtime(policy, f"the ONNX export failed ({type(error).__name__}: {error})")
        _log_choice(runtime, warn=True)
        return runtime
    threads = torch.get_num_threads()
    if policy == "onnx":
        return Runtime(policy, "onnx", f"ONNX Runtime {ort.__version__} asked for", graph, threads)
    return _auto(graph, threads, precision, ort.__version__, generator)


def _log_choice(runtime: Runtime, warn: bool = False) -> None:
    log = logger.warning if warn else logger.info
    log("runtime %s: rendering with %s (%s)", runtime.policy, runtime.name, runtime.reason)


def auto_threshold(precision: Precision) -> float:
    """The speed-up over PyTorch at ``precision`` from which ``auto`` renders with ONNX Runtime."""
    return 1 / BF16_MIN_SPEEDUP if precision.is_bf16 else AUTO_MIN_SPEEDUP


@functools.cache
def _auto_choice(graph: Path, threads: int, precision: Precision, speedup: float, version: str) -> Runtime:
    threshold = auto_threshold(precision)
    verdict = "≥" if speedup >= threshold else "<"
    reason = (
        f"ONNX Runtime {version} fp32 measured {speedup:.2f}× PyTorch {precision.name} on G "
        f"({verdict} {threshold:.2f}×, batch {AUTO_BATCH}, {threads} threads)"
    )
    name = "onnx" if speedup >= threshold else "torch"
    runtime = Runtime("auto", name, reason, graph if name == "onnx" else None, threads)
    _log_choice(runtime)
    return runtime


# (graph, threads, precision) → measured speed-up of ONNX Runtime over PyTorch: measured once per process.
_SPEEDUPS: dict[tuple[Path, int, Precision], float] = {}


def _auto(graph: Path, threads: int, precision: Precision, version: str, generator: nn.Module) -> Runtime:
    key = (graph, threads, precision)
    if key not in _SPEEDUPS:
        _SPEEDUPS[key] = measure_onnx_speedup(generator, graph, precision)
    return _auto_choice(graph, threads, precision, _SPEEDUPS[key], version)


def _random_inputs(generator: nn.Module, batch: int) -> dict[str, torch.Tensor]:
    config = generator.config
    size = config.image_size
    rng = torch.Generator().manual_seed(0)
    inputs = {
        "y": torch.rand(batch, config.landmark_channels, size, size, generator=rng) * 2 - 1,
        "adain_params": torch.randn(generator.n_adain_params, generator=rng) * 0.1,
    }
    if config.warp_guided:
        inputs["warp"] = torch.rand(batch, config.image_channels, size, size, generator=rng) * 2 - 1
    return inputs


def measure_onnx_speedup(
    generator: nn.Module,
    graph: Path,
    precision: Precision,
    batch: int = AUTO_BATCH,
    rounds: int = AUTO_ROUNDS,
) -> float:
    """PyTorch time / ONNX Runtime time of G on ``batch`` random frames: medians of ``rounds`` interleaved calls.

    PyTorch runs at ``precision`` (bf16 or fp32, as rendering would); each
    side gets one untimed warm-up call first. Above 1, ONNX Runtime is faster.
    """
    inputs = _random_inputs(generator, batch)
    runners = {"torch": precision.for_inference(generator), "onnx": onnx_generator(graph, generator)}
    times: dict[str, list[float]] = {name: [] for name in runners}
    training = generator.training
    try:
        generator.eval()  # as rendering runs it: no power iteration, the buffers stay as they are
        with torch.inference_mode():
            for round_ in range(rounds + 1):
                for name, run in runners.items():
                    start = time.perf_counter()
                    run(**inputs)
                    if round_:
                        times[name].append(time.perf_counter() - start)
    finally:
        generator.train(training)
    return statistics.median(times["torch"]) / statistics.median(times["onnx"])


def max_difference(generator: nn.Module, graph: Path, batch: int = AUTO_BATCH) -> float:
    """Largest absolute difference between ONNX Runtime's and PyTorch's float32 x̂ on ``batch`` random frames."""
    inputs = _random_inputs(generator, batch)
    with torch.inference_mode():
        expected = generator.eval()(**inputs)
        got = onnx_generator(graph, generator)(**inputs)
    return float((got - expected).abs().max())

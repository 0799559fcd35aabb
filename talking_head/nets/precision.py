"""The precision policy: ``auto | bf16 | fp32``, resolved once per device (DESIGN §8).

bf16 only pays on a CPU with bf16 matrix units (Intel AMX-BF16, AVX-512 BF16;
``amx_bf16`` / ``avx512_bf16`` in ``/proc/cpuinfo``); elsewhere torch emulates
it and it is several times slower than fp32. So nothing is assumed:

- ``fp32``: everything in float32, exactly as before.
- ``bf16``: bf16 wherever it is asked for, even without hardware support
  (slow there, but it works: tests and comparisons).
- ``auto``: on CUDA bf16 (every loss is float32 whatever the networks run
  in, see :func:`talking_head.nets.losses.float32_loss`); on a CPU bf16 only
  when the CPU has a bf16 flag *and* bf16 measures at least
  :data:`AUTO_MIN_SPEEDUP` × faster than fp32 *for that task*: rendering and
  training (fine-tuning, meta-learning) are decided apart, because they
  differ (oneDNN's bf16 kernels help a training step much more than a
  rendering batch on some CPUs, and not at all on others). The measurement
  runs the project's own generator architecture (the ``cpu`` preset at 128²,
  random weights) the way each task runs it, fp32 and bf16 alternating for
  :data:`AUTO_ROUNDS` rounds, and takes the median of the per-round ratios:
  on a shared, loaded machine a single timing (or the best of a few) read
  anywhere from 1.7× to 13× where the app saw about 1.1×.

:func:`resolve_precision` turns a policy into a :class:`Precision`, which
carries what to do with it:

- training and fine-tuning: :meth:`Precision.autocast` (bf16 autocast; the
  weights, the optimizer state, the EMA and the loss sums stay float32) and
  :meth:`Precision.prepare_for_training` (channels_last weights on a CPU,
  where oneDNN's bf16 kernels want that layout);
- rendering: :meth:`Precision.for_inference` wraps a network so that it runs
  with bf16 weights (spectral norms folded in, in float32, once) and
  channels_last activations on a CPU, or under autocast on CUDA, taking and
  returning float32 tensors.

The app reads the policy from ``TALKING_HEAD_PRECISION`` (:func:`precision_from_env`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import platform
import statistics
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from talking_head.errors import TalkingHeadError

logger = logging.getLogger(__name__)

POLICIES = ("auto", "bf16", "fp32")
ENV_PRECISION = "TALKING_HEAD_PRECISION"  # the app's precision policy (default auto)
# CPU flags of bf16 matrix hardware: x86 AMX and AVX-512 BF16, Arm's BF16 extension.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
# auto picks bf16 on a CPU only when the measurement finds it this much faster:
# bf16 costs accuracy, so a tie goes to fp32.
AUTO_MIN_SPEEDUP = 1.25
# What a precision is resolved for: rendering (inference) or training (fine-tuning, meta-learning).
TASKS = ("render", "train")
_TASK_NAMES = {"render": "rendering", "train": "training step"}
AUTO_ROUNDS = 5  # interleaved fp32/bf16 rounds of auto's measurement (the median ratio decides)


def parse_policy(value: str, choices: tuple[str, ...], kind: str) -> str:
    """``value`` lower-cased and checked against ``choices``; ``TalkingHeadError`` naming the ``kind`` otherwise."""
    text = str(value).strip().lower()
    if text not in choices:
        raise TalkingHeadError(f"unknown {kind} {value!r}: use one of {', '.join(choices)}")
    return text


def policy_from_env(
    environ: Mapping[str, str] | None, variable: str, choices: tuple[str, ...], kind: str
) -> str:
    """The policy in ``$variable`` (``auto`` when unset or empty), checked against ``choices``."""
    environ = os.environ if environ is None else environ
    value = environ.get(variable, "").strip() or "auto"
    try:
        return parse_policy(value, choices, kind)
    except TalkingHeadError:
        raise TalkingHeadError(
            f"{variable}={value!r} is not a {kind}: set it to one of {', '.join(choices)}"
        ) from None


def parse_precision(policy: str) -> str:
    """``policy`` lower-cased and checked against :data:`POLICIES`; raises ``TalkingHeadError`` otherwise."""
    return parse_policy(policy, POLICIES, "precision")


def precision_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The policy in ``$TALKING_HEAD_PRECISION`` (``auto`` when unset or empty)."""
    return policy_from_env(environ, ENV_PRECISION, POLICIES, "precision")


# ----- CPU capability ------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (``flags`` on x86, ``Features`` on Arm); empty elsewhere."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return frozenset(value.split())
    return frozenset()


def cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 matrix-hardware flags this CPU has (``amx_bf16``, ``avx512_bf16``, ``bf16``), maybe none.

    Where ``/proc/cpuinfo`` is missing, torch's own CPU probes answer for x86.
    """
    flags = cpu_flags()
    if not flags and platform.machine().lower() in ("x86_64", "amd64"):
        probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
        return tuple(f for f, probe in probes.items() if getattr(torch.cpu, probe, lambda: False)())
    return tuple(f for f in BF16_CPU_FLAGS if f in flags)


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return task


def _probe_generator() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The ``cpu`` preset's G at 128² with random weights, and a batch of 4 inputs for it."""
    import dataclasses

    from talking_head.nets.config import ModelConfig
    from talking_head.nets.generator import Generator

    cpu = ModelConfig.preset("cpu")  # E and D lose their last block at 128² (G has no fixed depth)
    config = dataclasses.replace(
        cpu,
        image_size=128,
        embedder_channels=cpu.embedder_channels[:-1],
        discriminator_channels=cpu.discriminator_channels[:-1],
    )
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = Generator(config)
    size = config.image_size
    inputs = {
        "y": torch.rand(4, 3, size, size, generator=generator) * 2 - 1,
        "e": torch.randn(4, config.embedding_dim, generator=generator),
    }
    if config.warp_guided:
        inputs["warp"] = torch.rand(4, 3, size, size, generator=generator) * 2 - 1
    return network, inputs


def _task_runner(task: str, precision: Precision) -> Any:
    """A function running one step of ``task`` in ``precision`` on the probe G (built once)."""
    network, inputs = _probe_generator()
    if task == "train":  # a training step costs about 3 renders: half the batch keeps the measurement short
        inputs = {name: value[:2] for name, value in inputs.items()}
    if task == "render":
        runner = precision.for_inference(network)

        def render() -> None:
            with torch.inference_mode():
                runner(**inputs)

        return render
    network.train()
    precision.prepare_for_training(network)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-5)

    def train_step() -> None:
        with precision.autocast():
            fake = network(**inputs)
        loss = (fake.float() - inputs["y"]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return train_step


def measure_bf16_speedup(task: str = "render", rounds: int = AUTO_ROUNDS) -> float:
    """Median over ``rounds`` of fp32 time / bf16 time of one ``task`` step on this CPU (above 1: bf16 is faster).

    Each round times fp32 then bf16 back to back (after one warm-up of each),
    so load from other processes hits both sides of a ratio alike. bf16 runs
    as the project runs it: for rendering a bf16 channels_last copy of G
    (:meth:`Precision.for_inference`), for training autocast with
    channels_last weights.
    """
    _check_task(task)
    fp32 = Precision("fp32", torch.float32, "cpu", channels_last=False, reason="measurement")
    bf16 = Precision("bf16", torch.bfloat16, "cpu", channels_last=True, reason="measurement")
    runners = (_task_runner(task, fp32), _task_runner(task, bf16))
    for run in runners:
        run()  # warm-up: oneDNN primitives, the bf16 copy
    ratios = []
    for _ in range(rounds):
        seconds = []
        for run in runners:
            start = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - start)
        ratios.append(seconds[0] / seconds[1])
    return float(statistics.median(ratios))


@functools.cache
def _cpu_bf16_speedup(task: str, threads: int) -> float:
    # The first resolution may come from inside a rendering loop: the probe needs normal tensors and autograd.
    with torch.inference_mode(False), torch.enable_grad():
        return measure_bf16_speedup(task)


def measure_cpu_bf16_speedup(task: str = "render") -> float:
    """:func:`measure_bf16_speedup` for ``task``, measured once per process and thread count."""
    return _cpu_bf16_speedup(_check_task(task), torch.get_num_threads())


def cpu_bf16_choice(task: str = "render") -> tuple[bool, str]:
    """Whether ``auto`` uses bf16 for ``task`` on this CPU, and why (flags and the measured speed-up)."""
    flags = cpu_bf16_flags()
    if not flags:
        return False, "no bf16 matrix hardware (no amx_bf16/avx512_bf16 CPU flag): bf16 would be emulated"
    speedup = measure_cpu_bf16_speedup(task)
    verdict = "≥" if speedup >= AUTO_MIN_SPEEDUP else "<"
    reason = (
        f"CPU flags {', '.join(flags)}; {_TASK_NAMES[task]}, median of {AUTO_ROUNDS} interleaved rounds: "
        f"bf16 {speedup:.2f}× fp32 ({verdict} {AUTO_MIN_SPEEDUP}×)"
    )
    return speedup >= AUTO_MIN_SPEEDUP, reason


# ----- the policy --------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """A resolved policy for one device type: the compute dtype and how to get it."""

    policy: str  # what was asked: auto, bf16 or fp32
    dtype: torch.dtype  # compute dtype: torch.bfloat16 or torch.float32
    device_type: str  # "cpu", "cuda", ...
    channels_last: bool  # convs run channels_last (bf16 on a CPU)
    reason: str  # why this dtype (for logs and the benchmark)
    task: str = "render"  # what it was resolved for: "render" or "train" (auto decides them apart)

    @property
    def name(self) -> str:
        """``"bf16"`` or ``"fp32"``."""
        return "bf16" if self.is_bf16 else "fp32"

    @property
    def is_bf16(self) -> bool:
        return self.dtype == torch.bfloat16

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on this device type for bf16; a no-op for fp32 (training and fine-tuning)."""
        if not self.is_bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16)

    def prepare_for_training(self, *modules: nn.Module) -> None:
        """Move the weights of ``modules`` to channels_last in place when this precision wants it.

        Only the layout changes (float32 master weights and their optimizer
        state stay float32); a conv whose weight is channels_last runs
        channels_last, and its output keeps the layout.
        """
        if self.channels_last:
            for module in modules:
                module.to(memory_format=torch.channels_last)

    def for_inference(self, module: nn.Module) -> nn.Module:
        """``module`` itself for fp32, else a wrapper running it in bf16 (float32 in, float32 out).

        On a CPU the wrapper holds a bf16 copy of the module (spectral norms
        folded in, once, in float32) and feeds it channels_last inputs; the
        module itself is untouched. The copy is cached per module and made
        again once any of its tensors changed in place (an optimizer step, a
        ``load_state_dict``). On CUDA it runs the module itself under bf16
        autocast.
        """
        if not self.is_bf16:
            return module
        if self.device_type != "cpu":
            return _Bf16Inference(module, self)
        key = (self, tuple((id(t), t._version) for t in [*module.parameters(), *module.buffers()]))
        cached = _INFERENCE_COPIES.get(module)
        if cached is None or cached[0] != key:
            cached = (key, _Bf16Inference(_inference_copy(module, self.dtype, self.channels_last), self))
            _INFERENCE_COPIES[module] = cached
        return cached[1]


def resolve_precision(
    policy: str | Precision | None = None,
    device: str | torch.device | None = None,
    task: str = "render",
) -> Precision:
    """The :class:`Precision` for ``policy`` (``auto``, ``bf16``, ``fp32``) on ``device`` for ``task``.

    ``device`` defaults to CUDA if present; ``task`` is ``"render"`` or
    ``"train"`` (fine-tuning and meta-learning). ``None`` reads
    ``$TALKING_HEAD_PRECISION`` (default ``auto``). A :class:`Precision`
    passes through when it was made for ``device``'s type and ``task``;
    otherwise its policy is resolved again. ``auto`` on a CPU with bf16 flags
    measures once per process (per task and thread count) and logs its choice once.
    """
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    _check_task(task)
    if isinstance(policy, Precision):
        if policy.device_type == device.type and policy.task == task:
            return policy
        policy = policy.policy
    policy = precision_from_env() if policy is None else parse_precision(policy)
    return _resolve(policy, device.type, task)


@functools.cache
def _resolve(policy: str, device_type: str, task: str = "render") -> Precision:
    on_cpu = device_type == "cpu"
    if policy == "fp32":
        use_bf16, reason = False, "fp32 asked for"
    elif policy == "bf16":
        use_bf16, reason = True, "bf16 asked for"
        if on_cpu and not cpu_bf16_flags():
            reason += " (this CPU has no bf16 hardware: emulated, slower than fp32)"
    elif on_cpu:
        use_bf16, reason = cpu_bf16_choice(task)
    elif device_type == "cuda":
        use_bf16, reason = True, "CUDA: bf16 autocast (losses in float32)"
    else:
        use_bf16, reason = False, f"{device_type}: fp32"
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    precision = Precision(policy, dtype, device_type, use_bf16 and on_cpu, reason, task)
    if policy == "auto":
        logger.info("precision auto for %s on %s: %s (%s)", _TASK_NAMES[task], device_type, precision.name, reason)
    return precision


# ----- float32 losses -------------------------------------------------------------


def _to_float32(value: Any) -> Any:
    """Floating tensors (also inside lists and tuples) as float32; anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    return value


def _device_types(values: Any) -> set[str]:
    """The device types of the tensors in ``values`` (nested lists and tuples included)."""
    if isinstance(values, torch.Tensor):
        return {values.device.type}
    if isinstance(values, (list, tuple)):
        return set().union(*(_device_types(v) for v in values)) if values else set()
    return set()


def float32_loss(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run the loss ``fn`` in float32 with autocast off on its tensors' devices.

    Its floating tensor arguments (lists and tuples of them too) are cast to
    float32 first, so the whole computation, every conv, mean, product and
    division, is float32 even when it is called under bf16 autocast. The
    gradient flows back through the casts to the bf16 activations.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = [*args, *kwargs.values()]
        with contextlib.ExitStack() as stack:
            for device_type in _device_types(values):
                if torch.amp.is_autocast_available(device_type):
                    stack.enter_context(torch.autocast(device_type, enabled=False))
            return fn(*_to_float32(args), **{k: _to_float32(v) for k, v in kwargs.items()})

    return wrapper


# ----- bf16 inference ----------------------------------------------------------------

# module → (its tensors' versions and the precision, the bf16 wrapper); entries go with the module.
_INFERENCE_COPIES: weakref.WeakKeyDictionary[nn.Module, tuple[Any, nn.Module]] = weakref.WeakKeyDictionary()


def _inference_copy(module: nn.Module, dtype: torch.dtype, channels_last: bool) -> nn.Module:
    """A copy of ``module`` in eval mode with its parametrizations (spectral norm) folded in, cast to ``dtype``.

    Folded in float32 and in eval mode (no power iteration runs), then cast.
    ``parametrize.remove_parametrizations`` is not used: it deletes the
    property from the parametrized class, which a deep copy shares with the
    original module.
    """
    copy_ = copy.deepcopy(module).eval().requires_grad_(False)
    with torch.no_grad():
        for sub in list(copy_.modules()):
            if not parametrize.is_parametrized(sub):
                continue
            folded = {name: getattr(sub, name).detach().clone() for name in sub.parametrizations}
            del sub._modules["parametrizations"]
            sub.__class__ = parametrize.type_before_parametrizations(sub)
            for name, tensor in folded.items():
                sub.register_parameter(name, nn.Parameter(tensor, requires_grad=False))
    layout = torch.channels_last if channels_last else torch.preserve_format
    return copy_.to(dtype=dtype, memory_format=layout)


def _to_float(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float().contiguous() if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float(v) for v in value)
    return value


class _Bf16Inference(nn.Module):
    """Runs a network in bf16, float32 in and out (see :meth:`Precision.for_inference`).

    Attributes the wrapper lacks (``config``, ``n_adain_params``, ...) come
    from the network it runs.
    """

    def __init__(self, module: nn.Module, precision: Precision) -> None:
        super().__init__()
        self.module = module
        self._precision = precision

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["module"], name)

    def _cast(self, value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            return value
        wants_cl = self._precision.channels_last and value.dim() == 4
        return value.to(
            dtype=self._precision.dtype,
            memory_format=torch.channels_last if wants_cl else torch.preserve_format,
        )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._precision.device_type != "cpu":
            with self._precision.autocast():
                return _to_float(self.module(*args, **kwargs))
        args = tuple(self._cast(a) for a in args)
        kwargs = {k: self._cast(v) for k, v in kwargs.items()}
        return _to_float(self.module(*args, **kwargs))

"""The precision policy: ``auto | bf16 | fp32``, resolved once per device (DESIGN §8).

bf16 only pays on a CPU with bf16 matrix units (Intel AMX-BF16, AVX-512 BF16;
``amx_bf16`` / ``avx512_bf16`` in ``/proc/cpuinfo``); elsewhere torch emulates
it and it is several times slower than fp32. So nothing is assumed:

- ``fp32``: everything in float32, exactly as before.
- ``bf16``: bf16 wherever it is asked for, even without hardware support
  (slow there, but it works: tests and comparisons).
- ``auto``: on CUDA bf16 (as the training loop always did); on a CPU bf16 only
  when the CPU has a bf16 flag *and* a short, cached micro-benchmark (a 3×3
  conv stack, fp32 vs bf16 channels_last, tens of ms) measures bf16 at least
  :data:`AUTO_MIN_SPEEDUP` × faster; fp32 otherwise.

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
import time
import weakref
from collections.abc import Mapping
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
# auto picks bf16 on a CPU only when the micro-benchmark measures it this much faster:
# bf16 costs accuracy, so a tie goes to fp32.
AUTO_MIN_SPEEDUP = 1.25


def parse_precision(policy: str) -> str:
    """``policy`` lower-cased and checked against :data:`POLICIES`; raises ``TalkingHeadError`` otherwise."""
    text = str(policy).strip().lower()
    if text not in POLICIES:
        raise TalkingHeadError(f"unknown precision {policy!r}: use one of {', '.join(POLICIES)}")
    return text


def precision_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The policy in ``$TALKING_HEAD_PRECISION`` (``auto`` when unset or empty)."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV_PRECISION, "").strip() or "auto"
    try:
        return parse_precision(value)
    except TalkingHeadError:
        raise TalkingHeadError(
            f"{ENV_PRECISION}={value!r} is not a precision: set it to one of {', '.join(POLICIES)}"
        ) from None


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


def _conv_stack_seconds(dtype: torch.dtype, channels_last: bool, repeats: int = 3) -> float:
    """Best wall time of a 4-layer 3×3 conv stack (32 ch, 64², batch 4: 0.6 GMAC) after a warm-up run."""
    generator = torch.Generator().manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    weights = [torch.randn(32, 32, 3, 3, generator=generator).mul_(0.06) for _ in range(4)]
    weights = [w.to(dtype).contiguous(memory_format=layout) for w in weights]
    x = torch.randn(4, 32, 64, 64, generator=generator).to(dtype).contiguous(memory_format=layout)
    best = float("inf")
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            h = x
            for w in weights:
                h = torch.nn.functional.conv2d(h, w, padding=1).relu_()
            if i:
                best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def _cpu_bf16_speedup(threads: int) -> float:
    return _conv_stack_seconds(torch.float32, False) / _conv_stack_seconds(torch.bfloat16, True)


def measure_cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time of a small conv stack on this CPU (cached per thread count).

    The bf16 side runs channels_last, the layout :meth:`Precision.for_inference`
    gives it; above 1, bf16 is faster.
    """
    return _cpu_bf16_speedup(torch.get_num_threads())


def cpu_bf16_choice() -> tuple[bool, str]:
    """Whether ``auto`` uses bf16 on this CPU, and why (flags and the measured speed-up)."""
    flags = cpu_bf16_flags()
    if not flags:
        return False, "no bf16 matrix hardware (no amx_bf16/avx512_bf16 CPU flag): bf16 would be emulated"
    speedup = measure_cpu_bf16_speedup()
    verdict = "≥" if speedup >= AUTO_MIN_SPEEDUP else "<"
    reason = f"CPU flags {', '.join(flags)}; conv micro-benchmark bf16 {speedup:.2f}× fp32 ({verdict} {AUTO_MIN_SPEEDUP}×)"
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
    policy: str | Precision | None = None, device: str | torch.device | None = None
) -> Precision:
    """The :class:`Precision` for ``policy`` (``auto``, ``bf16``, ``fp32``) on ``device`` (default CUDA if present).

    ``None`` reads ``$TALKING_HEAD_PRECISION`` (default ``auto``). A
    :class:`Precision` passes through when it was made for ``device``'s type;
    otherwise its policy is resolved again for ``device``. ``auto`` on a CPU
    with bf16 flags runs the micro-benchmark once per process (per thread count).
    """
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if isinstance(policy, Precision):
        if policy.device_type == device.type:
            return policy
        policy = policy.policy
    policy = precision_from_env() if policy is None else parse_precision(policy)
    return _resolve(policy, device.type)


@functools.cache
def _resolve(policy: str, device_type: str) -> Precision:
    on_cpu = device_type == "cpu"
    if policy == "fp32":
        use_bf16, reason = False, "fp32 asked for"
    elif policy == "bf16":
        use_bf16, reason = True, "bf16 asked for"
        if on_cpu and not cpu_bf16_flags():
            reason += " (this CPU has no bf16 hardware: emulated, slower than fp32)"
    elif on_cpu:
        use_bf16, reason = cpu_bf16_choice()
    elif device_type == "cuda":
        use_bf16, reason = True, "CUDA: bf16 autocast"
    else:
        use_bf16, reason = False, f"{device_type}: fp32"
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    precision = Precision(policy, dtype, device_type, channels_last=use_bf16 and on_cpu, reason=reason)
    if policy == "auto":
        logger.info("precision auto on %s: %s (%s)", device_type, precision.name, reason)
    return precision


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

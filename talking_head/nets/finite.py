"""Guards against non-finite values in optimizer steps (fine-tuning and meta-training).

One NaN or infinity in a loss reaches every weight through Adam in one step
and never leaves: all later outputs are garbage. :func:`step_if_finite` takes
an optimizer step only when the loss and every gradient are finite; otherwise
it drops the gradients and leaves the parameters *and* the optimizer's state
(its moments and step count) exactly as they were. The callers count the
skipped steps and restore their last finite state when several come in a row.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

# Skipped steps in a row after which fine-tuning and training restore their last finite state.
MAX_NONFINITE_STEPS = 3


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every element of every floating tensor in ``tensors`` is finite (one sync for all)."""
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point() and t.numel()]
    return bool(torch.stack(flags).all()) if flags else True


def module_finite(*modules: nn.Module) -> bool:
    """Whether every parameter and buffer of ``modules`` is finite."""
    return all_finite(t for m in modules for t in [*m.parameters(), *m.buffers()])


def step_if_finite(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: Iterable[torch.Tensor] | None = None
) -> bool:
    """``optimizer.step()`` if ``loss`` and the gradients of ``params`` are finite; True when it stepped.

    ``params`` defaults to the optimizer's own parameters. Call it after
    ``loss.backward()`` (and after any gradient averaging across ranks, so that
    every rank decides alike). A skipped step sets the gradients to None and
    touches neither the parameters nor the optimizer's state.
    """
    if params is None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
    grads = [p.grad for p in params if p.grad is not None]
    if all_finite([loss.detach(), *grads]):
        optimizer.step()
        return True
    optimizer.zero_grad(set_to_none=True)
    return False

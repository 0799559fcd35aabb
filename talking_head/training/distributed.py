"""Data parallelism across processes and nodes (``torchrun``): joining the group, averaging gradients, checks.

The stylegan2-ada scheme (see :mod:`talking_head.training.train`): no
``DistributedDataParallel`` wrapper; after each backward every gradient is
averaged across ranks with one flat ``all_reduce`` per optimizer. A single
process (no ``RANK`` in the environment) is a world of one and every helper
here does nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    """Where this process sits: rank, world size and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | torch.device | None) -> Dist:
    """Join the process group when launched by torchrun (``RANK`` set); pick this process's device."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return Dist(0, 1, torch.device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(
        dist.get_rank(),
        dist.get_world_size(),
        torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"),
    )


def average_gradients(params: list[nn.Parameter], env: Dist) -> None:
    """Average gradients over ranks (one flat all_reduce); a missing gradient counts as zero."""
    if not env.enabled:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= env.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast_state(modules: list[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def reduce_means(sums: dict[str, torch.Tensor], count: int, env: Dist) -> dict[str, float]:
    """Means over the interval and, under DDP, over ranks."""
    keys = sorted(sums)
    values = torch.stack([sums[k] for k in keys]).double() / max(count, 1)
    if env.enabled:
        dist.all_reduce(values)
        values = values / env.world_size
    return {k: float(v) for k, v in zip(keys, values.cpu())}


def check_ranks_in_sync(modules: list[nn.Module], env: Dist) -> None:
    """Raise if ranks hold different parameters (a bug in gradient averaging would show here)."""
    if not env.enabled:
        return
    total = torch.stack([p.detach().double().sum() for m in modules for p in m.parameters()]).to(env.device)
    gathered = [torch.zeros_like(total) for _ in range(env.world_size)]
    dist.all_gather(gathered, total)
    for other in gathered[1:]:
        if not torch.allclose(gathered[0], other, rtol=1e-6, atol=1e-8):
            raise RuntimeError("DDP ranks hold different parameters; gradient averaging is broken")

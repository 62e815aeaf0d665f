"""Data-parallel training under torchrun: PyTorch's own engine, configured from torchrun's environment.

Every rank trains the same scores on its shard of every batch; DistributedDataParallel averages the
gradients, so a step equals the single-process step on the whole batch. Only rank 0 commits, and
only after every rank has reported success.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from supsup_cli.engine import device as device_


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_leader() -> bool:
    return rank() == 0


@contextmanager
def session(device_name: str) -> Iterator[torch.device]:
    """The device of this process; under torchrun, a process group (nccl on CUDA, gloo on the CPU)."""
    device = device_.resolve(device_name)
    if world_size() == 1:
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


def shard(index: torch.Tensor) -> torch.Tensor:
    """This rank's part of a batch (every rank draws the same batches from the same seed)."""
    return index[rank() :: world_size()] if active() else index


def all_succeeded() -> bool:
    """A barrier that every rank must reach: a rank that failed never does, and nothing is committed."""
    if not active():
        return True
    done = torch.ones(1, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(done, op=dist.ReduceOp.MIN)
    return bool(done.item())


def data_parallel(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not active():
        return module
    ids = [device] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

"""Data-parallel training under torchrun: NCCL on GPUs, gloo on CPUs. Only rank 0 writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from reenact.device import resolve_device


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join_world(device_name: str) -> tuple[World, torch.device]:
    """The process's place among torchrun's workers (a world of one without torchrun) and its device."""
    device = resolve_device(device_name)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def leave_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def wrapper(world: World, device: torch.device) -> Callable[[nn.Module], nn.Module]:
    """DistributedDataParallel for modules with parameters to train, when there are several workers."""
    if world.size == 1:
        return lambda module: module
    device_ids = [device.index] if device.type == "cuda" else None
    return lambda module: nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def max_across(world: World, value: float) -> float:
    """The largest of every rank's ``value``; a collective call."""
    if world.size == 1:
        return value
    return max(float(t) for t in gather_tensors(world, torch.tensor([value], dtype=torch.float64)))


def gather_tensors(world: World, tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (same shape on each), in rank order, on the CPU; a collective call."""
    if world.size == 1:
        return [tensor]
    # NCCL moves only GPU tensors.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    gathered = [torch.empty_like(tensor, device=device) for _ in range(world.size)]
    dist.all_gather(gathered, tensor.to(device))
    return [t.cpu() for t in gathered]

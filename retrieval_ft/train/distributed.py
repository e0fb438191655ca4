"""Training as several processes (torchrun, accelerate launch): the world, rank 0's values on
every process, the artifact written once, and whether DDP must look for unused parameters.

Knows nothing of data or models beyond parameter names; torch is imported where a process group
is joined, so this module imports without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from .._launch import launch_env

T = TypeVar("T")

DDP_TIMEOUT = timedelta(seconds=1800)  # the Trainer's default ddp_timeout


@dataclass(frozen=True)
class World:
    """This process among the training processes: rank 0 of 1 when launched alone."""

    rank: int = 0
    size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join_world(device: str | None) -> World:
    """Join the process group that a launcher (torchrun, accelerate launch) describes in the
    environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT): gloo on CPUs, NCCL on GPUs.

    The Trainer joins the same group through accelerate's PartialState once its arguments exist;
    joining it here first lets the processes agree on the training rows before that, and makes each
    process's default CUDA device its own GPU (LOCAL_RANK), so that the base encoder and the corpus
    encoding do not all land on GPU 0."""
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()))
    if launch_env().world_size <= 1:
        return World()
    from accelerate import PartialState

    cpu = (device == "cpu" or not torch.cuda.is_available()
           or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"))
    state = PartialState(cpu=cpu, timeout=DDP_TIMEOUT)
    return World(state.process_index, state.num_processes, str(dist.get_backend()))


def from_main(world: World, obj: T) -> T:
    """Rank 0's `obj`, on every process. Every process waits here until rank 0 arrives, so this is
    also the barrier after work that only rank 0 does."""
    if world.size == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@dataclass(frozen=True)
class MainFailed:
    """What rank 0 sends the other processes when writing the artifact failed."""

    error: str


def written_by_main(world: World, write: Callable[[], T]) -> T:
    """Rank 0 runs `write()`; every process returns its result. When it fails, rank 0 tells the
    others before raising, so they stop at once with the reason instead of waiting for the
    process group's timeout."""
    if not world.is_main:
        got = from_main(world, None)
        if isinstance(got, MainFailed):
            raise RuntimeError(f"rank 0 failed to write the artifact ({got.error}); see its log.")
        return got  # type: ignore[return-value]
    try:
        result = write()
    except BaseException as exc:
        if world.size > 1:
            from_main(world, MainFailed(f"{type(exc).__name__}: {exc}"))
        raise
    return from_main(world, result)


def gathers_across_devices(loss: Any) -> bool:
    """Whether `loss` (or the loss it wraps, e.g. inside MatryoshkaLoss) gathers in-batch negatives
    across processes."""
    while loss is not None:
        if getattr(loss, "gather_across_devices", False):
            return True
        loss = getattr(loss, "loss", None)
    return False


# Trainable weights that no embedding reaches: a BERT-style pooler (its output is computed but the
# Pooling module reads the token embeddings), CLIP's contrastive logit scale, and an image tower
# when only texts are encoded.
_NEVER_USED = ("pooler.", "logit_scale")
_IMAGE_TOWER = ("vision_model.", "visual_projection.")


def find_unused_parameters(trainable: Iterable[str], encodes_images: bool) -> bool:
    """Whether DDP must search each step for trainable parameters that take no gradient, given the
    names of the trainable parameters and whether training encodes images. The search costs an
    extra autograd traversal per step (and a warning when nothing is found); without it, a
    parameter that takes no gradient stops DDP at the second step."""
    for name in trainable:
        probe = "." + name
        if any("." + marker in probe for marker in _NEVER_USED):
            return True
        if not encodes_images and any("." + marker in probe for marker in _IMAGE_TOWER):
            return True
    return False

"""Process-group helpers for training under ``torchrun`` (PyTorch DistributedDataParallel).

``torchrun`` starts one process per worker and tells each its place through
environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``). :func:`init_from_env` joins that group when ``WORLD_SIZE`` > 1,
with the gloo backend on CPU and nccl when CUDA is available; without torchrun
nothing is initialised and every helper answers for a single process (rank 0 of 1).

How a distributed step stays equal to a single-process step
(:func:`lossless_triplet.training.batch_loss`):

1. every rank draws the same global P x K batch (same seeded sampler) and
   encodes only its own contiguous shard of rows (:func:`shard_rows`);
2. :func:`gather_codes` concatenates the shards' codes in rank order, so
   every rank holds exactly the single-process codes and computes the same
   global loss, with batch-all, hard or semi-hard mining over the global batch;
3. backward through ``torch.distributed.nn.functional.all_gather`` sums the
   code gradients of all W ranks (each computed the same loss), so each rank's
   parameter gradient is W times its shard's share; DDP averages over the W
   ranks, which gives exactly the single-process gradient.

Sources: PyTorch "Getting started with DistributedDataParallel" and
``torch.distributed.nn.functional``; P x K batches: Hermans, Beyer, Leibe,
"In Defense of the Triplet Loss", 2017.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_gather

__all__ = [
    "default_backend",
    "init_from_env",
    "process_group",
    "is_distributed",
    "rank",
    "local_rank",
    "world_size",
    "is_main_process",
    "device",
    "shard_rows",
    "gather_with_grad",
    "gather_codes",
    "broadcast_object",
    "gather_objects",
    "barrier",
    "destroy",
]


def default_backend() -> str:
    """``"nccl"`` when CUDA is available, else ``"gloo"`` (CPU)."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def is_distributed() -> bool:
    """True inside an initialised process group (of any size)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Global rank of this process; 0 outside a process group."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the group; 1 outside a process group."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """Rank on this machine (torchrun's ``LOCAL_RANK``); 0 when unset."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the one that writes files and prints."""
    return rank() == 0


def device() -> torch.device:
    """Where this rank computes: ``cuda:LOCAL_RANK`` under nccl, else the CPU."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group that torchrun describes, when there is one.

    Does nothing (returns False) when ``WORLD_SIZE`` is unset or 1, so a plain
    ``python``/``lossless-triplet`` run stays a single process, and when a
    group is already initialised (returns True).

    Args:
        backend: ``"gloo"`` | ``"nccl"``; default :func:`default_backend`.

    Returns:
        True when this process is part of a group of more than one process.

    Raises:
        ValueError: ``WORLD_SIZE`` or ``RANK`` is not an integer, or ``RANK``
            is missing while ``WORLD_SIZE`` > 1 (start the workers with torchrun).
    """
    if is_distributed():
        return world_size() > 1
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(text)
    except ValueError:
        raise ValueError(f"WORLD_SIZE={text!r} is not an integer") from None
    if size <= 1:
        return False
    if "RANK" not in os.environ or not os.environ["RANK"].strip().isdigit():
        raise ValueError(f"WORLD_SIZE={size} but RANK={os.environ.get('RANK')!r}: start the workers with torchrun")
    backend = backend or default_backend()
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, init_method="env://")
    return True


@contextlib.contextmanager
def process_group(backend: str | None = None) -> Iterator[bool]:
    """``with process_group() as distributed:`` joins torchrun's group (if any) and leaves it at the end.

    Yields what :func:`init_from_env` returns; destroys only a group it created.
    """
    created = not is_distributed()
    distributed = init_from_env(backend)
    try:
        yield distributed
    finally:
        if created and is_distributed():
            destroy()


def shard_rows(n_rows: int, *, process: int | None = None, processes: int | None = None) -> slice:
    """This rank's contiguous share of a global batch of ``n_rows`` rows.

    Rank r of W gets rows ``[r * n / W, (r + 1) * n / W)``: no row is duplicated
    across ranks and the shards, concatenated in rank order, are the global batch.

    Args:
        n_rows: rows of the global batch.
        process, processes: r and W; default this process's rank and the world size.

    Raises:
        ValueError: W does not divide ``n_rows`` (every rank must hold as many
            rows for the all-gather).
    """
    r = rank() if process is None else int(process)
    w = world_size() if processes is None else int(processes)
    if n_rows % w:
        raise ValueError(
            f"the global batch of {n_rows} rows does not split evenly over {w} processes: "
            f"use a process count that divides {n_rows}, or a batch (classes_per_batch x "
            "samples_per_class) that the process count divides"
        )
    size = n_rows // w
    return slice(r * size, (r + 1) * size)


def gather_with_grad(codes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch from every rank's shard, with gradients flowing back to each shard.

    Codes go through ``torch.distributed.nn.functional.all_gather``, whose
    backward sums the incoming gradients of all ranks (a reduce-scatter; an
    all-to-all under gloo); labels need no gradient and use a plain all-gather.
    Outside a process group both are returned unchanged.

    Shape:
        codes: (b, N) float, labels: (b,) int, with the same b on every rank.
        Output: (W * b, N) and (W * b,), rank 0's rows first.
    """
    if not is_distributed() or world_size() == 1:
        return codes, labels
    parts = [torch.empty_like(labels) for _ in range(world_size())]
    dist.all_gather(parts, labels.contiguous())
    return gather_codes(codes), torch.cat(parts, dim=0)


def gather_codes(codes: torch.Tensor) -> torch.Tensor:
    """The codes half of :func:`gather_with_grad`, for callers that already know the global labels.

    Shape:
        codes: (b, N), the same b on every rank. Output: (W * b, N), rank 0's rows first.
    """
    if not is_distributed() or world_size() == 1:
        return codes

    with warnings.catch_warnings():
        # torch 2.13 marks it deprecated in favour of a private API (_functional_collectives); it still
        # has the summing backward this module relies on, which the equivalence test checks.
        warnings.filterwarnings("ignore", message=".*all_gather is deprecated", category=FutureWarning)
        return torch.cat(all_gather(codes.contiguous()), dim=0)


def broadcast_object(obj: object = None, src: int = 0) -> object:
    """``obj`` from rank ``src`` on every rank (pickled by torch; our own processes only).

    Outside a process group ``obj`` is returned as is.
    """
    if not is_distributed() or world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=device() if dist.get_backend() == "nccl" else None)
    return box[0]


def gather_objects(obj: object) -> list:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` outside a process group)."""
    if not is_distributed() or world_size() == 1:
        return [obj]
    objects: list = [None] * world_size()
    dist.all_gather_object(objects, obj)
    return objects


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if is_distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[local_rank()])
        else:
            dist.barrier()


def destroy() -> None:
    """Leave and destroy the process group (no-op outside one)."""
    if is_distributed():
        dist.destroy_process_group()

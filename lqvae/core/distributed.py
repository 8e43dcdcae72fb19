"""Running on several processes with torchrun: the process group, who this rank is, and what it does.

``torchrun --nproc_per_node N -m lqvae.train|evaluate ...`` starts N copies of the command with the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`session` reads them, joins the process group (gloo on the CPU, NCCL on GPUs, each rank on
``cuda:LOCAL_RANK``) and leaves it when the command ends. A process started without them (plain
``python -m ...``) is world size 1 and creates no process group: every helper below is then a no-op
that returns what one process would have.

The evaluation splits its images into fixed chunks of the global index (:func:`shard`: chunk ``k`` goes
to rank ``k % world``), so which images are attacked together, and with which seed, never depends on
the number of processes; :func:`gather` brings every rank's per-image outcomes to every rank. Training
wraps its objective in ``DistributedDataParallel`` (:mod:`lqvae.train.run`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist

from lqvae.core.device import resolve_device

# the longest a rank waits for the others at a collective: one chunk of the slowest attack, or an epoch's
# evaluation on rank 0. torchrun stops every rank when one fails, so a long wait never outlives a crash.
TIMEOUT = datetime.timedelta(hours=3)
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks: ``rank`` of ``size``, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: a single process, no process group

    @property
    def main(self) -> bool:
        """Rank 0: the one that prints, writes files and saves checkpoints."""
        return self.rank == 0

    def to_dict(self) -> dict[str, Any]:
        return {"world_size": self.size, "backend": self.backend}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer; torchrun sets it, "
                         "so unset it or start the command with torchrun") from None


def launched_world() -> World:
    """What torchrun's environment says (world size 1 without it); joins no group."""
    size = _env_int("WORLD_SIZE", 1)
    if size < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1, got {size}")
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < size:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE={size}), got {rank}")
    return World(rank=rank, size=size, local_rank=local)


def world() -> World:
    """The current process group as a :class:`World` (rank 0 of 1 when none was joined)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=_env_int("LOCAL_RANK", 0),
                 backend=str(dist.get_backend()))


def device_for(requested: str | torch.device, w: World) -> torch.device:
    """``requested`` resolved (:func:`lqvae.core.device.resolve_device`); on CUDA each rank takes GPU ``LOCAL_RANK``."""
    device = resolve_device(requested)
    if device.type == "cuda" and w.size > 1:
        if w.local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {w.local_rank} but only {torch.cuda.device_count()} GPU(s) on this machine; "
                             "pass --nproc_per_node at most the number of GPUs")
        device = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def session(requested_device: str | torch.device = "auto") -> Iterator[tuple[World, torch.device]]:
    """Join torchrun's process group for the block (nothing without torchrun) and leave it after.

    Yields the :class:`World` and this rank's device. The backend is NCCL when the device is a GPU, else
    gloo. A group joined before (a caller that manages its own) is used as it is and left in place.
    """
    w = launched_world()
    if w.size == 1 or dist.is_initialized():
        joined = world() if dist.is_initialized() else w
        yield joined, device_for(requested_device, joined)
        return
    device = device_for(requested_device, w)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=w.rank, world_size=w.size, timeout=TIMEOUT,
                            **({"device_id": device} if device.type == "cuda" else {}))
    try:
        yield world(), device
    finally:
        shutdown()


def shutdown() -> None:
    """Leave the process group (a no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def chunks(n: int, chunk: int) -> list[range]:
    """The fixed chunks of ``range(n)``: ``[0, chunk), [chunk, 2 chunk), ...`` whatever the world size."""
    if chunk < 1:
        raise ValueError(f"expected a chunk size >= 1, got {chunk}")
    return [range(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def shard(n_chunks: int, w: World | None = None) -> list[int]:
    """The chunk indices this rank takes: ``k`` with ``k % world == rank`` (round robin, whole chunks)."""
    w = w or world()
    return list(range(w.rank, n_chunks, w.size))


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` for one process). Picklable objects:
    the ranks are our own processes running our code, never data from a user."""
    w = world()
    if w.size == 1:
        return [obj]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, device: torch.device | None = None) -> bool:
    """True on every rank when ``flag`` is True on at least one (a collective decision, e.g. to stop)."""
    return bool(reduce_values([float(flag)], op="max", device=device)[0] > 0)


def reduce_values(values: Sequence[float], *, op: str = "mean", device: torch.device | None = None) -> list[float]:
    """``values`` combined over the ranks element-wise (``mean``, ``sum`` or ``max``); unchanged for one process."""
    w = world()
    if w.size == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64,
                     device=device if w.backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    if op == "mean":
        t /= w.size
    return t.cpu().tolist()


def barrier() -> None:
    """Wait for every rank (a no-op for one process)."""
    if world().size > 1:
        dist.barrier()


__all__ = ["ENV_VARS", "TIMEOUT", "World", "any_rank", "barrier", "chunks", "device_for", "gather", "launched_world",
           "reduce_values", "session", "shard", "shutdown", "world"]

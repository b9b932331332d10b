"""More than one GPU: the training loop under ``torchrun``, one process per GPU (DistributedDataParallel).

``torchrun --nproc_per_node N -m gancodec.train ...`` starts N copies of the loop and sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in each. :func:`session` reads them and, with more
than one process, joins the process group (NCCL on CUDA, gloo on the CPU) on the device of the
local rank (``cuda:LOCAL_RANK``). Every rank then:

* builds or resumes the same model (DDP also copies rank 0's weights to the others at the start);
* draws its own crops and rate points (:meth:`Ranks.seed`: rank 0 keeps the run's seed, the others
  derive theirs), so one optimiser step sees ``batch_size x WORLD_SIZE`` different crops;
* averages its gradients with the others in ``backward`` (DDP), so every rank takes the same step
  and the replicas stay equal (:func:`params_digest` checks it at the end).

Only rank 0 writes (checkpoints, logs, the final weights). Without ``torchrun`` (or with one
process) nothing here does anything: no process group, the same run as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

from ..device import resolve_device


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and the final weights."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This rank's seed for its crops and rate points: ``seed`` itself on rank 0 (a one-process
        run draws what it drew before), a seed derived from (seed, rank) on the others."""
        if self.rank == 0:
            return seed
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def ranks_from_env() -> Ranks:
    """The ranks torchrun set in the environment; one process of one without them."""
    env = os.environ
    return Ranks(rank=int(env.get("RANK", 0)), local_rank=int(env.get("LOCAL_RANK", 0)),
                 world_size=int(env.get("WORLD_SIZE", 1)))


def pick_device(device: str, ranks: Ranks) -> torch.device:
    """The device of this rank: under torchrun any CUDA device (``auto`` on a GPU machine, ``cuda``) is
    ``cuda:LOCAL_RANK``, one GPU per process; the CPU stays the CPU."""
    dev = resolve_device(device)
    if ranks.distributed and dev.type == "cuda":
        dev = resolve_device(f"cuda:{ranks.local_rank}")  # one GPU per process; a missing one fails in one line
    return dev


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[tuple[Ranks, torch.device]]:
    """This process's ranks and device; under torchrun with several processes, inside the process
    group (joined here and left at the end, unless a caller had joined it already)."""
    ranks = ranks_from_env()
    dev = pick_device(device, ranks)
    joined = ranks.distributed and not dist.is_initialized()
    if joined:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=ranks.rank,
                                world_size=ranks.world_size)
    try:
        yield ranks, dev
    finally:
        if joined:
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are several ranks, else ``model`` itself.

    Buffers are not broadcast each step: the only one, the z prior's coding table, is filled by
    rank 0 at its checkpoints and plays no part in training."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    # torch 2.13 renamed the switch (broadcast_buffers is deprecated there); older ones know only the old name
    sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters \
        else "broadcast_buffers"
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, **{sync: False})


def from_rank0(value: float, ranks: Ranks, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (e.g. its clock: the same learning rate and the same last step)."""
    if not ranks.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def mean_over_ranks(values: dict[str, float], ranks: Ranks, device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks (the logged loss of the whole step, not of rank 0's share)."""
    if not ranks.distributed:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / ranks.world_size).tolist()))


def params_digest(model: torch.nn.Module) -> str:
    """sha256 of the parameters' values, in order (layout-independent): equal replicas, equal digests."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode() + b"\0" + p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def gather_digests(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> list[str]:
    """Every rank's :func:`params_digest`, in rank order (a collective: all ranks call it)."""
    mine = params_digest(model)
    if not ranks.distributed:
        return [mine]
    t = torch.tensor(list(bytes.fromhex(mine)), dtype=torch.uint8, device=device)
    out = [torch.empty_like(t) for _ in range(ranks.world_size)]
    dist.all_gather(out, t)
    return [bytes(o.cpu().tolist()).hex() for o in out]


def barrier(ranks: Ranks, device: torch.device) -> None:
    if ranks.distributed:
        dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)

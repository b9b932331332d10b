"""The one device and out-of-memory policy: which device codes, and what happens when it runs out.

* :func:`resolve_device` turns ``"auto"`` / ``None`` into CUDA when present, else the CPU, and
  refuses a CUDA device this machine lacks in one line (:class:`DeviceError`) before any work,
  instead of failing image by image inside torch.
* :func:`with_backoff` runs a step at a tile size on a device; on out-of-memory it retries with
  half the tile (down to :data:`MIN_TILE`), then on the CPU at the first tile size, and logs each
  retry. Compression, decompression (:mod:`gancodec.codec`), bulk jobs and training use these
  two, so a policy change is made here once.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

import torch

from .errors import GancodecError

log = logging.getLogger("gancodec")

AUTO = "auto"
MIN_TILE = 128  # the smallest tile (pixels) the back-off halves down to
T = TypeVar("T")


class DeviceError(GancodecError, ValueError):
    """A device name is malformed, or names a device this machine does not have."""


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device for ``device``: ``None`` or ``"auto"`` is CUDA when present, else the CPU.

    Raises :class:`DeviceError` (one line, with the fix) for a name torch does not know, or a
    CUDA device this machine does not have (CPU-only torch, no GPU, or an index past the last).
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == AUTO):
        return torch.device("cuda" if cuda_available() else "cpu")
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"device {device!r}: not a device name; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not cuda_available():
            raise DeviceError(f"device {device!r}: this machine has no CUDA device (torch {torch.__version__}, "
                              f"{'built without CUDA' if torch.version.cuda is None else 'no GPU visible'}); "
                              "use --device auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                              f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); use one of them, auto or cpu")
    elif dev.type not in ("cpu", "mps"):
        raise DeviceError(f"device {device!r}: gancodec codes on cpu or cuda; use auto, cpu, cuda or cuda:N")
    return dev


def bf16_autocast_pays(device: torch.device) -> bool:
    """Whether bf16 autocast speeds training up on ``device``: on CUDA, and on a CPU with AMX
    tiles (measured: a training step 2.7x faster on a 2-core Xeon with AMX; on AVX2-only and
    AVX-512-only CPUs bf16 is emulated and slower than float32)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _cpu_has_amx()


def _cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:  # not Linux: no way to tell, take the safe (float32) path
        pass
    return False


def describe(device: torch.device) -> str:
    """A short human name for a resolved device (for a run log): ``cuda:0 (NVIDIA H200)`` or ``cpu``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is running out of memory (CUDA, MPS or host)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def backoff_plan(tile_size: int, device: torch.device, min_tile: int = MIN_TILE) -> list[tuple[int, torch.device]]:
    """The (tile, device) attempts :func:`with_backoff` makes: the tile as given, each half down to
    ``min_tile`` on ``device``, then the first tile on the CPU (when ``device`` is not the CPU)."""
    plan = [(tile_size, device)]
    t = tile_size // 2
    while t >= min_tile:
        plan.append((t, device))
        t //= 2
    if device.type != "cpu":
        plan.append((tile_size, torch.device("cpu")))
    return plan


def with_backoff(step: Callable[[int, torch.device], T], tile_size: int, device: torch.device) -> T:
    """Run ``step(tile_size, device)``; on OOM halve the tile (down to 128), then move to the CPU.

    Anything but OOM is re-raised at once; OOM on the last attempt is re-raised with
    ``exc.attempts`` set to the number of attempts made.
    """
    plan = backoff_plan(tile_size, device)
    for i, (t, dev) in enumerate(plan):
        try:
            return step(t, dev)
        except BaseException as exc:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not is_oom(exc):
                raise
            if i == len(plan) - 1:
                try:
                    exc.attempts = len(plan)  # type: ignore[attr-defined]
                except AttributeError:  # pragma: no cover - exceptions without a __dict__
                    pass
                raise
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            nxt = plan[i + 1]
            log.warning("out of memory with tile %d on %s; retrying with tile %d on %s", t, dev, nxt[0], nxt[1])
    raise AssertionError("unreachable")

"""One ``Settings`` object for a bulk job: what the CLI, the Prefect flow and prefect.yaml give.

One set of defaults and one validation: ``gancodec bulk`` builds it from its arguments, the
flow from its parameters (whose defaults are read from here), and tests/test_deployments.py
checks every deployment of prefect.yaml against it. Also the naming of keys (which objects
are images, where an output goes, which shard a key belongs to).
"""

from __future__ import annotations

import dataclasses
import math
import os
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from ..data import COMPRESSED_SUFFIX as OUTPUT_SUFFIX
from ..data import IMAGE_SUFFIXES as IMAGE_EXTENSIONS  # the one set compress and training use too
from ..data import compressed_name, decompressed_name
CONTROL_PREFIX = "_gancodec/"
PARTS_PREFIX = CONTROL_PREFIX + "parts/"
MERGED_MANIFEST = CONTROL_PREFIX + "manifest"
DEFAULT_BATCH_SIZE = 64  # images per Prefect task: a task costs ~0.05 s, 64 images >= ~2 s even on a GPU
DEFAULT_PSNR_FLOOR = 15.0
DEVICES_HELP = "auto (CUDA when present, else the CPU), cpu, cuda, cuda:1 ..."
#: Latent-search steps per tile on a CUDA worker when none are given (docs/bulk.md, "On a GPU"):
#: bounds the search at about GPU_REFINE_STEPS x 2 decodes of GPU time per tile.
GPU_REFINE_STEPS = 50
#: Failure kinds that a later run with the same source ETag, model and setting does not retry.
PERMANENT_KINDS = frozenset({"data", "verify", "key"})
MODEL_FREE_KINDS = frozenset({"data", "key"})  # permanent whatever the weights: a new model does not retry them
ARTIFACT_KEY = "gancodec-bulk-compress"
DECOMPRESS_ARTIFACT_KEY = "gancodec-bulk-decompress"


#: Waits (s) before the retries of a step that failed for a transient storage reason (throttling,
#: 5xx, a dropped connection), each stretched by up to RETRY_JITTER at random: a batch's, and
#: the planning's and finishing's. One schedule for the Prefect tasks and the plain loop.
BATCH_RETRY_DELAYS = (2, 10, 30, 60)
STEP_RETRY_DELAYS = (2, 10, 30)
RETRY_JITTER = 0.5

#: The most images ``parallel=0`` (auto) codes at once: each one holds its tiles' activations
#: (about 1 GB for a 1024-pixel tile, docs/usage.md), so more would trade memory for little.
MAX_AUTO_PARALLEL = 4


@dataclass(frozen=True)
class Settings:
    """A bulk job's parameters (JSON-able for Prefect). ``label`` is the part that decides
    whether an output is current (the rate setting and the latent search)."""

    quality: float | None = None
    bpp: float | None = None
    device: str = "auto"
    tile_size: int | None = None
    psnr_floor: float = DEFAULT_PSNR_FLOOR
    weights: str | None = None
    refine_steps: int | None = None  # encoder-side latent search steps; None = auto (GPU_REFINE_STEPS on CUDA, 0 on the CPU)
    recompress_other_models: bool = False  # redo outputs another model made (default: keep them; they still decode)
    batch_size: int = DEFAULT_BATCH_SIZE
    shard: str | None = None  # "i/n": only keys whose CRC32 falls in shard i of n
    concurrency: int = 1  # batches at once inside one run (1 suits one GPU)
    fallback: bool = True  # the WebP safety net (gancodec.fallback); not part of ``label``
    parallel: int = 0  # images a batch codes at once, on threads sharing torch's threads; 0 = auto (images_at_once)


    def __post_init__(self) -> None:
        if self.quality is not None and self.bpp is not None:
            raise ValueError("give quality or bpp, not both")
        from ..codec import check_refine_steps

        if self.refine_steps is not None:
            check_refine_steps(self.refine_steps, "refine steps")
        for name in ("quality", "bpp"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("batch_size", "concurrency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 1, got {v!r}")
        if isinstance(self.parallel, bool) or not isinstance(self.parallel, int) or self.parallel < 0:
            raise ValueError(f"parallel must be 0 (auto) or a number of images, got {self.parallel!r}")
        if self.device is None:  # a flow parameter or older caller giving None means auto
            object.__setattr__(self, "device", "auto")
        if not isinstance(self.fallback, bool):
            raise ValueError(f"fallback must be true or false, got {self.fallback!r}")
        parse_shard(self.shard)

    @property
    def label(self) -> str:
        """The rate setting as recorded in the manifest and the outputs' metadata (a change of
        it re-encodes outputs made before)."""
        if self.bpp is not None:
            rate = f"bpp={float(self.bpp):g}"
        elif self.quality is not None:
            rate = f"quality={float(self.quality):g}"
        else:
            rate = "quality=default"
        # an explicit search is part of the setting (turning it on redoes outputs made without);
        # the automatic one is not: a CPU worker and a GPU worker keep each other's outputs.
        # The WebP fallback is not either: it never makes an output larger or worse, so outputs
        # made before it existed (or with it off) stay current and a bucket is not redone for it
        return f"{rate},refine={self.refine_steps}" if self.refine_steps else rate

    @property
    def search_steps(self) -> int:
        """Latent-search steps the encoder runs: the explicit count, else (auto) GPU_REFINE_STEPS
        when the device is CUDA and 0 on the CPU. Resolve the device first (:meth:`resolved`)."""
        if self.refine_steps is not None:
            return self.refine_steps
        return GPU_REFINE_STEPS if str(self.device).startswith("cuda") else 0

    def images_at_once(self, threads: int) -> int:
        """How many images a batch codes at once with ``threads`` torch threads: ``parallel``,
        or (0, auto) one per thread up to :data:`MAX_AUTO_PARALLEL` on the CPU, and 1 on CUDA
        or when batches already run concurrently. Each image gets ``threads // n`` threads: on
        the 2-core development machine two images of one thread coded 1.25x the images per
        second of one image of two (docs/speed.md, *Bulk throughput*)."""
        if self.parallel:
            return self.parallel
        if str(self.device).startswith("cuda") or self.concurrency > 1:
            return 1
        return max(1, min(MAX_AUTO_PARALLEL, threads))

    def resolved(self) -> "Settings":
        """The same settings with ``device="auto"`` made concrete (:func:`resolve_device`)."""
        return self.replace(device=resolve_device(self.device))

    @property
    def codec_device(self) -> str | None:
        """The device argument for the codec (``None`` = its own choice: CUDA when present)."""
        return None if self.device in (None, "auto") else self.device

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | "Settings") -> "Settings":
        if isinstance(d, Settings):
            return d
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - valid
        if unknown:
            raise ValueError(f"unknown bulk settings {sorted(unknown)}; valid ones are {sorted(valid)}")
        return cls(**d)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field's default (what the flow's parameters and the CLI's options default to)."""
        return {f.name: f.default for f in dataclasses.fields(cls)}


def resolve_device(device: str | None) -> str:
    """``auto``/None → ``cuda`` when torch sees a CUDA device, else ``cpu``
    (:func:`gancodec.device.resolve_device`, the one device policy); an explicit ``cuda`` on a
    machine without one is a ValueError in one line, at plan time, before any image is read."""
    from ..device import resolve_device as resolve

    return str(resolve(None if device in (None, "", "auto") else device))


def model_id_for(settings: Settings) -> str:
    """The id of the model that will code (the weights' hash); loads the weights once."""
    from .. import codec

    if settings.weights is None and hasattr(codec, "default_model_id"):
        return codec.default_model_id()
    from ..weights import load_model

    return load_model(settings.weights).model_id


def new_run_id() -> str:
    """Sortable and unique: ``20260101T020000Z-1a2b3c4d``."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def is_image_key(key: str) -> bool:
    return os.path.splitext(key)[1].lower() in IMAGE_EXTENSIONS and not key.startswith(CONTROL_PREFIX)


def output_key_for(key: str) -> str:
    """``a/b.png`` → ``a/b.png.gcx``: the rule ``gancodec compress`` uses for folders too."""
    return compressed_name(key)


def png_key_for(key: str) -> str:
    """``a/b.jpg.gcx`` → ``a/b.jpg.png``; ``a/b.png.gcx`` → ``a/b.png`` (never two onto one)."""
    return decompressed_name(key)


def shard_of(key: str, shards: int) -> int:
    """Stable shard of ``key`` (CRC32), so workers given different shards never share a key."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % shards


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``"2/8"`` → ``(2, 8)``: this worker takes keys whose shard is 2 of 8."""
    if not shard:
        return 0, 1
    try:
        i, n = (int(p) for p in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"shard {shard!r} is not 'INDEX/COUNT' such as '0/4'") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {shard!r}: INDEX must be in [0, COUNT)")
    return i, n

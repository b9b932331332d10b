"""Bulk compression of an object store (local folder or ``s3://bucket/prefix``), nothing lost.

The logic lives here, as plain functions a test can call; ``flows/bulk_compress.py`` wraps
them in Prefect tasks (one per batch) and ``gancodec bulk SRC DST`` runs that flow through
:func:`run_cli`. The pieces::

    plan(src, dst, settings)            list SRC (paginated), keep image types, skip what is done,
                                         group the rest into batches
    compress_batch(src, dst, jobs, ...) for each image: read, compress (OOM back-off: half tile,
                                         then CPU), verify the output decodes (header, CRC, PSNR
                                         floor against the source), write ``<key>.gcx`` atomically,
                                         then write the batch's manifest part
    finish_run(...)                      write the run manifest and refresh the merged view

Layout under DST (docs/bulk.md)::

    <key>.gcx                               one output per source image, S3 metadata names its source
    _gancodec/parts/<run>/<batch>.parquet   rows of one batch, written right after the batch
    _gancodec/manifest-<run>.parquet|.csv   every row of one run (ok / failed / skipped)
    _gancodec/manifest.parquet|.csv         merged view: the latest row per source key

Idempotency: outputs are written atomically (S3 PUT; local temp + rename), and a key is done
when the manifest (merged view + parts not merged yet) has an ``ok`` row for the same source
ETag, model id and rate setting. A run killed between an output write and its manifest part
leaves an output with no row: the next run finds it with ``head`` and *adopts* it (its S3
metadata names the source ETag, model and setting; a local output is re-verified against its
source instead) without writing it again. A corrupt input is recorded as failed with its
reason, never retried for the same ETag/model/setting, and the run goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import math
import os
import time
import uuid
import warnings
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import BitstreamError, DataError, GancodecError, ModelError, StorageError
from .storage import ObjectInfo, Store, check_key, is_transient, open_store

log = logging.getLogger("gancodec.bulk")

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".avif"}
)
OUTPUT_SUFFIX = ".gcx"
CONTROL_PREFIX = "_gancodec/"
PARTS_PREFIX = CONTROL_PREFIX + "parts/"
MERGED_MANIFEST = CONTROL_PREFIX + "manifest"
DEFAULT_BATCH_SIZE = 64  # images per Prefect task: a task costs ~0.05 s, 64 images >= ~2 s even on a GPU
DEFAULT_PSNR_FLOOR = 15.0
#: Failure kinds that a later run with the same source ETag, model and setting does not retry.
PERMANENT_KINDS = frozenset({"data", "verify", "key"})
MODEL_FREE_KINDS = frozenset({"data", "key"})  # permanent whatever the weights: a new model does not retry them
ARTIFACT_KEY = "gancodec-bulk-compress"
DECOMPRESS_ARTIFACT_KEY = "gancodec-bulk-decompress"

MANIFEST_COLUMNS: dict[str, str] = {
    "run_id": "string",
    "key": "string",
    "output_key": "string",
    "source_etag": "string",
    "sha256": "string",
    "bytes_in": "int64",
    "bytes_out": "int64",
    "width": "int64",
    "height": "int64",
    "channels": "int64",
    "bpp": "float64",
    "psnr": "float64",
    "model_id": "string",
    "setting": "string",
    "quality": "float64",
    "target_bpp": "float64",
    "status": "string",  # ok | failed | skipped
    "error_kind": "string",  # data | verify | key | oom | storage | internal ("" when ok)
    "error": "string",
    "note": "string",
    "attempts": "int64",
    "seconds": "float64",
    "finished_at": "string",  # UTC, ISO 8601
    "part": "string",  # the manifest part the row came from ("" for rows of no part)
}


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What to make: the rate setting and where/how to run the codec (JSON-able for Prefect)."""

    quality: float | None = None
    bpp: float | None = None
    device: str | None = None
    tile_size: int | None = None
    psnr_floor: float = DEFAULT_PSNR_FLOOR
    weights: str | None = None
    refine_steps: int = 0  # encoder-side latent search (gancodec.latent_refine); 0 = off
    recompress_other_models: bool = False  # redo outputs another model made (default: keep them; they still decode)

    def __post_init__(self) -> None:
        if self.quality is not None and self.bpp is not None:
            raise ValueError("give quality or bpp, not both")
        from .codec import check_refine_steps

        check_refine_steps(self.refine_steps, "refine steps")
        for name in ("quality", "bpp"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")

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
        return f"{rate},refine={self.refine_steps}" if self.refine_steps else rate

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | "Settings") -> "Settings":
        if isinstance(d, Settings):
            return d
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - valid
        if unknown:
            raise ValueError(f"unknown bulk settings {sorted(unknown)}; valid ones are {sorted(valid)}")
        return cls(**d)


def model_id_for(settings: Settings) -> str:
    """The id of the model that will code (the weights' hash); loads the weights once."""
    from . import codec

    if settings.weights is None and hasattr(codec, "default_model_id"):
        return codec.default_model_id()
    from .weights import load_model

    return load_model(settings.weights).model_id


def new_run_id() -> str:
    """Sortable and unique: ``20260101T020000Z-1a2b3c4d``."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def is_image_key(key: str) -> bool:
    return os.path.splitext(key)[1].lower() in IMAGE_EXTENSIONS and not key.startswith(CONTROL_PREFIX)


def output_key_for(key: str) -> str:
    return key + OUTPUT_SUFFIX


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


# --------------------------------------------------------------------------- manifest


def _empty_row() -> dict[str, Any]:
    return {c: (None if t in ("float64",) else (0 if t == "int64" else "")) for c, t in MANIFEST_COLUMNS.items()}


def make_row(**values: Any) -> dict[str, Any]:
    unknown = set(values) - set(MANIFEST_COLUMNS)
    if unknown:
        raise ValueError(f"unknown manifest columns {sorted(unknown)}")
    row = _empty_row()
    row.update(values)
    return row


def rows_to_frame(rows: Sequence[Mapping[str, Any]]):
    import pandas as pd

    frame = pd.DataFrame([{c: r.get(c) for c in MANIFEST_COLUMNS} for r in rows], columns=list(MANIFEST_COLUMNS))
    return frame.astype({c: ("Float64" if t == "float64" else ("Int64" if t == "int64" else "string")) for c, t in MANIFEST_COLUMNS.items()})


def _normalise(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest row with every column, typed: missing/null ints are 0, strings ``""``, floats ``None``."""
    row = {}
    for c, t in MANIFEST_COLUMNS.items():
        v = rec.get(c)
        if v is None or (not isinstance(v, str) and _isna(v)):
            v = None if t == "float64" else (0 if t == "int64" else "")
        elif t == "int64":
            v = int(v)
        elif t == "float64":
            v = float(v)
        else:
            v = str(v)
        row[c] = v
    return row


def frame_to_rows(frame) -> list[dict[str, Any]]:
    return [_normalise(rec) for rec in frame.reindex(columns=list(MANIFEST_COLUMNS)).to_dict("records")]


def _isna(v: Any) -> bool:
    if isinstance(v, float):
        return math.isnan(v)
    try:
        import pandas as pd

        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _arrow_table(rows: Sequence[Mapping[str, Any]]):
    """The rows as an Arrow table with the manifest's schema (pyarrow directly: through a
    pandas DataFrame a 64-row part took ~8 ms, this ~2 ms)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    schema = pa.schema([(c, types[t]) for c, t in MANIFEST_COLUMNS.items()])
    return pa.Table.from_pydict({c: [r.get(c) for r in rows] for c in MANIFEST_COLUMNS}, schema=schema)


def parquet_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(_arrow_table(rows), sink)
    return sink.getvalue().to_pybytes()


def csv_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r.get(c) for c in MANIFEST_COLUMNS])
    return buf.getvalue().encode("utf-8")


def read_parquet_rows(data: bytes) -> list[dict[str, Any]]:
    """Rows of a manifest file (ours, or one written by pandas; missing columns get defaults)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return [_normalise(rec) for rec in pq.read_table(pa.BufferReader(data)).to_pylist()]


def _latest_per_key(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The deciding row per source key: the newest non-skipped one (ties: the later in order)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["status"] == "skipped":
            continue
        old = latest.get(row["key"])
        if old is None or row["finished_at"] >= old["finished_at"]:
            latest[row["key"]] = dict(row)
    return latest


def load_state(dst: Store) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """What DST already holds: (latest row per key, part keys already in the merged view).

    Reads the merged view, then every manifest part it does not include yet (left by a killed
    run or a run still going), so no finished work is ever forgotten.
    """
    merged_rows: list[dict[str, Any]] = []
    if dst.exists(MERGED_MANIFEST + ".parquet"):
        try:
            merged_rows = read_parquet_rows(dst.get(MERGED_MANIFEST + ".parquet"))
        except StorageError:
            raise
        except Exception as exc:  # a damaged merged view is rebuilt from the parts
            log.warning("%s: unreadable merged manifest (%s); rebuilding it from the parts", dst.url_of(MERGED_MANIFEST + ".parquet"), exc)
            merged_rows = []
    included = {r["part"] for r in merged_rows if r["part"]}
    rows = list(merged_rows)
    for info in dst.list(PARTS_PREFIX.rstrip("/")):
        if info.key in included or not info.key.endswith(".parquet"):
            continue
        try:
            part_rows = read_parquet_rows(dst.get(info.key))
        except StorageError:
            raise
        except Exception as exc:
            log.warning("%s: unreadable manifest part skipped (%s)", dst.url_of(info.key), exc)
            continue
        for r in part_rows:
            r["part"] = info.key
        rows.extend(part_rows)
    return _latest_per_key(rows), included


def _done_reason(row: Mapping[str, Any] | None, info: ObjectInfo, model_id: str, setting: str, outputs: Mapping[str, int],
                 keep_other_models: bool = False) -> str | None:
    """Why ``info`` needs no work (``None``: it needs work).

    Done = the manifest has an ``ok`` row for this source ETag and setting AND the output is
    still there with the size recorded (a deleted or replaced output is redone), made by this
    model, or by another one when ``keep_other_models`` (an upgrade does not rewrite a bucket:
    the old outputs still decode, gancodec.weights.history).
    """
    if row is None or row["source_etag"] != (info.etag or "") or row["setting"] != setting:
        return None
    if row["model_id"] != model_id:
        if row["status"] == "failed" and row["error_kind"] in MODEL_FREE_KINDS:
            return f"previously failed ({row['error_kind']}): {row['error']}"
        if not (keep_other_models and row["status"] == "ok" and outputs.get(row["output_key"]) == row["bytes_out"]):
            return None
        from .weights.history import version_of

        release = version_of(row["model_id"])
        made_by = f"weights {release['version']}" if release else f"model {row['model_id']}"
        return f"already compressed by {made_by}; kept (recompress_other_models / --recompress-other-models redoes it)"
    if row["status"] == "ok":
        return "already compressed" if outputs.get(row["output_key"]) == row["bytes_out"] else None
    if row["status"] == "failed" and row["error_kind"] in PERMANENT_KINDS:
        return f"previously failed ({row['error_kind']}): {row['error']}"
    return None


# --------------------------------------------------------------------------- plan


@dataclass
class Plan:
    """The work of one run: batches of jobs, plus rows for what was skipped."""

    run_id: str
    model_id: str
    settings: Settings
    batches: list[list[dict[str, Any]]]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    ignored: int = 0  # objects that are not images (by extension) or other shards' keys
    listed: int = 0

    @property
    def pending(self) -> int:
        return sum(len(b) for b in self.batches)


def plan(
    src: str | Store,
    dst: str | Store,
    settings: Settings | Mapping[str, Any] = Settings(),
    *,
    run_id: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    shard: str | None = None,
    model_id: str | None = None,
) -> Plan:
    """List SRC, keep this shard's image keys, skip what DST already has, batch the rest."""
    settings = Settings.from_dict(settings)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    shard_i, shard_n = parse_shard(shard)
    src_store = src if isinstance(src, Store) else open_store(src)
    dst_store = dst if isinstance(dst, Store) else open_store(dst)
    model_id = model_id or model_id_for(settings)
    run_id = run_id or new_run_id()
    dst_store.probe(write=True)  # a destination that cannot be written fails the run now, not per image
    state, _ = load_state(dst_store)
    outputs = {o.key: o.size for o in dst_store.list() if o.key.endswith(OUTPUT_SUFFIX)}
    result = Plan(run_id=run_id, model_id=model_id, settings=settings, batches=[])
    batch: list[dict[str, Any]] = []
    for info in src_store.list():
        result.listed += 1
        if not is_image_key(info.key) or (shard_n > 1 and shard_of(info.key, shard_n) != shard_i):
            result.ignored += 1
            continue
        prior = state.get(info.key)
        reason = _done_reason(prior, info, model_id, settings.label, outputs, not settings.recompress_other_models)
        if reason is not None:
            carried = {k: prior[k] for k in ("output_key", "sha256", "bytes_in", "bytes_out", "width", "height", "channels", "bpp", "psnr", "quality", "target_bpp")}
            error = prior["error"] if prior["status"] == "failed" else ""
            result.skipped.append(
                make_row(  # model_id: the model that made the kept output
                    run_id=run_id, key=info.key, source_etag=info.etag or "", model_id=prior["model_id"], setting=settings.label,
                    status="skipped", error_kind=prior["error_kind"], error=error, note=reason, finished_at=_now(), **carried,
                )
            )
            continue
        job = {"key": info.key, "etag": info.etag or "", "size": info.size}
        if prior is not None and prior["status"] == "ok" and (prior["model_id"], prior["setting"]) != (model_id, settings.label):
            job["stale_output"] = True  # DST's output was made with another model or setting: never adopt it
        batch.append(job)
        if len(batch) >= batch_size:
            result.batches.append(batch)
            batch = []
    if batch:
        result.batches.append(batch)
    return result


# --------------------------------------------------------------------------- one image


def _is_oom(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def decode_source(data: bytes, name: str) -> tuple[np.ndarray, list[str]]:
    """Decode image bytes into the codec's canonical array, exactly as ``compress`` reads a file
    (same conversions, same ``max_pixels`` cap); returns the conversion notes too.
    :class:`DataError` naming ``name`` if the bytes are empty, corrupt or too large."""
    from .data.imageio import load_image_bytes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels = load_image_bytes(data, name)
    notes = sorted({str(c.message) for c in caught if issubclass(c.category, UserWarning)})
    return pixels, notes


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays (capped at 100 for identical ones)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else min(100.0, 10.0 * math.log10(255.0**2 / mse))


def _tile_plan(settings: Settings) -> list[tuple[int | None, str | None]]:
    """Back-off plan: (tile, device) as given, then half the tile, then the CPU."""
    try:
        from .tiling import DEFAULT_TILE
    except ImportError:  # pragma: no cover
        DEFAULT_TILE = 1024
    tile = settings.tile_size or DEFAULT_TILE
    half = max(64, (tile // 2) // 64 * 64)
    return [(settings.tile_size, settings.device), (half, settings.device), (half, "cpu")]


def encode_with_backoff(pixels: np.ndarray, settings: Settings) -> tuple[bytes, int, list[str]]:
    """Compress; on out-of-memory retry with half the tile size, then on the CPU.

    Returns (bytes, attempts, notes). The codec has its own back-off inside each attempt; this
    one is the outer safety net for OOM that escapes it (e.g. a fragmented GPU).
    """
    from . import codec

    notes: list[str] = []
    plan_ = _tile_plan(settings)
    for attempt, (tile, device) in enumerate(plan_, start=1):
        try:
            data = codec.compress(
                pixels, quality=settings.quality, bpp=settings.bpp, device=device, tile_size=tile,
                refine_steps=settings.refine_steps,
                **({"weights": settings.weights} if settings.weights else {}),
            )
            return data, attempt, notes
        except Exception as exc:  # noqa: BLE001 - only OOM is retried
            if not _is_oom(exc) or attempt == len(plan_):
                if _is_oom(exc):
                    exc.attempts = attempt  # type: ignore[attr-defined]
                raise
            nxt = plan_[attempt]
            notes.append(f"out of memory (tile {tile or 'default'}, {device or 'auto'}); retried with tile {nxt[0]} on {nxt[1] or 'auto'}")
            log.warning("%s", notes[-1])
    raise AssertionError("unreachable")


def verify_output(data: bytes, pixels: np.ndarray, model_id: str, settings: Settings) -> float:
    """Check ``data`` decodes to ``pixels`` well enough: header, CRC (in decompress), PSNR floor.

    Returns the PSNR; raises :class:`BitstreamError` naming what is wrong.
    """
    from . import codec
    from .data.imageio import load_image

    header = codec.read_header(data)
    h, w, c = pixels.shape
    if header.model_id != model_id:
        raise BitstreamError(f"model_id: output names model {header.model_id}, expected {model_id}")
    if (header.height, header.width, header.channels) != (h, w, c):
        raise BitstreamError(f"size: output is {header.width}x{header.height}x{header.channels}, source is {w}x{h}x{c}")
    kwargs = {"weights": settings.weights} if settings.weights else {}
    try:
        decoded = codec.decompress(data, device=settings.device, **kwargs)
    except Exception as exc:  # noqa: BLE001
        if not _is_oom(exc):
            raise
        decoded = codec.decompress(data, device="cpu", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = load_image(decoded)
    if out.shape != pixels.shape:
        raise BitstreamError(f"size: output decodes to {out.shape}, source is {pixels.shape}")
    value = psnr(out, pixels)
    if value < settings.psnr_floor:
        raise BitstreamError(f"psnr: output decodes at {value:.2f} dB, below the sanity floor of {settings.psnr_floor:g} dB")
    return value


def _output_metadata(row: Mapping[str, Any]) -> dict[str, str]:
    return {
        "gancodec-source-etag": row["source_etag"],
        "gancodec-source-sha256": row["sha256"],
        "gancodec-model": row["model_id"],
        "gancodec-setting": row["setting"],
        "gancodec-psnr": f"{row['psnr']:.4f}",
        "gancodec-bytes-in": str(row["bytes_in"]),
        "gancodec-size": f"{row['width']}x{row['height']}x{row['channels']}",
        "gancodec-run": row["run_id"],
    }


def _adopt(src: Store, dst: Store, job: Mapping[str, Any], existing: ObjectInfo, base: dict[str, Any], settings: Settings, t0: float) -> dict[str, Any] | None:
    """A row for an output already in DST that matches this job, or ``None`` to redo it."""
    meta = existing.metadata
    if meta:
        if (meta.get("gancodec-source-etag"), meta.get("gancodec-model"), meta.get("gancodec-setting")) != (
            base["source_etag"], base["model_id"], base["setting"]
        ):
            return None
        try:
            w, h, c = (int(v) for v in meta.get("gancodec-size", "0x0x0").split("x"))
            return make_row(
                **base, status="ok", sha256=meta.get("gancodec-source-sha256", ""), bytes_in=int(meta.get("gancodec-bytes-in", 0)),
                bytes_out=existing.size, width=w, height=h, channels=c, bpp=existing.size * 8 / max(1, w * h),
                psnr=float(meta.get("gancodec-psnr", "nan")), note=f"adopted output of run {meta.get('gancodec-run', '?')}",
                attempts=0, seconds=time.perf_counter() - t0, finished_at=_now(),
            )
        except ValueError:
            return None
    # No metadata (a local folder): adopt only an output newer than its source that verifies,
    # and not one the manifest says was made with another model or setting.
    if job.get("stale_output"):
        return None
    src_info = src.head(job["key"])
    if src_info is None or (existing.last_modified and src_info.last_modified and existing.last_modified < src_info.last_modified):
        return None
    try:
        data = src.get(job["key"])
        pixels, _ = decode_source(data, src.url_of(job["key"]))
        blob = dst.get(existing.key)
        value = verify_output(blob, pixels, base["model_id"], settings)
        header = _read_header(blob)
    except (DataError, BitstreamError, ModelError):
        return None
    if settings.quality is not None and header.quality != round(float(settings.quality), 3):
        return None
    h, w, c = pixels.shape
    return make_row(
        **base, status="ok", sha256=hashlib.sha256(data).hexdigest(), bytes_in=len(data), bytes_out=len(blob),
        width=w, height=h, channels=c, bpp=len(blob) * 8 / (w * h), psnr=value, quality=header.quality,
        note="adopted existing output (re-verified)", attempts=0, seconds=time.perf_counter() - t0, finished_at=_now(),
    )


def _read_header(blob: bytes):
    from . import codec

    return codec.read_header(blob)


def compress_one(src: Store, dst: Store, job: Mapping[str, Any], settings: Settings, model_id: str, run_id: str) -> dict[str, Any]:
    """Compress one source object into ``<key>.gcx``; return its manifest row.

    Per-image problems (corrupt input, OOM on every device, failed verification, a refused
    key, a non-transient storage error) become a ``failed`` row. Transient storage errors
    are raised, so the caller (the Prefect task) retries the whole batch; the retry adopts
    the outputs this attempt already wrote instead of writing them again.
    """
    t0 = time.perf_counter()
    key = job["key"]
    base = dict(run_id=run_id, key=key, source_etag=job.get("etag", ""), model_id=model_id, setting=settings.label,
                target_bpp=settings.bpp, output_key="")

    def failed(kind: str, exc: BaseException | str, attempts: int = 0, **extra: Any) -> dict[str, Any]:
        msg = str(exc)
        log.warning("%s: failed (%s): %s", key, kind, msg)
        return make_row(**{**base, **extra}, status="failed", error_kind=kind, error=msg, attempts=attempts,
                        seconds=time.perf_counter() - t0, finished_at=_now())

    try:
        out_key = check_key(output_key_for(check_key(key)))
        base["output_key"] = out_key
        if dst.url_of(out_key) == src.url_of(key):
            raise StorageError(f"refused key {key!r}: its output would overwrite a source object")
    except StorageError as exc:
        return failed("key", exc)
    try:
        existing = dst.head(out_key)
        if existing is not None:
            adopted = _adopt(src, dst, job, existing, base, settings, t0)
            if adopted is not None:
                return adopted
        data = src.get(key)
    except StorageError as exc:
        if is_transient(exc):
            raise
        return failed("storage", exc)
    sha = hashlib.sha256(data).hexdigest()
    base.update(sha256=sha, bytes_in=len(data))
    attempts = 0
    try:
        pixels, notes = decode_source(data, src.url_of(key))
        h, w, c = pixels.shape
        base.update(width=w, height=h, channels=c)
        blob, attempts, backoff_notes = encode_with_backoff(pixels, settings)
        notes += backoff_notes
        value = verify_output(blob, pixels, model_id, settings)
        header = _read_header(blob)
    except DataError as exc:
        return failed("data", exc)
    except BitstreamError as exc:
        return failed("verify", exc, attempts=max(1, attempts))
    except ModelError:
        raise  # the whole run is misconfigured: no image can succeed
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        if _is_oom(exc):
            return failed("oom", f"out of memory on every device and tile size ({exc})", attempts=getattr(exc, "attempts", 0))
        return failed("internal", f"{type(exc).__name__}: {exc}", attempts=attempts)
    row = make_row(
        **base, status="ok", bytes_out=len(blob), bpp=len(blob) * 8 / (h * w), psnr=value, quality=header.quality,
        note="; ".join(notes), attempts=attempts, finished_at="",
    )
    try:
        dst.put(out_key, blob, metadata=_output_metadata(row), content_type="application/x-gancodec")
    except StorageError as exc:
        if is_transient(exc):
            raise
        return failed("storage", exc, attempts=attempts)
    row["seconds"] = time.perf_counter() - t0
    row["finished_at"] = _now()
    return row


# --------------------------------------------------------------------------- batches and runs


_stores: dict[str, Store] = {}


def cached_store(url: str | Store) -> Store:
    """One store (and S3 client) per URL per process: clients are thread-safe and slow to make."""
    if isinstance(url, Store):
        return url
    store = _stores.get(url)
    if store is None:
        store = _stores[url] = open_store(url)
    return store


def _apply_torch_threads() -> None:
    """Give the calling thread the process's torch thread count.

    Prefect runs tasks in worker threads, and OpenMP keeps its thread count per thread: a
    thread that never called ``torch.set_num_threads`` uses one thread per core whatever the
    process set (``--threads``, a worker's setting), which on a shared machine made the same
    encode 3x slower in a task than in the main thread.
    """
    import torch

    torch.set_num_threads(torch.get_num_threads())


def part_key(run_id: str, batch_index: int) -> str:
    return f"{PARTS_PREFIX}{run_id}/batch-{batch_index:06d}.parquet"


def compress_batch(
    src: str | Store,
    dst: str | Store,
    jobs: Sequence[Mapping[str, Any]],
    settings: Settings | Mapping[str, Any],
    *,
    model_id: str,
    run_id: str,
    batch_index: int,
) -> list[dict[str, Any]]:
    """Compress a batch, then write its manifest part; return the rows.

    Raises only for what a retry may fix (transient storage errors) or what dooms the run
    (ModelError); everything else is a ``failed`` row.
    """
    settings = Settings.from_dict(settings)
    _apply_torch_threads()
    src_store, dst_store = cached_store(src), cached_store(dst)
    rows = [compress_one(src_store, dst_store, job, settings, model_id, run_id) for job in jobs]
    key = part_key(run_id, batch_index)
    for row in rows:
        row["part"] = key
    dst_store.put(key, parquet_bytes(rows), content_type="application/vnd.apache.parquet")
    return rows


def failed_batch_rows(jobs: Sequence[Mapping[str, Any]], settings: Settings | Mapping[str, Any], model_id: str, run_id: str, error: BaseException | str) -> list[dict[str, Any]]:
    """Rows for a batch that could not run at all (e.g. storage down after every retry)."""
    settings = Settings.from_dict(settings)
    kind = "storage" if isinstance(error, StorageError) or (isinstance(error, BaseException) and is_transient(error)) else "internal"
    return [
        make_row(run_id=run_id, key=j["key"], source_etag=j.get("etag", ""), model_id=model_id, setting=settings.label,
                 target_bpp=settings.bpp, status="failed", error_kind=kind, error=str(error), finished_at=_now())
        for j in jobs
    ]


@dataclass
class Summary:
    run_id: str
    model_id: str
    setting: str
    ok: int
    failed: int
    skipped: int
    ignored: int
    bytes_in: int
    bytes_out: int
    seconds: float
    manifest: str
    failures: list[tuple[str, str, str]]  # (key, kind, error), at most 50

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def finish_run(
    dst: str | Store,
    run_id: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    model_id: str,
    setting: str,
    ignored: int = 0,
    seconds: float = 0.0,
) -> Summary:
    """Write the run manifest (parquet + CSV) and refresh the merged view; return a summary."""
    dst_store = cached_store(dst)
    rows = sorted(rows, key=lambda r: r["key"])
    run_key = f"{CONTROL_PREFIX}manifest-{run_id}"
    dst_store.put(run_key + ".parquet", parquet_bytes(rows), content_type="application/vnd.apache.parquet")
    dst_store.put(run_key + ".csv", csv_bytes(rows), content_type="text/csv")
    latest, _ = load_state(dst_store)  # merged view + every part not in it yet (ours included)
    for r in rows:  # rows of batches whose part could not be written
        if r["status"] != "skipped" and not r["part"]:
            old = latest.get(r["key"])
            if old is None or r["finished_at"] >= old["finished_at"]:
                latest[r["key"]] = dict(r)
    merged = sorted(latest.values(), key=lambda r: r["key"])
    dst_store.put(MERGED_MANIFEST + ".parquet", parquet_bytes(merged), content_type="application/vnd.apache.parquet")
    dst_store.put(MERGED_MANIFEST + ".csv", csv_bytes(merged), content_type="text/csv")
    count = {s: sum(1 for r in rows if r["status"] == s) for s in ("ok", "failed", "skipped")}
    failures = [(r["key"], r["error_kind"], r["error"]) for r in rows if r["status"] == "failed"][:50]
    return Summary(
        run_id=run_id, model_id=model_id, setting=setting, ok=count["ok"], failed=count["failed"], skipped=count["skipped"],
        ignored=ignored, bytes_in=sum(r["bytes_in"] or 0 for r in rows if r["status"] == "ok"),
        bytes_out=sum(r["bytes_out"] or 0 for r in rows if r["status"] == "ok"), seconds=seconds,
        manifest=dst_store.url_of(run_key + ".parquet"), failures=failures,
    )


def summary_markdown(summary: Summary | Mapping[str, Any], title: str = "gancodec bulk compress") -> str:
    s = summary.to_dict() if isinstance(summary, Summary) else dict(summary)
    ratio = (s["bytes_in"] / s["bytes_out"]) if s.get("bytes_out") else float("nan")
    lines = [
        f"# {title}: run `{s['run_id']}`",
        "",
        "| ok | failed | skipped | ignored | bytes in | bytes out | ratio | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['ok']} | {s['failed']} | {s['skipped']} | {s['ignored']} | {s['bytes_in']} | {s['bytes_out']} | {ratio:.2f} | {s['seconds']:.1f} |",
        "",
        f"Model `{s['model_id']}`, setting `{s['setting']}`. Manifest: `{s['manifest']}`",
    ]
    if s["failures"]:
        lines += ["", "## Failures", "", "| key | kind | error |", "|---|---|---|"]
        for key, kind, err in s["failures"]:
            lines.append(f"| `{key}` | {kind} | {str(err).replace('|', '/')[:300]} |")
    return "\n".join(lines) + "\n"


def run_batches(
    src: str,
    dst: str,
    settings: Settings | Mapping[str, Any] = Settings(),
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    shard: str | None = None,
    run_id: str | None = None,
) -> Summary:
    """The whole job without Prefect (plain loop): plan, every batch, finish."""
    t0 = time.perf_counter()
    p = plan(cached_store(src), cached_store(dst), settings, run_id=run_id, batch_size=batch_size, shard=shard)
    rows = list(p.skipped)
    for i, jobs in enumerate(p.batches):
        try:
            rows += compress_batch(src, dst, jobs, p.settings, model_id=p.model_id, run_id=p.run_id, batch_index=i)
        except StorageError as exc:
            rows += failed_batch_rows(jobs, p.settings, p.model_id, p.run_id, exc)
    return finish_run(dst, p.run_id, rows, model_id=p.model_id, setting=p.settings.label, ignored=p.ignored, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- decompress


def png_key_for(key: str) -> str:
    """``a/b.jpg.gcx`` → ``a/b.jpg.png``; ``a/b.png.gcx`` → ``a/b.png`` (never two onto one)."""
    stem = key[: -len(OUTPUT_SUFFIX)] if key.endswith(OUTPUT_SUFFIX) else key
    return stem if stem.lower().endswith(".png") else stem + ".png"


def decompress_one(src: Store, dst: Store, key: str, etag: str, *, realism: bool = False, device: str | None = None, weights: str | None = None, run_id: str = "") -> dict[str, Any]:
    """Decode one ``.gcx`` object into a PNG beside its name in DST; return a manifest row."""
    from PIL import Image

    from . import codec

    t0 = time.perf_counter()
    setting = "realism" if realism else "fidelity"
    base = dict(run_id=run_id, key=key, source_etag=etag, setting=setting)

    def failed(kind: str, exc: BaseException) -> dict[str, Any]:
        return make_row(**base, status="failed", error_kind=kind, error=str(exc), seconds=time.perf_counter() - t0, finished_at=_now())

    try:
        out_key = check_key(png_key_for(check_key(key)))
        base["output_key"] = out_key
    except StorageError as exc:
        return failed("key", exc)
    try:
        existing = dst.head(out_key)
        if existing is not None and existing.metadata.get("gancodec-source-etag") == etag and existing.metadata.get("gancodec-setting") == setting:
            return make_row(**base, status="skipped", bytes_out=existing.size, note="already decoded", seconds=time.perf_counter() - t0, finished_at=_now())
        data = src.get(key)
    except StorageError as exc:
        if is_transient(exc):
            raise
        return failed("storage", exc)
    kwargs = {"weights": weights} if weights else {}
    try:
        header = codec.read_header(data)
        try:
            image = codec.decompress(data, realism=realism, device=device, **kwargs)
        except Exception as exc:  # noqa: BLE001
            if not _is_oom(exc):
                raise
            image = codec.decompress(data, realism=realism, device="cpu", **kwargs)
    except BitstreamError as exc:
        return failed("data", exc)
    except GancodecError as exc:
        return failed("model", exc)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    png = buf.getvalue()
    try:
        dst.put(out_key, png, metadata={"gancodec-source-etag": etag, "gancodec-setting": setting, "gancodec-model": header.model_id},
                content_type="image/png")
    except StorageError as exc:
        if is_transient(exc):
            raise
        return failed("storage", exc)
    return make_row(
        **base, status="ok", model_id=header.model_id, bytes_in=len(data), bytes_out=len(png), width=header.width,
        height=header.height, channels=header.channels, bpp=len(data) * 8 / (header.width * header.height),
        quality=header.quality, attempts=1, seconds=time.perf_counter() - t0, finished_at=_now(),
    )


def plan_decompress(src: str | Store, *, batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[dict[str, Any]]]:
    """Batches of the ``.gcx`` objects under SRC (the control folder excluded)."""
    batches: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    for info in cached_store(src).list():
        if not info.key.endswith(OUTPUT_SUFFIX) or info.key.startswith(CONTROL_PREFIX):
            continue
        batch.append({"key": info.key, "etag": info.etag or "", "size": info.size})
        if len(batch) >= batch_size:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


def decompress_batch(src: str | Store, dst: str | Store, jobs: Sequence[Mapping[str, Any]], *, realism: bool = False, device: str | None = None, weights: str | None = None, run_id: str = "") -> list[dict[str, Any]]:
    _apply_torch_threads()
    s, d = cached_store(src), cached_store(dst)
    return [decompress_one(s, d, j["key"], j.get("etag", ""), realism=realism, device=device, weights=weights, run_id=run_id) for j in jobs]


def finish_decompress(dst: str | Store, run_id: str, rows: Sequence[Mapping[str, Any]], *, seconds: float = 0.0) -> Summary:
    d = cached_store(dst)
    rows = sorted(rows, key=lambda r: r["key"])
    run_key = f"{CONTROL_PREFIX}decompress-{run_id}"
    d.put(run_key + ".parquet", parquet_bytes(rows), content_type="application/vnd.apache.parquet")
    d.put(run_key + ".csv", csv_bytes(rows), content_type="text/csv")
    count = {s: sum(1 for r in rows if r["status"] == s) for s in ("ok", "failed", "skipped")}
    return Summary(
        run_id=run_id, model_id=next((r["model_id"] for r in rows if r["model_id"]), ""), setting=rows[0]["setting"] if rows else "",
        ok=count["ok"], failed=count["failed"], skipped=count["skipped"], ignored=0,
        bytes_in=sum(r["bytes_in"] or 0 for r in rows), bytes_out=sum(r["bytes_out"] or 0 for r in rows), seconds=seconds,
        manifest=d.url_of(run_key + ".parquet"), failures=[(r["key"], r["error_kind"], r["error"]) for r in rows if r["status"] == "failed"][:50],
    )


# --------------------------------------------------------------------------- CLI entry


def _prefect_env() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # a fresh PREFECT_HOME migrates its database on first start: on a busy 2-core machine that
    # takes well over Prefect's 20 s default, and the run would die before doing anything
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _load_flow_module(name: str):
    """Import ``flows/<name>.py`` (a repo folder, not part of the package)."""
    import importlib.util
    from pathlib import Path

    folder = Path(os.environ.get("GANCODEC_FLOWS_DIR") or Path(__file__).resolve().parents[2] / "flows")
    path = folder / f"{name}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"gancodec_flows_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def check_access(src: str, dst: str) -> None:
    """Fail fast, before any Prefect machinery starts, when SRC or DST cannot be used.

    SRC must be listable, DST listable and (for a folder) writable: an unreachable endpoint,
    a missing bucket, rejected credentials or an unwritable folder raise one
    :class:`StorageError` that names the source or destination and the fix.
    """
    for role, url, write in (("source", src, False), ("destination", dst, True)):
        try:
            open_store(url).probe(write=write)
        except StorageError as exc:
            raise type(exc)(f"{role} {exc}") from None


def _gancodec_error_names() -> set[str]:
    names, todo = set(), [GancodecError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


class _QuietFailures(logging.Filter):
    """Drops Prefect's error records (tracebacks, "Finished in state Failed(...)") about one
    of our own errors: the CLI reports those itself, on one line."""

    def __init__(self) -> None:
        super().__init__()
        self.names = _gancodec_error_names()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not record.name.startswith("prefect"):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, GancodecError):
            return False
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        return not any(f"{name}:" in text or f"{name}(" in text for name in self.names)


class _quiet_prefect_failures:
    """While active, every handler in the logging tree drops the records :class:`_QuietFailures` drops."""

    def __enter__(self) -> "_quiet_prefect_failures":
        self.filter = _QuietFailures()
        self.handlers = set()
        loggers = [logging.getLogger()] + [l for l in logging.root.manager.loggerDict.values() if isinstance(l, logging.Logger)]
        for lg in loggers:
            for h in lg.handlers:
                if h not in self.handlers:
                    h.addFilter(self.filter)
                    self.handlers.add(h)
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handlers:
            h.removeFilter(self.filter)


def _print_error(message: str) -> None:
    import sys

    print(f"gancodec: error: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    """An error as one line (a message from torch or botocore may span several)."""
    text = str(exc) if isinstance(exc, GancodecError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def run_cli(
    src: str,
    dst: str,
    quality: float | None = None,
    bpp: float | None = None,
    *,
    device: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    psnr_floor: float = DEFAULT_PSNR_FLOOR,
    shard: str | None = None,
    concurrency: int = 1,
    decompress: bool = False,
    realism: bool = False,
    refine_steps: int = 0,
    recompress_other_models: bool = False,
    use_prefect: bool = True,
    echo: Callable[[str], None] = print,
    error: Callable[[str], None] = _print_error,
) -> int:
    """Run bulk compression (or, with ``decompress=True``, decompression) of SRC into DST.

    Uses the Prefect flow in ephemeral mode (no server needed; analytics off) when the
    ``flows/`` folder is available, else the same logic in a plain loop. Returns the exit
    code: 0 when nothing failed, 1 when something failed (details in the manifest), 2 for
    bad arguments or storage that cannot be used. The summary goes to ``echo``; an error
    goes to ``error`` as one line (default: ``gancodec: error: ...`` on stderr), and
    Prefect's own tracebacks about it are held back.
    """
    _prefect_env()
    try:
        settings = Settings(quality=quality, bpp=bpp, device=device, psnr_floor=psnr_floor, refine_steps=refine_steps,
                            recompress_other_models=recompress_other_models)
        parse_shard(shard)
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
    except ValueError as exc:
        error(_one_line(exc))
        return 2
    try:  # before Prefect starts: a bad bucket or folder is one line in a second, not a traceback
        check_access(src, dst)
    except StorageError as exc:
        error(_one_line(exc))
        return 2
    module = _load_flow_module("bulk_decompress" if decompress else "bulk_compress") if use_prefect else None
    with _quiet_prefect_failures():
        return _run_cli_flow(module, src, dst, settings, quality=quality, bpp=bpp, device=device, batch_size=batch_size,
                             psnr_floor=psnr_floor, shard=shard, concurrency=concurrency, decompress=decompress, realism=realism,
                             echo=echo, error=error)


def _run_cli_flow(module: Any, src: str, dst: str, settings: Settings, *, quality: float | None, bpp: float | None, device: str | None,
                  batch_size: int, psnr_floor: float, shard: str | None, concurrency: int, decompress: bool, realism: bool,
                  echo: Callable[[str], None], error: Callable[[str], None]) -> int:
    try:
        if module is None:
            if decompress:
                summary = _run_decompress_plain(src, dst, realism=realism, device=device, batch_size=batch_size)
            else:
                summary = run_batches(src, dst, settings, batch_size=batch_size, shard=shard)
            echo(summary_markdown(summary))
            return 1 if summary.failed else 0
        if decompress:
            state = module.bulk_decompress(src=src, dst=dst, realism=realism, device=device, batch_size=batch_size, return_state=True)
        else:
            state = module.bulk_compress(src=src, dst=dst, quality=quality, bpp=bpp, device=device, batch_size=batch_size,
                                         psnr_floor=psnr_floor, shard=shard, concurrency=concurrency,
                                         refine_steps=settings.refine_steps,
                                         recompress_other_models=settings.recompress_other_models, return_state=True)
    except (StorageError, ModelError) as exc:
        error(_one_line(exc))
        return 2
    result = state.result(raise_on_failure=False)
    if isinstance(result, dict) and "run_id" in result:
        echo(summary_markdown(result))
    elif isinstance(result, BaseException):
        error(_one_line(result))
        return 2 if isinstance(result, (StorageError, ModelError, ValueError)) else 1
    return 0 if state.is_completed() else 1


def _run_decompress_plain(src: str, dst: str, *, realism: bool, device: str | None, batch_size: int) -> Summary:
    t0 = time.perf_counter()
    run_id = new_run_id()
    rows: list[dict[str, Any]] = []
    for jobs in plan_decompress(src, batch_size=batch_size):
        rows += decompress_batch(src, dst, jobs, realism=realism, device=device, run_id=run_id)
    return finish_decompress(dst, run_id, rows, seconds=time.perf_counter() - t0)

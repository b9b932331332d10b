"""The work on images: read, compress, verify, write ``<key>.gcx``; one batch and its manifest part."""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import BitstreamError, DataError, ModelError, StorageError
from ..storage import ObjectInfo, Store, check_key, is_transient, open_store
from .manifest import make_row, parquet_bytes
from .settings import PARTS_PREFIX, Settings, now, output_key_for

log = logging.getLogger("gancodec.bulk")

def _is_oom(exc: BaseException) -> bool:
    from ..device import is_oom

    return is_oom(exc)


def decode_source(data: bytes, name: str) -> tuple[np.ndarray, list[str]]:
    """Decode image bytes into the codec's canonical array, exactly as ``compress`` reads a file
    (same conversions, same ``max_pixels`` cap); returns the conversion notes too.
    :class:`DataError` naming ``name`` if the bytes are empty, corrupt or too large."""
    from ..data.imageio import load_image_bytes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels = load_image_bytes(data, name)
    notes = sorted({str(c.message) for c in caught if issubclass(c.category, UserWarning)})
    return pixels, notes


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays (gancodec.metrics_core.psnr, the evaluation's), capped at 100
    for identical ones."""
    from ..metrics_core import psnr as _psnr

    return min(100.0, _psnr(a, b))


def encode(pixels: np.ndarray, settings: Settings) -> bytes:
    """Compress with the settings (the learned stream: the WebP fallback is chosen after the
    verification, from its decode, by :func:`apply_fallback`). Out of memory is the codec's own back-off (half the tile,
    down to the smallest, then the CPU: one policy, :mod:`gancodec.tiling`); an OOM that
    escapes it is the image's ``failed`` row of kind ``oom`` (retried by the next run)."""
    from .. import codec

    return codec.compress(pixels, quality=settings.quality, bpp=settings.bpp, device=settings.codec_device, tile_size=settings.tile_size,
                          refine_steps=settings.search_steps, fallback=False,
                          **({"weights": settings.weights} if settings.weights else {}))


def apply_fallback(pixels: np.ndarray, blob: bytes, decoded: np.ndarray, value: float, model_id: str,
                   settings: Settings, workers: int = 2) -> tuple[bytes, float, str]:
    """The WebP safety net on a verified learned output: (bytes, PSNR, payload) to store. Reuses
    the verification's decode, so bulk pays only the WebP search (its candidates on ``workers``
    threads); a WebP output is verified like any other (a WebP decode)."""
    from .. import fallback

    if not settings.fallback or not fallback.applies(pixels):
        return blob, value, "learned"
    choice = fallback.choose(pixels, blob, decoded, workers=workers)
    if choice.payload == "learned":
        return blob, value, "learned"
    return choice.data, verify_output(choice.data, pixels, model_id, settings), choice.payload


def verify_output(data: bytes, pixels: np.ndarray, model_id: str, settings: Settings) -> float:
    """Check ``data`` decodes to ``pixels`` well enough: header, CRC (in decompress), PSNR floor.

    Returns the PSNR; raises :class:`BitstreamError` naming what is wrong.
    """
    return verify_decoded(data, pixels, model_id, settings)[0]


def verify_decoded(data: bytes, pixels: np.ndarray, model_id: str, settings: Settings) -> tuple[float, np.ndarray]:
    """:func:`verify_output`, also returning the decode (HxWxC uint8)."""
    from .. import codec
    from ..data.imageio import load_image

    header = codec.read_header(data)
    h, w, c = pixels.shape
    if header.version == 1 and header.model_id != model_id:  # a WebP fallback names no model
        raise BitstreamError(f"model_id: output names model {header.model_id}, expected {model_id}")
    if (header.height, header.width, header.channels) != (h, w, c):
        raise BitstreamError(f"size: output is {header.width}x{header.height}x{header.channels}, source is {w}x{h}x{c}")
    kwargs = {"weights": settings.weights} if settings.weights else {}
    decoded = codec.decompress(data, device=settings.codec_device, **kwargs)  # its own OOM back-off
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = load_image(decoded)
    if out.shape != pixels.shape:
        raise BitstreamError(f"size: output decodes to {out.shape}, source is {pixels.shape}")
    value = psnr(out, pixels)
    if value < settings.psnr_floor:
        raise BitstreamError(f"psnr: output decodes at {value:.2f} dB, below the sanity floor of {settings.psnr_floor:g} dB")
    return value, out


def _output_metadata(row: Mapping[str, Any]) -> dict[str, str]:
    return {
        "gancodec-source-etag": row["source_etag"],
        "gancodec-source-sha256": row["sha256"],
        "gancodec-model": row["model_id"],
        "gancodec-setting": row["setting"],
        "gancodec-payload": row["payload"],
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
                psnr=float(meta.get("gancodec-psnr", "nan")), payload=meta.get("gancodec-payload", "learned"),
                note=f"adopted output of run {meta.get('gancodec-run', '?')}",
                attempts=0, seconds=time.perf_counter() - t0, finished_at=now(),
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
    # (a WebP fallback stores no quality: the manifest's setting check above is all there is)
    if header.version == 1 and settings.quality is not None and header.quality != round(float(settings.quality), 3):
        return None
    h, w, c = pixels.shape
    return make_row(
        **base, status="ok", sha256=hashlib.sha256(data).hexdigest(), bytes_in=len(data), bytes_out=len(blob),
        width=w, height=h, channels=c, bpp=len(blob) * 8 / (w * h), psnr=value, quality=header.quality, payload=header.payload,
        note="adopted existing output (re-verified)", attempts=0, seconds=time.perf_counter() - t0, finished_at=now(),
    )


def _read_header(blob: bytes):
    from .. import codec

    return codec.read_header(blob)


def compress_one(src: Store, dst: Store, job: Mapping[str, Any], settings: Settings, model_id: str, run_id: str,
                 threads: int = 2) -> dict[str, Any]:
    """Compress one source object into ``<key>.gcx``; return its manifest row. ``threads``: the
    torch threads this image has (the WebP search uses as many).

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
        log.info("%s: failed (%s): %s", key, kind, msg)  # the flow logs it to the run log; the manifest has it
        return make_row(**{**base, **extra}, status="failed", error_kind=kind, error=msg, attempts=attempts,
                        seconds=time.perf_counter() - t0, finished_at=now())

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
        attempts = 1
        blob = encode(pixels, settings)
        value, decoded = verify_decoded(blob, pixels, model_id, settings)
        header = _read_header(blob)  # the learned stream's: its quality is the row's (a WebP's budget)
        blob, value, payload = apply_fallback(pixels, blob, decoded, value, model_id, settings, workers=threads)
    except DataError as exc:
        return failed("data", exc)
    except BitstreamError as exc:
        return failed("verify", exc, attempts=max(1, attempts))
    except ModelError:
        raise  # the whole run is misconfigured: no image can succeed
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        if _is_oom(exc):
            return failed("oom", f"out of memory on every tile size and on the CPU ({exc}); the next run retries it", attempts=attempts)
        return failed("internal", f"{type(exc).__name__}: {exc}", attempts=attempts)
    row = make_row(
        **base, status="ok", bytes_out=len(blob), bpp=len(blob) * 8 / (h * w), psnr=value, quality=header.quality,
        payload=payload, note="; ".join(notes), attempts=attempts, finished_at="",
    )
    try:
        dst.put(out_key, blob, metadata=_output_metadata(row), content_type="application/x-gancodec")
    except StorageError as exc:
        if is_transient(exc):
            raise
        return failed("storage", exc, attempts=attempts)
    row["seconds"] = time.perf_counter() - t0
    row["finished_at"] = now()
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


def map_images(one: Callable[[Mapping[str, Any], int], Any], jobs: Sequence[Mapping[str, Any]],
               settings: Settings) -> Iterator[Any]:
    """``one(job, threads)`` for each job, in order, :meth:`Settings.images_at_once` of them at
    once on threads that split this thread's torch threads between them (``threads`` is each
    one's share). Torch and libwebp release the GIL, so two images of one thread each keep two
    cores busier than one image of two threads, whose many small float64 entropy-model steps
    leave cores waiting. An exception (a transient storage error) ends the map, so the caller's
    retry redoes the batch; the process's torch thread count is restored either way."""
    import torch

    threads = torch.get_num_threads()
    n = min(settings.images_at_once(threads), len(jobs))
    if n <= 1:
        yield from (one(job, threads) for job in jobs)
        return
    each = max(1, threads // n)

    def run(job: Mapping[str, Any]) -> Any:
        torch.set_num_threads(each)  # OpenMP's thread count is per calling thread
        return one(job, each)

    pool = ThreadPoolExecutor(n, thread_name_prefix="gancodec-image")
    try:
        yield from pool.map(run, jobs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure: the images not started are not started
        torch.set_num_threads(threads)


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
    spool: str | None = None,
    on_image: Callable[[Mapping[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Compress a batch, then write its manifest part; return the rows.

    Raises only for what a retry may fix (transient storage errors) or what dooms the run
    (ModelError); everything else is a ``failed`` row. ``spool``: a local folder that gets a
    copy of the part too, so finishing the run need not download it again. ``on_image`` is
    called with each image's row as it is done (a progress bar).
    """
    settings = Settings.from_dict(settings)
    _apply_torch_threads()
    src_store, dst_store = cached_store(src), cached_store(dst)
    rows = []
    for row in map_images(lambda job, threads: compress_one(src_store, dst_store, job, settings, model_id, run_id, threads),
                          jobs, settings):
        rows.append(row)
        if on_image is not None:
            on_image(row)
    write_part(dst_store, run_id, batch_index, rows, spool)
    return rows


def write_part(dst: str | Store, run_id: str, batch_index: int, rows: list[dict[str, Any]], spool: str | None = None) -> str:
    """Write one batch's rows as its manifest part (and a local copy under ``spool``); its key."""
    key = part_key(run_id, batch_index)
    for row in rows:
        row["part"] = key
    data = parquet_bytes(rows)
    cached_store(dst).put(key, data, content_type="application/vnd.apache.parquet")
    if spool:
        try:
            path = spool_path(spool, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError:  # only a shortcut: finishing downloads the part instead
            pass
    return key


def spool_path(spool: str, key: str) -> "Path":
    from pathlib import Path

    return Path(spool) / "spool" / key.rsplit("/", 1)[-1]


def failed_batch_rows(jobs: Sequence[Mapping[str, Any]], settings: Settings | Mapping[str, Any], model_id: str, run_id: str, error: BaseException | str) -> list[dict[str, Any]]:
    """Rows for a batch that could not run at all (e.g. storage down after every retry)."""
    settings = Settings.from_dict(settings)
    kind = "storage" if isinstance(error, StorageError) or (isinstance(error, BaseException) and is_transient(error)) else "internal"
    return [
        make_row(run_id=run_id, key=j["key"], source_etag=j.get("etag", ""), model_id=model_id, setting=settings.label,
                 target_bpp=settings.bpp, status="failed", error_kind=kind, error=str(error), finished_at=now())
        for j in jobs
    ]



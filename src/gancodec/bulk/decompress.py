"""Decompressing a bucket: every ``.gcx`` under SRC back to a PNG under DST."""

from __future__ import annotations

import io
import time
from typing import Any, Mapping, Sequence

from ..errors import BitstreamError, GancodecError, StorageError
from ..storage import Store, check_key, is_transient
from .jobs import _apply_torch_threads, cached_store
from .manifest import csv_bytes, make_row, parquet_bytes
from .planner import plan_decompress
from .run import Summary
from .settings import CONTROL_PREFIX, DEFAULT_BATCH_SIZE, new_run_id, now, png_key_for

def decompress_one(src: Store, dst: Store, key: str, etag: str, *, realism: bool = False, device: str | None = None, weights: str | None = None, run_id: str = "") -> dict[str, Any]:
    """Decode one ``.gcx`` object into a PNG beside its name in DST; return a manifest row."""
    from PIL import Image

    from .. import codec

    t0 = time.perf_counter()
    device = None if device in (None, "auto") else device
    setting = "realism" if realism else "fidelity"
    base = dict(run_id=run_id, key=key, source_etag=etag, setting=setting)

    def failed(kind: str, exc: BaseException) -> dict[str, Any]:
        return make_row(**base, status="failed", error_kind=kind, error=str(exc), seconds=time.perf_counter() - t0, finished_at=now())

    try:
        out_key = check_key(png_key_for(check_key(key)))
        base["output_key"] = out_key
    except StorageError as exc:
        return failed("key", exc)
    try:
        existing = dst.head(out_key)
        if existing is not None and existing.metadata.get("gancodec-source-etag") == etag and existing.metadata.get("gancodec-setting") == setting:
            return make_row(**base, status="skipped", bytes_out=existing.size, note="already decoded", seconds=time.perf_counter() - t0, finished_at=now())
        data = src.get(key)
    except StorageError as exc:
        if is_transient(exc):
            raise
        return failed("storage", exc)
    kwargs = {"weights": weights} if weights else {}
    try:
        header = codec.read_header(data)
        image = codec.decompress(data, realism=realism, device=device, **kwargs)  # its own OOM back-off
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
        quality=header.quality, attempts=1, seconds=time.perf_counter() - t0, finished_at=now(),
    )


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




def run_decompress_plain(src: str, dst: str, *, realism: bool, device: str | None, batch_size: int) -> Summary:
    t0 = time.perf_counter()
    run_id = new_run_id()
    rows: list[dict[str, Any]] = []
    for jobs in plan_decompress(src, batch_size=batch_size):
        rows += decompress_batch(src, dst, jobs, realism=realism, device=device, run_id=run_id)
    return finish_decompress(dst, run_id, rows, seconds=time.perf_counter() - t0)

_run_decompress_plain = run_decompress_plain  # the name before the split

"""Decompressing a bucket: every ``.gcx`` under SRC back to a PNG under DST.

Streamed like compression: the listing goes to a jobs file, batches are read back from it one at
a time, and the rows go to a parquet file that DuckDB turns into the run's manifest."""

from __future__ import annotations

import io
import time
from typing import Any, Mapping, Sequence

from ..errors import BitstreamError, GancodecError, StorageError
from ..storage import Store, check_key, is_transient
from .jobs import _apply_torch_threads, cached_store, map_images
from . import ledger
from .manifest import MANIFEST_COLUMNS, make_row
from .planner import plan_decompress
from .run import MAX_FAILURES, Summary, write_manifest
from .settings import CONTROL_PREFIX, DEFAULT_BATCH_SIZE, Settings, new_run_id, now, png_key_for

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


def decompress_batch(src: str | Store, dst: str | Store, jobs: Sequence[Mapping[str, Any]], *, realism: bool = False, device: str | None = None,
                     weights: str | None = None, run_id: str = "", parallel: int = 0) -> list[dict[str, Any]]:
    """Decode a batch; ``parallel`` images at once as in compression (0: auto, :func:`jobs.map_images`)."""
    _apply_torch_threads()
    s, d = cached_store(src), cached_store(dst)
    settings = Settings(device=device or "auto", parallel=parallel).resolved()
    return list(map_images(lambda j, threads: decompress_one(s, d, j["key"], j.get("etag", ""), realism=realism, device=device,
                                                             weights=weights, run_id=run_id), jobs, settings))


class RowSink:
    """A run's manifest rows, appended batch by batch to a parquet file on a scratch folder
    (:class:`ledger.ListingWriter`: at most 50,000 rows in memory)."""

    def __init__(self, run_id: str) -> None:
        self.scratch = ledger.new_scratch(run_id)
        self.path = self.scratch / "rows.parquet"
        self.writer = ledger.ListingWriter(self.path, MANIFEST_COLUMNS)
        self.closed = False

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for r in rows:
            self.writer.add(*(r.get(c) for c in MANIFEST_COLUMNS))

    def close(self) -> None:
        if not self.closed:
            self.writer.close()
            self.closed = True


def finish_decompress(dst: str | Store, run_id: str, rows: RowSink | Sequence[Mapping[str, Any]], *, seconds: float = 0.0) -> Summary:
    """Write the run's manifest (``_gancodec/decompress-<run>.parquet`` and ``.csv``, rows not
    sorted) from the rows (a :class:`RowSink`, or a list for a small run), and summarise it."""
    d = cached_store(dst)
    if not isinstance(rows, RowSink):
        sink = RowSink(run_id)
        sink.add(rows)
        rows = sink
    rows.close()
    run_key = f"{CONTROL_PREFIX}decompress-{run_id}"
    con = ledger.connect(rows.scratch)
    try:
        con.execute(f"CREATE VIEW rows AS SELECT * FROM read_parquet({ledger._q(rows.path)})")
        write_manifest(con, d, ledger.manifest_select("rows"), rows.scratch / "run", run_key)
        count = dict(con.execute("SELECT status, count(*) FROM rows GROUP BY status").fetchall())
        bytes_in, bytes_out = con.execute("SELECT coalesce(sum(bytes_in), 0), coalesce(sum(bytes_out), 0) FROM rows").fetchone()
        model_id = con.execute("SELECT model_id FROM rows WHERE model_id <> '' LIMIT 1").fetchone()
        setting = con.execute("SELECT setting FROM rows LIMIT 1").fetchone()
        failures = [tuple(r) for r in con.execute(
            f"SELECT key, error_kind, error FROM rows WHERE status = 'failed' ORDER BY key LIMIT {MAX_FAILURES}").fetchall()]
    finally:
        con.close()
        ledger.remove_scratch(rows.scratch)
    return Summary(
        run_id=run_id, model_id=model_id[0] if model_id else "", setting=setting[0] if setting else "",
        ok=int(count.get("ok", 0)), failed=int(count.get("failed", 0)), skipped=int(count.get("skipped", 0)), ignored=0,
        bytes_in=int(bytes_in), bytes_out=int(bytes_out), seconds=seconds, manifest=d.url_of(run_key + ".parquet"), failures=failures,
    )


def run_decompress_plain(src: str, dst: str, *, realism: bool, device: str | None, batch_size: int,
                         progress: bool = False, parallel: int = 0) -> Summary:
    """``bulk-decompress`` without Prefect: every batch in this process, each retried like the
    flow's tasks when storage fails for a transient reason; a progress bar on a terminal."""
    from ..progress import progress_bar
    from .run import retrying

    t0 = time.perf_counter()
    run_id = new_run_id()
    rows = RowSink(run_id)
    with progress_bar(progress) as bar:
        task = bar.add_task("decompress", total=None)
        for i, jobs in enumerate(plan_decompress(src, batch_size=batch_size)):
            rows.add(retrying(lambda jobs=jobs: decompress_batch(src, dst, jobs, realism=realism, device=device, run_id=run_id,
                                                                 parallel=parallel),
                              f"batch {i}"))
            bar.advance(task, len(jobs))
    return finish_decompress(dst, run_id, rows, seconds=time.perf_counter() - t0)

_run_decompress_plain = run_decompress_plain  # the name before the split

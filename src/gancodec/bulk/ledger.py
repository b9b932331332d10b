"""Constant-memory bookkeeping: the listing, the plan and the manifests as parquet files on a
local scratch folder, joined and merged by DuckDB, never as one Python object per key.

* the listing of SRC (image keys of this shard) and of DST's outputs stream into parquet files
  (``ListingWriter``: 50,000 rows at a time);
* what DST already holds (the merged manifest plus every part not merged yet) is read from
  copies of those files: ``latest row per key`` is a spilling ``GROUP BY key`` of one integer
  rank, the "already done" decision DuckDB joins of the listing against it (:func:`plan_files`),
  one join per statement, each written to a file;
* finishing a run writes the run manifest and the merged view with ``COPY`` from the parts,
  streamed to files and uploaded from them.

DuckDB runs in memory with a memory limit and spills to the scratch folder, so a worker's
memory stays flat however many objects a bucket holds (docs/bulk.md, "Bookkeeping at bucket
scale"). Everything here is about files; the storage side is in :mod:`.planner` and :mod:`.run`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .manifest import MANIFEST_COLUMNS

log = logging.getLogger("gancodec.bulk")

#: DuckDB's memory limit when GANCODEC_BULK_MEMORY is not set; past it, joins and aggregates spill to the scratch folder.
MEMORY_LIMIT = "256MB"
_SQL_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE"}
#: The columns of a key's latest row that decide whether it is done (:func:`plan_files`).
_DECIDING = ("key", "output_key", "source_etag", "model_id", "setting", "status", "error_kind", "error", "bytes_out")


def scratch_root() -> Path:
    """Where runs keep their listing and manifest copies (``GANCODEC_SCRATCH``, else the temp folder)."""
    from .. import settings

    return settings.path("GANCODEC_SCRATCH") or Path(tempfile.gettempdir())


def new_scratch(run_id: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"gancodec-bulk-{run_id}-", dir=scratch_root()))


def remove_scratch(path: str | os.PathLike | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def connect(scratch: str | os.PathLike):
    """An in-memory DuckDB with a memory limit that spills to ``scratch/spill``."""
    import duckdb

    spill = Path(scratch) / "spill"
    spill.mkdir(parents=True, exist_ok=True)
    limit = _memory_limit()
    con = duckdb.connect(":memory:", config={
        "memory_limit": limit,
        "threads": threads_for(limit),
        "temp_directory": str(spill),
        "preserve_insertion_order": False,  # no statement here needs its input's order kept (ORDER BY says so)
    })
    return con


def _memory_limit() -> str:
    from .. import settings

    return settings.raw("GANCODEC_BULK_MEMORY") or MEMORY_LIMIT


#: DuckDB memory per thread: each thread of a join or a parquet write holds its own buffers; two
#: threads sharing a small limit ran out of memory where one thread spilled (tests/test_bulk_ledger.py).
MEMORY_PER_THREAD = 512 * 2**20


def threads_for(limit: str) -> int:
    """DuckDB threads for a memory limit such as ``256MB`` or ``4GB``: one per
    :data:`MEMORY_PER_THREAD`, at least 1, at most 2 (bookkeeping shares the worker) and the CPUs."""
    import re

    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)I?B?\s*", limit.upper())
    size = float(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " ") if m else 0
    return max(1, min(2, os.cpu_count() or 1, int(size // MEMORY_PER_THREAD)))


def _q(path: str | os.PathLike) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _file_list(paths: Sequence[str | os.PathLike]) -> str:
    return "[" + ", ".join(_q(p) for p in paths) + "]"


class ListingWriter:
    """Rows (dicts of simple values) appended one by one into a parquet file, 50,000 at a time."""

    def __init__(self, path: str | os.PathLike, schema: Mapping[str, str], chunk: int = 50_000) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
        self.schema = pa.schema([(c, types[t]) for c, t in schema.items()])
        self.columns: dict[str, list[Any]] = {c: [] for c in schema}
        self.writer = pq.ParquetWriter(str(path), self.schema)
        self.chunk, self.count = chunk, 0

    def add(self, *values: Any) -> None:
        for col, v in zip(self.columns.values(), values):
            col.append(v)
        self.count += 1
        if len(next(iter(self.columns.values()))) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if next(iter(self.columns.values())):
            self.writer.write_table(pa.Table.from_pydict(self.columns, schema=self.schema))
            for col in self.columns.values():
                col.clear()

    def close(self) -> None:
        self.flush()
        self.writer.close()


def arrow_schema():
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    return pa.schema([(c, types[t]) for c, t in MANIFEST_COLUMNS.items()])


def consolidate(files: Iterable[tuple[str | os.PathLike, str]], out: str | os.PathLike, chunk: int = 50_000,
                on_unreadable: Callable[[str, str, Exception], None] | None = None) -> Path | None:
    """Copy many small manifest files (the batches' parts: 64 rows each, ~15,600 per million
    objects) into one parquet file, in order, one part in memory at a time, each conformed to
    the manifest schema (missing columns null, ``part`` filled in from its key). DuckDB then
    reads one file instead of thousands (whose footers alone cost it ~1 GiB at a million
    objects). ``files`` may be a generator (the parts as they are listed: nothing per part is
    held here). ``None``, and no file, when there is nothing to copy. A file that cannot be read
    raises, or with ``on_unreadable`` is reported to it ``(path, key, error)`` and left out: each
    file is opened once, so its footer is decoded once."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = arrow_schema()
    writer = None
    pending: list[Any] = []
    rows = 0
    try:
        for path, key in files:
            try:  # ParquetFile.read on one thread: half the CPU of read_table for a 64-row file
                table = pq.ParquetFile(str(path)).read(use_threads=False)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
                if on_unreadable is None:
                    raise
                on_unreadable(str(path), key, exc)
                continue
            if writer is None:
                writer = pq.ParquetWriter(str(out), schema, compression="zstd")
            if not table.schema.equals(schema):  # a part written by an older release or by pandas
                table = pa.Table.from_arrays(
                    [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema],
                    schema=schema)
            if key:
                col = table.column("part")
                if col.null_count or pc.any(pc.equal(col, "")).as_py():
                    table = table.set_column(schema.get_field_index("part"), "part",
                                             pc.if_else(pc.fill_null(pc.equal(col, ""), True), pa.scalar(key), col))
            pending.append(table)
            rows += table.num_rows
            if rows >= chunk:
                writer.write_table(pa.concat_tables(pending))
                pending, rows = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending))
    finally:
        if writer is not None:
            writer.close()
    wrote = writer is not None
    writer = table = pending = None
    release_memory()
    return Path(out) if wrote else None


def release_memory() -> None:
    """Give back to the system what a copy of many small parquet files left free but held:
    pyarrow's pool (mimalloc keeps freed pages, ~17 MiB after copying parts) and the C heap
    (the files' footers are decoded with malloc: ~21 MiB), so that DuckDB's buffers, which
    come next, do not stack on top of it. A no-op where the C library is not glibc."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _normalised(con: Any, source: str) -> str:
    """A SELECT list giving every manifest column, typed, from ``source`` (a relation that may
    lack some columns: a manifest written by an older release or by pandas). Missing or null
    ints are 0, strings ``''``, floats NULL, as :func:`manifest._normalise` does."""
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    cols = []
    for c, t in MANIFEST_COLUMNS.items():
        if c not in present:
            cols.append(f"{'NULL::DOUBLE' if t == 'float64' else ('0::BIGINT' if t == 'int64' else chr(39) * 2 + '::VARCHAR')} AS {c}")
        elif t == "string":
            cols.append(f"coalesce(CAST({c} AS VARCHAR), '') AS {c}")
        elif t == "int64":
            cols.append(f"coalesce(CAST({c} AS BIGINT), 0) AS {c}")
        else:
            cols.append(f"CAST({c} AS DOUBLE) AS {c}")
    return ", ".join(cols)


def rows_relation(con: Any, files: Sequence[tuple[str | os.PathLike, str]], name: str) -> bool:
    """Create view ``name``: the normalised rows of the manifest ``files`` ((local path, part key
    or ''), in order), with ``_ord`` (file order, then row order) for "the later row wins".
    False when there are no files (the view is then empty)."""
    cols = ", ".join(f"{'NULL::' + _SQL_TYPES[t]} AS {c}" for c, t in MANIFEST_COLUMNS.items())
    if not files:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {cols}, 0::BIGINT AS _ord WHERE false")
        return False
    con.execute(f"CREATE OR REPLACE TABLE {name}_files (filename VARCHAR, file_ord BIGINT, part_key VARCHAR)")
    con.executemany(f"INSERT INTO {name}_files VALUES (?, ?, ?)", [(str(p), i, k) for i, (p, k) in enumerate(files)])
    raw = f"read_parquet({_file_list([p for p, _ in files])}, filename=true, file_row_number=true, union_by_name=true)"
    norm = _normalised(con, raw)
    con.execute(
        f"CREATE OR REPLACE VIEW {name} AS SELECT * EXCLUDE (part_key) REPLACE (CASE WHEN part = '' THEN part_key ELSE part END AS part) FROM ("
        f"SELECT {norm}, f.part_key, f.file_ord * 4294967296 + r.file_row_number AS _ord "
        f"FROM {raw} r JOIN {name}_files f ON r.filename = f.filename)"
    )
    return True


#: The order that decides a key's row: the newest ``finished_at``, ties broken by ``_ord`` (the
#: later file, then the later row). One HUGEINT, so "the latest row per key" is ``max`` over a
#: ``GROUP BY key``: a fixed-size aggregate state, which DuckDB spills past its memory limit (an
#: ``arg_max`` of the whole row, or a window, holds strings in memory and ran out of it).
_RANK = "coalesce(epoch_us(try_cast(finished_at AS TIMESTAMPTZ)), 0)::HUGEINT * 18446744073709551616 + _ord::HUGEINT"


def latest_view(con: Any, rows: str, name: str, scratch: str | os.PathLike) -> Path:
    """View ``name``: the deciding row per source key of ``rows`` (a :func:`rows_relation`), the
    newest non-skipped one (ties: the later in order). The winners' ``_ord`` go to a parquet file
    in ``scratch`` first (returned); the view is then a semi-join on that integer."""
    ords = Path(scratch) / f"{name}-ords.parquet"
    con.execute(
        f"COPY (SELECT CAST(max({_RANK}) % 18446744073709551616 AS BIGINT) AS _ord FROM {rows} WHERE status <> 'skipped' GROUP BY key) "
        f"TO {_q(ords)} (FORMAT parquet)"
    )
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {rows} WHERE _ord IN (SELECT _ord FROM read_parquet({_q(ords)}))")
    return ords


def copy_out(con: Any, query: str, path: str | os.PathLike, fmt: str = "parquet") -> None:
    """Stream ``query``'s rows to a parquet or CSV file."""
    # small row groups: the parquet writer buffers one whole group (122,880 rows by default)
    options = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384" if fmt == "parquet" else "FORMAT csv, HEADER true"
    con.execute(f"COPY ({query}) TO {_q(path)} ({options})")


def manifest_select(source: str, order: bool = False) -> str:
    return f"SELECT {', '.join(MANIFEST_COLUMNS)} FROM {source}" + (" ORDER BY key" if order else "")


def plan_files(
    con: Any,
    listing: str | os.PathLike,
    outputs: str | os.PathLike,
    rows: str,
    out_dir: str | os.PathLike,
    *,
    run_id: str,
    model_id: str,
    label: str,
    target_bpp: float | None,
    keep_other_models: bool,
    made_by: Mapping[str, str],
    finished_at: str,
    permanent: Iterable[str],
    model_free: Iterable[str],
) -> tuple[Path, Path, int, int]:
    """Join the listing against the latest of ``rows`` (a :func:`rows_relation`) and DST's
    outputs: write ``jobs.parquet`` (key,
    etag, size, stale_output; sorted by key) and ``skipped.parquet`` (manifest rows); return
    both paths and their row counts. The decision is :func:`manifest._done_reason`'s, in SQL."""
    out_dir = Path(out_dir)
    ords = latest_view(con, rows, "state", out_dir)
    state = "state"
    con.execute("CREATE OR REPLACE TABLE made_by (model_id VARCHAR, who VARCHAR)")
    if made_by:
        con.executemany("INSERT INTO made_by VALUES (?, ?)", list(made_by.items()))
    perm = ", ".join(_q(k) for k in sorted(permanent))
    free = ", ".join(_q(k) for k in sorted(model_free))
    p = {"model": model_id, "label": label, "keep": bool(keep_other_models)}
    prev_failed = "'previously failed (' || s.error_kind || '): ' || s.error"
    reason = f"""
        CASE
          WHEN s.key IS NULL OR s.source_etag <> s.l_etag OR s.setting <> $label THEN NULL
          WHEN s.model_id <> $model THEN CASE
            WHEN s.status = 'failed' AND s.error_kind IN ({free}) THEN {prev_failed}
            WHEN $keep AND s.status = 'ok' AND o.size = s.bytes_out THEN
              'already compressed by ' || coalesce(m.who, 'model ' || s.model_id) || '; kept (recompress_other_models / --recompress-other-models redoes it)'
            ELSE NULL END
          WHEN s.status = 'ok' THEN CASE WHEN o.size = s.bytes_out THEN 'already compressed' ELSE NULL END
          WHEN s.status = 'failed' AND s.error_kind IN ({perm}) THEN {prev_failed}
          ELSE NULL END"""
    # one join per statement, each written to a file: a single hash join spills past the memory
    # limit, several in one pipeline (the state, DST's outputs) ran DuckDB out of it
    state_file, matched, planned = out_dir / "state.parquet", out_dir / "matched.parquet", out_dir / "planned.parquet"
    copy_out(con, f"SELECT {', '.join(_DECIDING)}, _ord FROM {state}", state_file)
    copy_out(con, f"SELECT l.key AS l_key, l.etag AS l_etag, l.size AS l_size, s.* FROM read_parquet({_q(listing)}) l "
                  f"LEFT JOIN read_parquet({_q(state_file)}) s ON s.key = l.key", matched)
    state_file.unlink(missing_ok=True)
    con.execute(
        f"""COPY (
            SELECT s.l_key, s.l_etag, s.l_size, s._ord, {reason} AS reason,
                   coalesce(s.status = 'ok' AND (s.model_id <> $model OR s.setting <> $label), false) AS stale_output
            FROM read_parquet({_q(matched)}) s
            LEFT JOIN read_parquet({_q(outputs)}) o ON o.key = s.output_key
            LEFT JOIN made_by m ON m.model_id = s.model_id
        ) TO {_q(planned)} (FORMAT parquet)""",
        p,
    )
    matched.unlink(missing_ok=True)
    jobs, skipped = out_dir / "jobs.parquet", out_dir / "skipped.parquet"
    src = f"read_parquet({_q(planned)})"
    copy_out(con, f"SELECT l_key AS key, l_etag AS etag, l_size AS size, stale_output FROM {src} WHERE reason IS NULL ORDER BY key", jobs)
    fields = {c: f"p.{c}" for c in MANIFEST_COLUMNS}
    fields.update(
        run_id=_q(run_id), key="k.l_key", source_etag="k.l_etag", setting=_q(label), status="'skipped'",
        error="CASE WHEN p.status = 'failed' THEN p.error ELSE '' END", note="k.reason", attempts="0::BIGINT", seconds="NULL::DOUBLE",
        finished_at=_q(finished_at), part="''",
    )
    select = ", ".join(f"{expr} AS {c}" for c, expr in fields.items())
    # the skipped rows carry the deciding row's other columns: a join on the integer _ord
    copy_out(con, f"SELECT {select} FROM (SELECT _ord, l_key, l_etag, reason FROM {src} WHERE reason IS NOT NULL) k "
                  f"JOIN {rows} p ON p._ord = k._ord", skipped)
    n_jobs = con.execute(f"SELECT count(*) FROM read_parquet({_q(jobs)})").fetchone()[0]
    n_skipped = con.execute(f"SELECT count(*) FROM read_parquet({_q(skipped)})").fetchone()[0]
    planned.unlink(missing_ok=True)
    ords.unlink(missing_ok=True)
    return jobs, skipped, int(n_jobs), int(n_skipped)


def iter_batches(jobs: str | os.PathLike, batch_size: int, start: int = 0) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(batch index, jobs) from a ``jobs.parquet``, ``batch_size`` jobs each (the last may be
    short), from batch ``start`` on; only one batch of dicts exists at a time."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(str(jobs))
    index, pending, skip = 0, [], start * batch_size
    for record_batch in f.iter_batches(batch_size=max(batch_size, 1024)):
        n = record_batch.num_rows
        if skip >= n:
            skip -= n
            continue
        rows = record_batch.slice(skip).to_pylist()
        skip = 0
        for row in rows:
            if not row.get("stale_output"):
                row.pop("stale_output", None)
            pending.append(row)
            if len(pending) == batch_size:
                yield start + index, pending
                index, pending = index + 1, []
    if pending:
        yield start + index, pending


def write_json(path: str | os.PathLike, value: Any) -> None:
    Path(path).write_text(json.dumps(value, indent=1, sort_keys=True))

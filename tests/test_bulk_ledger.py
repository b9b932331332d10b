"""gancodec.bulk.ledger at a size that does not fit its memory limit: DuckDB must spill, not fail."""

from __future__ import annotations

import duckdb
import pytest

from gancodec.bulk import ledger
from gancodec.bulk.manifest import MANIFEST_COLUMNS

N = 200_000  # keys; two manifest rows each, ~160 MB of rows against a 64 MB limit


def _rows(con, path, *, status: str, finished_at: str, etag_every: int = 0) -> None:
    """N manifest rows, one per key, as the batches' consolidated parts hold them."""
    values = {
        "run_id": f"'{status}-run'", "key": "printf('photos/%05d/%09d.jpg', i // 1000, i)",
        "output_key": "printf('photos/%05d/%09d.jpg.gcx', i // 1000, i)", "source_etag": "printf('%032x', i)",
        "sha256": "sha256(i::VARCHAR)", "bytes_in": "300000", "bytes_out": "20000 + i % 7", "model_id": "repeat('0', 32)",
        "setting": "'q4'", "status": f"'{status}'", "error_kind": "'storage'" if status == "failed" else "''",
        "error": "'storage down: ' || repeat('x', 40)" if status == "failed" else "''",
        "finished_at": f"'{finished_at}'", "part": "printf('_gancodec/parts/r/batch-%06d.parquet', i // 64)",
    }
    cols = ", ".join(
        f"{values.get(c, {'string': chr(39) * 2, 'int64': '1', 'float64': '0.5'}[t])}::{ledger._SQL_TYPES[t]} AS {c}"
        for c, t in MANIFEST_COLUMNS.items())
    con.execute(f"COPY (SELECT {cols} FROM range({N}) t(i)) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 16384)")


def test_bookkeeping_spills_past_a_small_memory_limit(tmp_path, monkeypatch):
    """Planning against, and merging, 400,000 rows of 200,000 keys under a 64 MB DuckDB limit
    (the join, the latest row per key, the files written): every statement spills to the scratch
    folder instead of raising DuckDB's OutOfMemoryException, and the answers are right."""
    monkeypatch.setenv("GANCODEC_BULK_MEMORY", "64MB")
    gen = duckdb.connect()
    older, newer = tmp_path / "older.parquet", tmp_path / "newer.parquet"
    _rows(gen, older, status="failed", finished_at="2026-11-28T01:00:00.000+00:00")
    _rows(gen, newer, status="ok", finished_at="2026-11-29T01:00:00.000+00:00")
    listing, outputs = tmp_path / "listing.parquet", tmp_path / "outputs.parquet"
    # the bucket now: every 10th source object changed (new etag); every output is there
    gen.execute(f"COPY (SELECT printf('photos/%05d/%09d.jpg', i // 1000, i) AS key, "
                f"CASE WHEN i % 10 = 0 THEN 'changed' ELSE printf('%032x', i) END AS etag, 300000::BIGINT AS size "
                f"FROM range({N}) t(i)) TO '{listing}' (FORMAT parquet)")
    gen.execute(f"COPY (SELECT printf('photos/%05d/%09d.jpg.gcx', i // 1000, i) AS key, (20000 + i % 7)::BIGINT AS size "
                f"FROM range({N}) t(i)) TO '{outputs}' (FORMAT parquet)")

    scratch = tmp_path / "scratch"
    con = ledger.connect(scratch)
    assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1  # 64 MB: one thread
    # the newer file first: "latest" is by finished_at, not by file order
    ledger.rows_relation(con, [(str(newer), ""), (str(older), "")], "prev")
    jobs, skipped, n_jobs, n_skipped = ledger.plan_files(
        con, listing, outputs, "prev", scratch, run_id="run3", model_id="0" * 32, label="q4", target_bpp=None,
        keep_other_models=True, made_by={}, finished_at="2026-11-30T01:00:00.000+00:00", permanent=["data"], model_free=["data"])
    assert (n_jobs, n_skipped) == (N // 10, N - N // 10)
    keys = [r[0] for r in gen.execute(f"SELECT key FROM read_parquet('{jobs}')").fetchall()]
    assert keys == sorted(keys) and keys[0] == "photos/00000/000000000.jpg"  # batches go in key order
    assert gen.execute(f"SELECT count(DISTINCT key), min(note), max(note), min(sha256) = max(sha256) "
                       f"FROM read_parquet('{skipped}')").fetchone() == (n_skipped, "already compressed", "already compressed", False)

    ledger.latest_view(con, "prev", "merged", scratch)
    out = tmp_path / "merged.parquet"
    ledger.copy_out(con, ledger.manifest_select("merged"), out)
    ledger.copy_out(con, f"SELECT * FROM read_parquet('{out}')", tmp_path / "merged.csv", "csv")
    con.close()
    assert gen.execute(f"SELECT count(*), count(DISTINCT key), min(status), max(status), min(run_id) FROM read_parquet('{out}')").fetchone() == (
        N, N, "ok", "ok", "ok-run")


@pytest.mark.parametrize("limit, threads", [("256MB", 1), ("1GB", 2), ("4GiB", 2), ("junk", 1)])
def test_duckdb_threads_follow_the_memory_limit(limit, threads, monkeypatch):
    monkeypatch.setattr(ledger.os, "cpu_count", lambda: 8)
    assert ledger.threads_for(limit) == threads

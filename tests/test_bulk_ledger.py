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


def _ok_rows(p, jobs, size=5):
    from gancodec.bulk import manifest, settings

    return [manifest.make_row(run_id=p.run_id, key=j["key"], source_etag=j["etag"], model_id=p.model_id, setting=p.settings.label,
                              status="ok", output_key=settings.output_key_for(j["key"]), sha256="0" * 64, bytes_in=100, bytes_out=size,
                              width=8, height=8, channels=3, bpp=0.5, psnr=30.0, attempts=1, seconds=0.1, finished_at=settings.now())
            for j in jobs]


def _finish_scenario(tmp_path):
    """A run killed after two of its five batches (its parts never merged), then a run over the
    same bucket that skips those, writes three parts, and has one batch left over (storage down),
    then a run that writes nothing. Returns the destination folder and the three runs' summaries."""
    from gancodec.bulk import jobs, planner, run, settings
    from gancodec.storage import LocalStore

    (tmp_path / "src" / "photos").mkdir(parents=True)
    for i in range(5 * 64):
        (tmp_path / "src" / "photos" / f"{i:04d}.jpg").write_bytes(b"x")
    src, dst = LocalStore(tmp_path / "src"), LocalStore(tmp_path / "dst")
    (tmp_path / "dst").mkdir()
    cfg, model = settings.Settings(quality=4, device="cpu", batch_size=64), "0" * 32
    a = planner.plan(src, dst, cfg, run_id="runA", model_id=model)
    for index, batch in list(a.iter_batches())[:2]:
        jobs.write_part(dst, a.run_id, index, _ok_rows(a, batch), a.scratch)
        for j in batch:
            dst.put(settings.output_key_for(j["key"]), b"12345")
    b = planner.plan(src, dst, cfg, run_id="runB", model_id=model)
    assert (b.skipped, b.pending) == (128, 192)
    batches = list(b.iter_batches())
    for index, batch in batches[:-1]:
        jobs.write_part(dst, b.run_id, index, _ok_rows(b, batch), b.scratch)
    leftover = jobs.failed_batch_rows(batches[-1][1], b.settings, b.model_id, b.run_id, "storage down")
    sb = run.finish_run(dst, b, leftover)
    merged = tmp_path / "dst" / "_gancodec" / "manifest.parquet"
    before = merged.read_bytes()
    c = planner.plan(src, dst, cfg.replace(), run_id="runC", model_id=model)
    assert (c.skipped, c.pending) == (128, 192)  # runB's outputs were never written: redone
    c.pending, c.jobs_path = 0, ""  # ... by a run that wrote nothing (stopped at once)
    sc = run.finish_run(dst, c)
    return tmp_path / "dst", sb, sc, before


def test_finish_run_merges_other_runs_parts_ours_and_leftover_rows(tmp_path, monkeypatch):
    """finish_run's run manifest holds this run's rows only (skipped, parts, leftover); the merged
    view one row per key: the killed run's unmerged parts, ours, the leftover rows; a later run
    that wrote nothing leaves the merged view as it is."""
    monkeypatch.setenv("GANCODEC_SCRATCH", str(tmp_path))  # the killed run's scratch folder stays
    folder, sb, sc, before = _finish_scenario(tmp_path)
    assert (sb.ok, sb.failed, sb.skipped) == (128, 64, 128)
    con = duckdb.connect()
    run_b = con.execute(f"SELECT run_id, status, count(*), count(DISTINCT key), min(part) <> '' FROM "
                        f"read_parquet('{folder}/_gancodec/manifest-runB.parquet') GROUP BY ALL ORDER BY ALL").fetchall()
    assert run_b == [("runB", "failed", 64, 64, False), ("runB", "ok", 128, 128, True), ("runB", "skipped", 128, 128, False)]
    merged = con.execute(f"SELECT run_id, status, count(*), count(DISTINCT key), count(DISTINCT part) FROM "
                         f"read_parquet('{folder}/_gancodec/manifest.parquet') GROUP BY ALL ORDER BY ALL").fetchall()
    assert merged == [("runA", "ok", 128, 128, 2), ("runB", "failed", 64, 64, 1), ("runB", "ok", 128, 128, 2)]
    assert (sc.ok, sc.failed, sc.skipped) == (0, 0, 128)
    assert (folder / "_gancodec" / "manifest.parquet").read_bytes() == before  # nothing new: not rewritten


def test_fetch_state_copies_the_parts_not_merged_into_one_file(tmp_path, monkeypatch):
    """What DST holds is two files whatever the number of parts (nothing per part kept): the
    merged view and the parts it lacks, copied into one; a run's own parts are counted, not
    copied; a second call on the same scratch folder downloads no part again."""
    from gancodec.bulk import jobs, planner
    from gancodec.bulk.settings import PARTS_PREFIX, Settings
    from gancodec.storage import LocalStore

    monkeypatch.setenv("GANCODEC_SCRATCH", str(tmp_path))
    folder, *_ = _finish_scenario(tmp_path)
    dst = LocalStore(folder)
    p = planner.Plan(run_id="runD", model_id="0" * 32, settings=Settings(quality=4, device="cpu"))
    for run_id, n in (("runD", 2), ("runE", 1)):
        for i in range(n):
            jobs.write_part(dst, run_id, i, _ok_rows(p, [{"key": f"new/{run_id}/{i}/{k}.jpg", "etag": "e"} for k in range(64)]))
    scratch = tmp_path / "scratch"
    state = planner.fetch_state(dst, scratch, out=scratch / "parts.parquet", hold_back=f"{PARTS_PREFIX}runE/")
    assert [f for f in state.files] == [(str(scratch / "state" / "merged.parquet"), ""), (str(scratch / "parts.parquet"), "")]
    assert (state.new_parts, state.held_back) == (2, 1)
    assert duckdb.connect().execute(f"SELECT count(*), count(DISTINCT part), min(part) FROM read_parquet('{scratch}/parts.parquet')").fetchone() == (
        128, 2, f"{PARTS_PREFIX}runD/batch-000000.parquet")
    gets = []
    real = dst.get_file
    dst.get_file = lambda key, path: (gets.append(key), real(key, path))
    again = planner.fetch_state(dst, scratch, state.cache, out=scratch / "parts2.parquet")
    assert (again.new_parts, again.held_back, gets) == (3, 0, [f"{PARTS_PREFIX}runE/batch-000000.parquet"])


def test_fetch_state_skips_a_damaged_part_with_a_warning_and_copies_the_rest(tmp_path, monkeypatch, caplog):
    """A part cut short and one whose data pages are garbled (its footer intact) are left out,
    each named in a warning; the good parts are copied as before."""
    from gancodec.bulk import jobs, planner
    from gancodec.bulk.settings import PARTS_PREFIX, Settings
    from gancodec.storage import LocalStore

    monkeypatch.setenv("GANCODEC_SCRATCH", str(tmp_path))
    dst = LocalStore(tmp_path / "dst")
    p = planner.Plan(run_id="runF", model_id="0" * 32, settings=Settings(quality=4, device="cpu"))
    for i in range(3):
        jobs.write_part(dst, "runF", i, _ok_rows(p, [{"key": f"f/{i}/{k}.jpg", "etag": "e"} for k in range(64)]))
    parts = sorted((tmp_path / "dst" / PARTS_PREFIX / "runF").glob("*.parquet"))
    cut = parts[0].read_bytes()
    parts[0].write_bytes(cut[: len(cut) // 2])
    import pyarrow.parquet as pq

    col = pq.read_metadata(str(parts[1])).row_group(0).column(0)
    start = col.dictionary_page_offset or col.data_page_offset
    garbled = bytearray(parts[1].read_bytes())
    garbled[start + 4:start + col.total_compressed_size] = b"\xff" * (col.total_compressed_size - 4)  # a data page, not the footer
    parts[1].write_bytes(bytes(garbled))
    pq.read_metadata(str(parts[1]))  # the footer still reads
    scratch = tmp_path / "scratch"
    with caplog.at_level("WARNING"):
        state = planner.fetch_state(dst, scratch, out=scratch / "parts.parquet")
    assert state.new_parts == 1
    assert duckdb.connect().execute(f"SELECT count(*), min(part) FROM read_parquet('{scratch}/parts.parquet')").fetchone() == (
        64, f"{PARTS_PREFIX}runF/{parts[2].name}")
    warned = [r.getMessage() for r in caplog.records if "unreadable manifest part" in r.getMessage()]
    assert len(warned) == 2 and parts[0].name in warned[0] and parts[1].name in warned[1]

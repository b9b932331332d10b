"""Planning a run: list SRC, keep this shard's images, skip what DST already has, batch the rest.

Streamed: the listing goes to a parquet file as it is read, the "already done" decision is a
DuckDB join against the manifests (:mod:`.ledger`), and the plan is two files, ``jobs.parquet``
and ``skipped.parquet``, kept under ``DST/_gancodec/runs/<run>/`` too, so a run stopped at any
point can be resumed (``resume=True``, ``gancodec bulk --resume``) without listing SRC again.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow.parquet as pq

from ..errors import StorageError
from ..storage import Store, open_store
from . import ledger
from .settings import (CONTROL_PREFIX, DEFAULT_BATCH_SIZE, MERGED_MANIFEST, MODEL_FREE_KINDS, OUTPUT_SUFFIX, PARTS_PREFIX,
                       PERMANENT_KINDS, Settings, is_image_key, model_id_for, new_run_id, now, parse_shard, shard_of)

log = logging.getLogger("gancodec.bulk")

RUNS_PREFIX = CONTROL_PREFIX + "runs/"


def run_key(run_id: str, name: str) -> str:
    """Where a run keeps its plan in DST: ``_gancodec/runs/<run>/<name>``."""
    return f"{RUNS_PREFIX}{run_id}/{name}"


@dataclass
class Plan:
    """The work of one run, as files on the local scratch folder (never a row per key in memory)."""

    run_id: str
    model_id: str
    settings: Settings
    listed: int = 0
    ignored: int = 0  # objects that are not images (by extension) or other shards' keys
    skipped: int = 0
    pending: int = 0  # images to compress in this run (all batches, done ones included)
    scratch: str = ""
    jobs_path: str = ""
    skipped_path: str = ""
    done_batches: list[int] = field(default_factory=list)  # batches whose part a stopped attempt already wrote
    resumed: bool = False
    state: dict[str, Any] = field(default_factory=dict)  # the local copy of DST's merged manifest (finish reuses it)

    @property
    def n_batches(self) -> int:
        return math.ceil(self.pending / self.settings.batch_size)

    def iter_batches(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(batch index, jobs) of the batches still to do, one batch in memory at a time."""
        done = set(self.done_batches)
        if not self.jobs_path:
            return
        for index, jobs in ledger.iter_batches(self.jobs_path, self.settings.batch_size):
            if index not in done:
                yield index, jobs

    @property
    def batches(self) -> list[list[dict[str, Any]]]:
        """Every batch still to do as a list (small runs and tests; a big run iterates)."""
        return [jobs for _, jobs in self.iter_batches()]


@dataclass
class State:
    """What DST holds, as local files: ``files`` is the merged manifest (if readable) and one
    file with every part it does not include yet, in listing order, each as (path, ``""``)."""

    files: list[tuple[str, str]]
    cache: dict[str, Any]  # the merged manifest's tag and local copy (what a later call reuses)
    new_parts: int = 0  # parts not in the merged manifest, copied into the parts file
    held_back: int = 0  # parts under ``hold_back`` not in the merged manifest (not copied)


def part_copy(folder: Path, key: str) -> Path:
    """Where fetch_state keeps its copy of the part ``key``: a name made from the key, so that
    a later call finds it without a table of the parts in memory."""
    import hashlib

    return folder / "parts" / (hashlib.sha1(key.encode()).hexdigest() + ".parquet")


def fetch_state(dst: Store, scratch: Path, cache: Mapping[str, Any] | None = None, *, out: Path | None = None,
                hold_back: str = "") -> State:
    """Local copies of what DST holds: the merged manifest and every part it does not include
    yet (left by a killed run or a run still going), the parts copied into one file (``out``),
    in the order they are listed.

    Nothing per part is held in memory: the part keys go to a parquet file as they are listed,
    the ones the merged manifest already includes are dropped by a DuckDB join, and the others
    are read back a batch at a time, downloaded (once: a part's copy is named after its key, see
    :func:`part_copy`) and copied into ``out``. Parts whose key starts with ``hold_back`` (a
    run's own parts, which finishing copies itself) are only counted. ``cache`` (an earlier
    call's) saves downloading again a merged manifest that did not change."""
    cache = dict(cache or {})
    folder = scratch / "state"
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    out = out or scratch / "state-parts.parquet"
    files: list[tuple[str, str]] = []
    merged_key = MERGED_MANIFEST + ".parquet"
    merged = None
    info = dst.head(merged_key)
    if info is not None:
        local = folder / "merged.parquet"
        tag = (info.etag, info.size)
        if cache.get("merged") is None or cache["merged"][0] != list(tag) or not local.exists():
            dst.get_file(merged_key, local)
            cache["merged"] = [list(tag), str(local)]
        try:
            pq.read_metadata(str(local))
            merged = local
            files.append((str(local), ""))
        except Exception as exc:  # noqa: BLE001 - a damaged merged view is rebuilt from the parts
            log.warning("%s: unreadable merged manifest (%s); rebuilding it from the parts", dst.url_of(merged_key), exc)
    listed, pending = folder / "listed-parts.parquet", folder / "pending-parts.parquet"
    writer = ledger.ListingWriter(listed, {"key": "string", "n": "int64"})
    try:
        for part in dst.list(PARTS_PREFIX.rstrip("/")):
            if part.key.endswith(".parquet"):
                writer.add(part.key, writer.count)
    finally:
        writer.close()
    if merged is not None and writer.count:
        con = ledger.connect(scratch)  # under the memory limit too: the merged view has a row per key
        try:
            ledger.copy_out(con, f"SELECT l.key FROM read_parquet({ledger._q(listed)}) l LEFT JOIN "
                                 f"(SELECT DISTINCT part FROM read_parquet({ledger._q(merged)}) WHERE part <> '') m ON m.part = l.key "
                                 "WHERE m.part IS NULL ORDER BY l.n", pending)
        finally:
            con.close()
        listed.unlink(missing_ok=True)
    else:
        listed.replace(pending)
    result = State(files, cache)

    def parts() -> Iterator[tuple[str, str]]:
        for batch in pq.ParquetFile(str(pending)).iter_batches(batch_size=4096, columns=["key"]):
            for key in batch.column(0).to_pylist():
                if hold_back and key.startswith(hold_back):
                    result.held_back += 1
                    continue
                local = part_copy(folder, key)
                if not local.exists():
                    dst.get_file(key, local)
                result.new_parts += 1
                yield str(local), key

    def skip(path: str, key: str, exc: Exception) -> None:
        result.new_parts -= 1
        log.warning("%s: unreadable manifest part skipped (%s)", dst.url_of(key), exc)

    copied = ledger.consolidate(parts(), out, on_unreadable=skip)
    pending.unlink(missing_ok=True)
    if copied is not None:
        files.append((str(copied), ""))
    return result


def _made_by(con: Any, model_id: str) -> dict[str, str]:
    """``weights v1.4`` for each other model id in the state that is a known release."""
    from ..weights.history import version_of

    out = {}
    for (other,) in con.execute("SELECT DISTINCT model_id FROM prev WHERE model_id <> ? AND status = 'ok'", [model_id]).fetchall():
        release = version_of(other)
        if release:
            out[other] = f"weights {release['version']}"
    return out


def plan(
    src: str | Store,
    dst: str | Store,
    settings: Settings | Mapping[str, Any] = Settings(),
    *,
    run_id: str | None = None,
    model_id: str | None = None,
    resume: bool = False,
) -> Plan:
    """List SRC, keep this shard's image keys, skip what DST already has, batch the rest
    (``settings.batch_size`` images a batch, keys of ``settings.shard`` only).

    With ``resume=True`` (or the ``run_id`` of a run whose plan DST holds), the newest
    unfinished run with the same settings and model continues: its stored plan is used, SRC
    is not listed again, and the batches it wrote are not redone.
    """
    settings = Settings.from_dict(settings).resolved()  # device auto -> cuda or cpu; cuda without one fails here
    shard_i, shard_n = parse_shard(settings.shard)
    src_store = src if isinstance(src, Store) else open_store(src)
    dst_store = dst if isinstance(dst, Store) else open_store(dst)
    model_id = model_id or model_id_for(settings)
    dst_store.probe(write=True)  # a destination that cannot be written fails the run now, not per image
    if resume or run_id:
        found = find_resumable(dst_store, settings, model_id, run_id)
        if found is not None:
            return load_plan(dst_store, found, settings, model_id)
        if resume:
            log.info("no unfinished run with these settings to resume; starting a new one")
    run_id = run_id or new_run_id()
    scratch = ledger.new_scratch(run_id)
    result = Plan(run_id=run_id, model_id=model_id, settings=settings, scratch=str(scratch))
    listing = ledger.ListingWriter(scratch / "listing.parquet", {"key": "string", "etag": "string", "size": "int64"})
    for info in src_store.list():
        result.listed += 1
        if not is_image_key(info.key) or (shard_n > 1 and shard_of(info.key, shard_n) != shard_i):
            result.ignored += 1
            continue
        listing.add(info.key, info.etag or "", info.size)
    listing.close()
    outputs = ledger.ListingWriter(scratch / "outputs.parquet", {"key": "string", "size": "int64"})
    for info in dst_store.list():
        if info.key.endswith(OUTPUT_SUFFIX) and not info.key.startswith(CONTROL_PREFIX):
            outputs.add(info.key, info.size)
    outputs.close()
    state = fetch_state(dst_store, scratch, out=scratch / "state-parts.parquet")
    files, result.state = state.files, state.cache
    con = ledger.connect(scratch)
    try:
        ledger.rows_relation(con, files, "prev")
        jobs, skipped, result.pending, result.skipped = ledger.plan_files(
            con, scratch / "listing.parquet", scratch / "outputs.parquet", "prev", scratch, run_id=run_id, model_id=model_id,
            label=settings.label, target_bpp=settings.bpp, keep_other_models=not settings.recompress_other_models,
            made_by=_made_by(con, model_id), finished_at=now(), permanent=PERMANENT_KINDS, model_free=MODEL_FREE_KINDS,
        )
    finally:
        con.close()
    result.jobs_path, result.skipped_path = str(jobs), str(skipped)
    (scratch / "listing.parquet").unlink(missing_ok=True)
    (scratch / "outputs.parquet").unlink(missing_ok=True)
    save_plan(dst_store, result)
    return result


def _plan_doc(p: Plan) -> dict[str, Any]:
    return {"run_id": p.run_id, "model_id": p.model_id, "settings": p.settings.to_dict(), "label": p.settings.label,
            "listed": p.listed, "ignored": p.ignored, "skipped": p.skipped, "pending": p.pending, "planned_at": now()}


def save_plan(dst: Store, p: Plan) -> None:
    """Keep the plan in DST (``_gancodec/runs/<run>/``): what a resumed run starts from."""
    dst.put_file(run_key(p.run_id, "jobs.parquet"), p.jobs_path, content_type="application/vnd.apache.parquet")
    dst.put_file(run_key(p.run_id, "skipped.parquet"), p.skipped_path, content_type="application/vnd.apache.parquet")
    dst.put(run_key(p.run_id, "plan.json"), json.dumps(_plan_doc(p), indent=1).encode(), content_type="application/json")


def _same_job(doc: Mapping[str, Any], settings: Settings, model_id: str) -> bool:
    stored = doc.get("settings") or {}
    return (doc.get("model_id") == model_id and doc.get("label") == settings.label and stored.get("shard") == settings.shard
            and bool(stored.get("recompress_other_models")) == settings.recompress_other_models)


def find_resumable(dst: Store, settings: Settings, model_id: str, run_id: str | None = None) -> str | None:
    """The run to resume: ``run_id`` if DST holds its plan and it did not finish, else (no
    ``run_id``) the newest unfinished run planned with the same settings and model."""
    candidates = []
    for info in dst.list(RUNS_PREFIX.rstrip("/")):
        if info.key.endswith("/plan.json"):
            rid = info.key[len(RUNS_PREFIX):-len("/plan.json")]
            if run_id is None or rid == run_id:
                candidates.append(rid)
    for rid in sorted(candidates, reverse=True):
        if dst.exists(f"{CONTROL_PREFIX}manifest-{rid}.parquet"):
            continue  # finished
        try:
            doc = json.loads(dst.get(run_key(rid, "plan.json")))
        except (StorageError, ValueError):
            continue
        if _same_job(doc, settings, model_id):
            return rid
        if run_id is not None:
            raise ValueError(f"run {rid} was planned with other settings or weights ({doc.get('label')}, model {doc.get('model_id')}); "
                             "give a new run id, or the same settings")
    return None


def load_plan(dst: Store, run_id: str, settings: Settings, model_id: str) -> Plan:
    """A stored plan, ready to go on: the batches whose manifest part exists are done."""
    doc = json.loads(dst.get(run_key(run_id, "plan.json")))
    stored = Settings.from_dict(doc["settings"])
    scratch = ledger.new_scratch(run_id)
    p = Plan(run_id=run_id, model_id=model_id, settings=settings.replace(batch_size=stored.batch_size), listed=doc["listed"],
             ignored=doc["ignored"], skipped=doc["skipped"], pending=doc["pending"], scratch=str(scratch), resumed=True)
    p.jobs_path, p.skipped_path = str(scratch / "jobs.parquet"), str(scratch / "skipped.parquet")
    dst.get_file(run_key(run_id, "jobs.parquet"), p.jobs_path)
    dst.get_file(run_key(run_id, "skipped.parquet"), p.skipped_path)
    prefix = f"{PARTS_PREFIX}{run_id}/batch-"
    p.done_batches = sorted(int(i.key[len(prefix):-len(".parquet")]) for i in dst.list(f"{PARTS_PREFIX}{run_id}")
                            if i.key.startswith(prefix) and i.key.endswith(".parquet"))
    log.info("resuming run %s: %d of %d batches already done", run_id, len(p.done_batches), p.n_batches)
    return p


def list_decompress(src: str | Store, path: str | Path) -> int:
    """Write the ``.gcx`` objects under SRC (the control folder excluded) to a jobs file
    (key, etag, size), streamed from the listing; return how many."""
    from .jobs import cached_store

    writer = ledger.ListingWriter(path, {"key": "string", "etag": "string", "size": "int64"})
    try:
        for info in cached_store(src).list():
            if info.key.endswith(OUTPUT_SUFFIX) and not info.key.startswith(CONTROL_PREFIX):
                writer.add(info.key, info.etag or "", info.size)
    finally:
        writer.close()
    return writer.count


def plan_decompress(src: str | Store, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[dict[str, Any]]]:
    """Batches of the ``.gcx`` objects under SRC, listed into a file on the scratch folder first
    and read back one batch at a time (never a row per object in memory)."""
    scratch = ledger.new_scratch("decompress")
    try:
        path = scratch / "jobs.parquet"
        list_decompress(src, path)
        for _, jobs in ledger.iter_batches(path, batch_size):
            yield jobs
    finally:
        ledger.remove_scratch(scratch)

"""A whole run: finish it (run manifest, merged view, summary), the plain loop without Prefect,
and ``run_cli``, which ``gancodec bulk`` and ``gancodec bulk-decompress`` call."""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..errors import GancodecError, ModelError, StorageError
from ..progress import progress_bar
from ..storage import Store, is_transient, open_store
from pathlib import Path
from typing import TYPE_CHECKING

from . import ledger
from .jobs import cached_store
from .settings import (BATCH_RETRY_DELAYS, CONTROL_PREFIX, MERGED_MANIFEST, PARTS_PREFIX, RETRY_JITTER, STEP_RETRY_DELAYS,
                       Settings)

if TYPE_CHECKING:
    from .planner import Plan

log = logging.getLogger("gancodec.bulk")


class ImagesFailed(GancodecError):
    """A run finished and some images failed (each has a ``failed`` row with its reason); the
    flow run's Failed state carries it, with the run's summary."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message, summary)
        self.summary = summary

    def __str__(self) -> str:
        return str(self.args[0])


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
    failures: list[tuple[str, str, str]]  # (key, kind, error), at most MAX_FAILURES (the markdown shows 50)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Failed rows a summary carries (the failures table artifact); the manifest has them all.
MAX_FAILURES = 1000


def finish_run(dst: str | Store, p: "Plan", leftover: Sequence[Mapping[str, Any]] = (), *, seconds: float = 0.0) -> Summary:
    """Write the run manifest (parquet + CSV) and refresh the merged view; return a summary.

    Streamed: the run manifest is this run's skipped rows plus its manifest parts (copied into
    one local file once), the merged view the latest row per key of the old one plus every part
    not in it yet; both are written by DuckDB into files (unsorted; the CSV copied from the
    parquet file) that are then uploaded. ``leftover``: rows of batches whose part could not be
    written (storage down after every retry).
    """
    from .manifest import parquet_bytes
    from .planner import fetch_state
    from .jobs import spool_path

    dst_store = cached_store(dst)
    scratch = Path(p.scratch or ledger.new_scratch(p.run_id))
    scratch.mkdir(parents=True, exist_ok=True)
    prefix = f"{PARTS_PREFIX}{p.run_id}/"
    mine = scratch / "run-parts"
    mine.mkdir(exist_ok=True)

    def run_parts() -> Iterator[tuple[str, str]]:
        """This run's parts as they are listed, each a local file (the batch's spooled copy, or
        downloaded): streamed into one file, nothing per part kept."""
        for i, info in enumerate(dst_store.list(prefix.rstrip("/"))):
            if not info.key.endswith(".parquet"):
                continue
            local = spool_path(str(scratch), info.key)
            if not local.exists():
                local = mine / f"{i:08d}.parquet"
                dst_store.get_file(info.key, local)
            yield str(local), info.key

    # copied into one file once, for both the run manifest and the merged view
    copied = ledger.consolidate(run_parts(), scratch / "run-parts.parquet")
    shutil.rmtree(mine, ignore_errors=True)
    consolidated = [(str(copied), "")] if copied is not None else []
    run_files = ([(p.skipped_path, "")] if p.skipped_path else []) + consolidated
    extra: list[tuple[str, str]] = []
    if leftover:
        path = scratch / "leftover.parquet"
        path.write_bytes(parquet_bytes([{**r, "part": ""} for r in leftover]))
        extra.append((str(path), ""))
    run_key = f"{CONTROL_PREFIX}manifest-{p.run_id}"
    # the merged view: the old one + every part not in it yet (ours included) + the leftover rows;
    # the other runs' parts are copied into one file, ours are only counted (copied above)
    state = fetch_state(dst_store, scratch, p.state, out=scratch / "other-parts.parquet", hold_back=prefix)
    files = state.files + (consolidated if state.held_back else [])
    con = ledger.connect(scratch)
    try:
        ledger.rows_relation(con, run_files + extra, "runrows")
        write_manifest(con, dst_store, ledger.manifest_select("runrows"), scratch / "run", run_key)
        con.execute(f"CREATE OR REPLACE VIEW runrows AS SELECT * FROM read_parquet({ledger._q(scratch / 'run.parquet')})")  # the same rows
        counts = dict(con.execute("SELECT status, count(*) FROM runrows GROUP BY status").fetchall())
        bytes_in, bytes_out = con.execute("SELECT coalesce(sum(bytes_in), 0), coalesce(sum(bytes_out), 0) FROM runrows WHERE status = 'ok'").fetchone()
        failures = [tuple(r) for r in con.execute(
            f"SELECT key, error_kind, error FROM runrows WHERE status = 'failed' ORDER BY key LIMIT {MAX_FAILURES}").fetchall()]
        if files and not (state.new_parts or state.held_back) and not extra:
            pass  # nothing new since the merged view (a run that only skipped): it is current as it is
        else:
            ledger.rows_relation(con, files + extra, "allrows")
            ledger.latest_view(con, "allrows", "merged", scratch)
            write_manifest(con, dst_store, ledger.manifest_select("merged"), scratch / "merged", MERGED_MANIFEST)
    finally:
        con.close()
    ledger.remove_scratch(scratch)
    return Summary(
        run_id=p.run_id, model_id=p.model_id, setting=p.settings.label, ok=int(counts.get("ok", 0)), failed=int(counts.get("failed", 0)),
        skipped=int(counts.get("skipped", 0)), ignored=p.ignored, bytes_in=int(bytes_in), bytes_out=int(bytes_out), seconds=seconds,
        manifest=dst_store.url_of(run_key + ".parquet"), failures=failures,
    )


def write_manifest(con: Any, dst: Store, query: str, local: Path, key: str) -> None:
    """``query``'s rows to ``key``.parquet and ``key``.csv in DST, through local files (the CSV
    is copied from the parquet file, so the query runs once)."""
    parquet, csv = local.with_suffix(".parquet"), local.with_suffix(".csv")
    ledger.copy_out(con, query, parquet)
    ledger.copy_out(con, f"SELECT * FROM read_parquet({ledger._q(parquet)})", csv, "csv")
    dst.put_file(f"{key}.parquet", parquet, content_type="application/vnd.apache.parquet")
    dst.put_file(f"{key}.csv", csv, content_type="text/csv")
    csv.unlink(missing_ok=True)


def summary_markdown(summary: Summary | Mapping[str, Any], title: str = "gancodec bulk compress") -> str:
    s = summary.to_dict() if isinstance(summary, Summary) else dict(summary)
    ratio = f"{s['bytes_in'] / s['bytes_out']:.2f}" if s.get("bytes_out") else "-"  # nothing written: no ratio
    lines = [
        f"# {title}: run `{s['run_id']}`",
        "",
        "| ok | failed | skipped | ignored | bytes in | bytes out | ratio | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['ok']} | {s['failed']} | {s['skipped']} | {s['ignored']} | {s['bytes_in']} | {s['bytes_out']} | {ratio} | {s['seconds']:.1f} |",
        "",
        f"Model `{s['model_id']}`, setting `{s['setting']}`. Manifest: `{s['manifest']}`",
    ]
    if s["failures"]:
        lines += ["", "## Failures", "", "| key | kind | error |", "|---|---|---|"]
        for key, kind, err in s["failures"][:50]:
            lines.append(f"| `{key}` | {kind} | {str(err).replace('|', '/')[:300]} |")
    return "\n".join(lines) + "\n"


def retrying(step: Callable[[], Any], what: str, delays: Sequence[float] = BATCH_RETRY_DELAYS,
             sleep: Callable[[float], None] | None = None) -> Any:
    """``step()``, again after each of ``delays`` (stretched by up to :data:`RETRY_JITTER` at
    random, as the flow's tasks are) while it raises a transient storage error
    (:func:`gancodec.storage.is_transient`); anything else, or the last failure, is raised."""
    for delay in (*delays, None):
        try:
            return step()
        except Exception as exc:  # noqa: BLE001 - only transient errors are retried
            if delay is None or not is_transient(exc):
                raise
            log.warning("%s: %s; retrying in %g s", what, _one_line(exc), delay)
            (sleep or time.sleep)(delay * (1 + random.uniform(0, RETRY_JITTER)))
    raise AssertionError("unreachable")


def run_batches(src: str, dst: str, settings: Settings | Mapping[str, Any] = Settings(), *, run_id: str | None = None,
                resume: bool = False, progress: bool = False, **fields: Any) -> Summary:
    """The whole job without Prefect (plain loop): plan, every batch, finish, each step retried
    like the flow's tasks (:func:`retrying`). ``fields`` override the settings'
    (``batch_size=8``); ``progress`` shows a progress bar on a terminal."""
    from .jobs import compress_batch, failed_batch_rows
    from .planner import plan

    settings = Settings.from_dict(settings).replace(**fields) if fields else Settings.from_dict(settings)
    t0 = time.perf_counter()
    p = retrying(lambda: plan(cached_store(src), cached_store(dst), settings, run_id=run_id, resume=resume), "plan",
                 STEP_RETRY_DELAYS)
    leftover: list[dict[str, Any]] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("compress", total=p.pending, completed=min(p.pending, len(p.done_batches) * p.settings.batch_size))
        for i, jobs in p.iter_batches():
            before = next(t.completed for t in bar.tasks if t.id == task)

            def batch(i: int = i, jobs: list[dict[str, Any]] = jobs, before: float = before) -> list[dict[str, Any]]:
                bar.update(task, completed=before)  # a retry counts its batch from the start again
                return compress_batch(src, dst, jobs, p.settings, model_id=p.model_id, run_id=p.run_id, batch_index=i,
                                      spool=p.scratch, on_image=lambda row: bar.advance(task))
            try:
                retrying(batch, f"batch {i}")
            except StorageError as exc:
                leftover += failed_batch_rows(jobs, p.settings, p.model_id, p.run_id, exc)
    return retrying(lambda: finish_run(dst, p, leftover, seconds=time.perf_counter() - t0), "finish", STEP_RETRY_DELAYS)


# --------------------------------------------------------------------------- CLI entry


def _prefect_env() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # a fresh PREFECT_HOME migrates its database on first start: on a busy 2-core machine that
    # takes well over Prefect's 20 s default, and the run would die before doing anything
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def prefect_api_configured() -> bool:
    """Whether Prefect has an API to report to: ``PREFECT_API_URL`` in the environment or in
    the active profile of Prefect's ``profiles.toml`` (``$PREFECT_PROFILES_PATH``, else
    ``$PREFECT_HOME/profiles.toml``, else ``~/.prefect/profiles.toml``; ``$PREFECT_PROFILE``
    picks the profile), or, when Prefect is already imported, its current settings (a test
    harness, a caller's settings context). Read without importing Prefect, which takes seconds."""
    import tomllib

    if os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect.settings" in sys.modules:
        try:
            return bool(sys.modules["prefect.settings"].get_current_settings().api.url)
        except Exception:  # noqa: BLE001 - another Prefect layout: fall back to the files
            pass
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or doc.get("active") or "ephemeral"
    profile = (doc.get("profiles") or {}).get(active)
    return isinstance(profile, dict) and bool(profile.get("PREFECT_API_URL"))


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
        if record.name.startswith("prefect.task_runs") and record.levelno < logging.WARNING:
            return not str(record.msg).startswith("Finished in state")  # the flow run's own line says it once
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


    print(f"gancodec: error: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    """An error as one line (a message from torch or botocore may span several)."""
    text = str(exc) if isinstance(exc, GancodecError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())



#: Run in the temporary Prefect server's process in place of ``python -m uvicorn``: a thread
#: that ends the server as soon as its parent (``gancodec bulk``) is gone, however it died
#: (SIGKILL included), then uvicorn itself. ``-c`` code, so the server does not import gancodec.
_SERVER_GUARD = """
import os, runpy, sys, threading, time
parent = int(sys.argv[1])
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True, name="gancodec-parent-watch").start()
sys.argv = ["uvicorn", *sys.argv[2:]]
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""


def guard_ephemeral_server() -> None:
    """Make the temporary Prefect server that ``gancodec bulk`` starts (no PREFECT_API_URL)
    die with this process: Prefect starts it as ``python -m uvicorn ...`` and stops it at
    exit, but a SIGKILLed parent never gets there, and the server (~220 MB, a port) stayed
    for good. Its command is rewritten to run under :data:`_SERVER_GUARD`."""
    import subprocess
    import types

    try:
        from prefect.server.api import server as prefect_server
    except ImportError:  # pragma: no cover - another Prefect layout: nothing to guard
        return
    if getattr(prefect_server.subprocess, "_gancodec_guard", False):
        return
    real = subprocess.Popen

    def popen(args: Any, *a: Any, **kw: Any) -> Any:
        args = list(args)
        if args[1:3] == ["-m", "uvicorn"]:
            args = [args[0], "-c", _SERVER_GUARD, str(os.getpid()), *args[3:]]
        return real(args, *a, **kw)

    shim = types.SimpleNamespace(**{k: getattr(subprocess, k) for k in dir(subprocess) if not k.startswith("__")})
    shim.Popen, shim._gancodec_guard = popen, True
    prefect_server.subprocess = shim


def load_flows():
    """The Prefect flows (:mod:`gancodec.bulk.flows`); a one-line :class:`ModelError`-free
    ``RuntimeError`` naming the fix when Prefect is not installed."""
    _prefect_env()
    try:
        from . import flows
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "prefect":
            raise
        raise RuntimeError("Prefect is not installed in this environment (pip install 'prefect>=3'); "
                           "or run without it: --no-prefect") from None
    return flows


def run_cli(
    src: str,
    dst: str,
    settings: Settings | Mapping[str, Any] | None = None,
    *,
    decompress: bool = False,
    realism: bool = False,
    resume: bool = False,
    use_prefect: bool | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    error: Callable[[str], None] = _print_error,
    **fields: Any,
) -> int:
    """Run bulk compression (or, with ``decompress=True``, decompression) of SRC into DST.

    ``settings`` (or its fields as keywords: ``quality=4, batch_size=16``) as for the flow.
    ``use_prefect=True`` runs the Prefect flow (against the configured Prefect API, or in
    ephemeral mode with a temporary server; analytics off), ``False`` the same logic in a
    plain loop in this process (with a progress bar on a terminal when ``progress``), and
    ``None`` (the default) picks the flow only when a Prefect API is configured
    (:func:`prefect_api_configured`): a temporary server costs ~10 s per run and keeps no
    record anyone sees. Returns the exit code: 0 when
    nothing failed, 1 when something failed (details in the manifest), 2 for bad arguments or
    storage that cannot be used. The summary goes to ``echo``; an error goes to ``error`` as
    one line (default: ``gancodec: error: ...`` on stderr), and Prefect's own tracebacks
    about it are held back.
    """
    _prefect_env()
    if use_prefect is None:
        use_prefect = prefect_api_configured()
    try:
        base = Settings.from_dict(settings) if settings is not None else Settings()
        settings = base.replace(**fields) if fields else base
        settings.resolved()  # an explicit cuda on a machine without one: one line now, before Prefect starts
    except (TypeError, ValueError) as exc:
        error(_one_line(exc))
        return 2
    try:  # before Prefect starts: a bad bucket or folder is one line in a second, not a traceback
        check_access(src, dst)
    except StorageError as exc:
        error(_one_line(exc))
        return 2
    try:
        module = load_flows() if use_prefect else None
    except RuntimeError as exc:
        error(_one_line(exc))
        return 2
    if module is not None and not decompress:
        # Plan first, without Prefect: a run with nothing to do (the nightly no-op) finishes
        # here in seconds, without starting a Prefect server; otherwise the flow goes on with
        # this plan (stored in DST) instead of listing SRC again.
        from .planner import plan

        t0 = time.perf_counter()
        try:
            p = plan(cached_store(src), cached_store(dst), settings, resume=resume)
        except (StorageError, ModelError, ValueError) as exc:
            error(_one_line(exc))
            return 2
        if not any(True for _ in p.iter_batches()):
            summary = finish_run(dst, p, seconds=time.perf_counter() - t0)
            echo(summary_markdown(summary))
            return 1 if summary.failed else 0
        ledger.remove_scratch(p.scratch)
        resume, fields = True, {"run_id": p.run_id}
    else:
        fields = {}
    if module is not None:
        guard_ephemeral_server()
    with _quiet_prefect_failures():
        return _run_cli_flow(module, src, dst, settings, decompress=decompress, realism=realism, resume=resume, echo=echo, error=error,
                             progress=progress, **fields)


def _run_cli_flow(module: Any, src: str, dst: str, settings: Settings, *, decompress: bool, realism: bool, resume: bool,
                  echo: Callable[[str], None], error: Callable[[str], None], progress: bool = False, run_id: str | None = None) -> int:
    from .decompress import run_decompress_plain as _run_decompress_plain

    title = "gancodec bulk decompress" if decompress else "gancodec bulk compress"
    try:
        if module is None:
            if decompress:
                summary = _run_decompress_plain(src, dst, realism=realism, device=settings.device, batch_size=settings.batch_size,
                                                progress=progress, parallel=settings.parallel)
            else:
                summary = run_batches(src, dst, settings, resume=resume, progress=progress)
            echo(summary_markdown(summary, title))
            return 1 if summary.failed else 0
        if decompress:
            state = module.bulk_decompress(src=src, dst=dst, realism=realism, device=settings.device, batch_size=settings.batch_size,
                                           weights=settings.weights, parallel=settings.parallel, return_state=True)
        else:
            state = module.bulk_compress(src=src, dst=dst, **settings.to_dict(), run_id=run_id, resume=resume, return_state=True)
    except (StorageError, ModelError) as exc:
        error(_one_line(exc))
        return 2
    result = state.result(raise_on_failure=False)
    if isinstance(result, ImagesFailed):
        echo(summary_markdown(result.summary, title))
        return 1
    if isinstance(result, dict) and "run_id" in result:
        echo(summary_markdown(result, title))
    elif isinstance(result, BaseException):
        error(_one_line(result))
        return 2 if isinstance(result, (StorageError, ModelError, ValueError)) else 1
    return 0 if state.is_completed() else 1

"""A whole run: finish it (run manifest, merged view, summary), the plain loop without Prefect,
and ``run_cli``, which ``gancodec bulk`` and ``gancodec bulk-decompress`` call."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..errors import GancodecError, ModelError, StorageError
from ..storage import Store, open_store
from .jobs import cached_store
from .manifest import csv_bytes, load_state, parquet_bytes
from .settings import CONTROL_PREFIX, MERGED_MANIFEST, Settings

log = logging.getLogger("gancodec.bulk")


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
        for key, kind, err in s["failures"]:
            lines.append(f"| `{key}` | {kind} | {str(err).replace('|', '/')[:300]} |")
    return "\n".join(lines) + "\n"


def run_batches(src: str, dst: str, settings: Settings | Mapping[str, Any] = Settings(), *, run_id: str | None = None, **fields: Any) -> Summary:
    """The whole job without Prefect (plain loop): plan, every batch, finish. ``fields``
    override the settings' (``batch_size=8``)."""
    from .jobs import compress_batch, failed_batch_rows
    from .plan import plan

    settings = Settings.from_dict(settings).replace(**fields) if fields else Settings.from_dict(settings)
    t0 = time.perf_counter()
    p = plan(cached_store(src), cached_store(dst), settings, run_id=run_id)
    rows = list(p.skipped)
    for i, jobs in enumerate(p.batches):
        try:
            rows += compress_batch(src, dst, jobs, p.settings, model_id=p.model_id, run_id=p.run_id, batch_index=i)
        except StorageError as exc:
            rows += failed_batch_rows(jobs, p.settings, p.model_id, p.run_id, exc)
    return finish_run(dst, p.run_id, rows, model_id=p.model_id, setting=p.settings.label, ignored=p.ignored, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- CLI entry


def _prefect_env() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # a fresh PREFECT_HOME migrates its database on first start: on a busy 2-core machine that
    # takes well over Prefect's 20 s default, and the run would die before doing anything
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


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


    print(f"gancodec: error: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    """An error as one line (a message from torch or botocore may span several)."""
    text = str(exc) if isinstance(exc, GancodecError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())



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
    use_prefect: bool = True,
    echo: Callable[[str], None] = print,
    error: Callable[[str], None] = _print_error,
    **fields: Any,
) -> int:
    """Run bulk compression (or, with ``decompress=True``, decompression) of SRC into DST.

    ``settings`` (or its fields as keywords: ``quality=4, batch_size=16``) as for the flow.
    Runs the Prefect flow in ephemeral mode (no server needed; analytics off), or with
    ``use_prefect=False`` the same logic in a plain loop. Returns the exit code: 0 when
    nothing failed, 1 when something failed (details in the manifest), 2 for bad arguments or
    storage that cannot be used. The summary goes to ``echo``; an error goes to ``error`` as
    one line (default: ``gancodec: error: ...`` on stderr), and Prefect's own tracebacks
    about it are held back.
    """
    _prefect_env()
    try:
        base = Settings.from_dict(settings) if settings is not None else Settings()
        settings = base.replace(**fields) if fields else base
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
    with _quiet_prefect_failures():
        return _run_cli_flow(module, src, dst, settings, decompress=decompress, realism=realism, echo=echo, error=error)


def _run_cli_flow(module: Any, src: str, dst: str, settings: Settings, *, decompress: bool, realism: bool,
                  echo: Callable[[str], None], error: Callable[[str], None]) -> int:
    from .decompress import run_decompress_plain as _run_decompress_plain

    title = "gancodec bulk decompress" if decompress else "gancodec bulk compress"
    try:
        if module is None:
            if decompress:
                summary = _run_decompress_plain(src, dst, realism=realism, device=settings.device, batch_size=settings.batch_size)
            else:
                summary = run_batches(src, dst, settings)
            echo(summary_markdown(summary, title))
            return 1 if summary.failed else 0
        if decompress:
            state = module.bulk_decompress(src=src, dst=dst, realism=realism, device=settings.device, batch_size=settings.batch_size,
                                           weights=settings.weights, return_state=True)
        else:
            state = module.bulk_compress(src=src, dst=dst, **settings.to_dict(), return_state=True)
    except (StorageError, ModelError) as exc:
        error(_one_line(exc))
        return 2
    result = state.result(raise_on_failure=False)
    if isinstance(result, dict) and "run_id" in result:
        echo(summary_markdown(result, title))
    elif isinstance(result, BaseException):
        error(_one_line(result))
        return 2 if isinstance(result, (StorageError, ModelError, ValueError)) else 1
    return 0 if state.is_completed() else 1

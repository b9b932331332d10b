"""The Prefect flows of the bulk job: ``bulk-compress`` and ``bulk-decompress``.

Thin on purpose: the logic (planning, OOM back-off, verification, manifests, idempotency)
lives in the rest of :mod:`gancodec.bulk`; this module only maps it onto Prefect tasks. It
is part of the package, so a wheel carries it; ``flows/*.py`` in the repository are shells
that import it (for ``prefect deploy`` and ``python flows/bulk_compress.py``). One task per
batch (coarse, so orchestration costs little), retried only for transient failures (S3
throttling, 5xx, timeouts, dropped connections); a corrupt image is a ``failed`` row, never a
retry. A run ends Failed when any image failed, after writing the manifest and the artifacts.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import (create_link_artifact, create_markdown_artifact, create_progress_artifact,  # noqa: E402
                               create_table_artifact, update_progress_artifact)
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.states import Failed  # noqa: E402
from prefect.utilities.annotations import quote  # noqa: E402

from ..storage import is_transient  # noqa: E402
from . import decompress as _decompress  # noqa: E402
from . import jobs as _jobs  # noqa: E402
from . import ledger as _ledger  # noqa: E402
from . import planner as _plan  # noqa: E402
from . import run as _run  # noqa: E402
from .settings import (ARTIFACT_KEY, BATCH_RETRY_DELAYS, DECOMPRESS_ARTIFACT_KEY, RETRY_JITTER, STEP_RETRY_DELAYS,  # noqa: E402
                       Settings, new_run_id)

#: Tag for a global concurrency limit on GPU batches: ``prefect concurrency-limit create gancodec-gpu 1``.
GPU_TAG = "gancodec-gpu"
_D = Settings()  # the one set of defaults: the flow's parameters default to the Settings' fields
PROGRESS_KEY = "gancodec-bulk-progress"


class _ExpectedFailure(logging.Filter):
    """Prefect's engine (a deployed run: ``python -m prefect.engine`` on a worker) re-raises a
    flow run's Failed state and logs "Engine execution exited with unexpected exception" with
    the traceback. For a run whose images failed that is the expected outcome, already said in
    one line by the state's message, the run log and the artifacts: those records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _run.ImagesFailed)


for _name in ("prefect.flow_runs", "prefect.engine"):
    logging.getLogger(_name).addFilter(_ExpectedFailure())


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry only throttling / 5xx / timeouts / dropped connections."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


# Results stay in memory (persist_result=False): a batch's rows are in its manifest part, and
# Prefect writing every task's result to its result storage would only cost time.
@task(name="plan", cache_policy=NO_CACHE, persist_result=False, retries=len(STEP_RETRY_DELAYS), retry_delay_seconds=list(STEP_RETRY_DELAYS), retry_condition_fn=transient_only)
def plan_task(src: str, dst: str, settings: dict[str, Any], run_id: str | None, resume: bool) -> _plan.Plan:
    return _plan.plan(_jobs.cached_store(src), _jobs.cached_store(dst), settings, run_id=run_id, resume=resume)


@task(
    name="compress-batch",
    task_run_name="compress-batch-{batch_index}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=len(BATCH_RETRY_DELAYS),
    retry_delay_seconds=list(BATCH_RETRY_DELAYS),
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=transient_only,
    tags=[GPU_TAG],
)
def compress_batch_task(src: str, dst: str, jobs: list[dict[str, Any]], settings: dict[str, Any], model_id: str, run_id: str, batch_index: int,
                        spool: str | None = None) -> list[dict[str, Any]]:
    return _jobs.compress_batch(src, dst, jobs, settings, model_id=model_id, run_id=run_id, batch_index=batch_index, spool=spool)


@task(name="finish", cache_policy=NO_CACHE, persist_result=False, retries=len(STEP_RETRY_DELAYS), retry_delay_seconds=list(STEP_RETRY_DELAYS), retry_condition_fn=transient_only)
def finish_task(dst: str, p: _plan.Plan, leftover: list[dict[str, Any]], seconds: float) -> _run.Summary:
    return _run.finish_run(dst, p, leftover, seconds=seconds)


class Progress:
    """Counts, rate and ETA of a run, in the run log and in two artifacts the Prefect UI shows
    while it runs: a progress bar and a markdown table (key ``gancodec-bulk-progress``),
    both updated after every batch."""

    def __init__(self, logger: Any, p: _plan.Plan) -> None:
        self.logger, self.p = logger, p
        self.total = p.pending
        self.done = min(p.pending, len(p.done_batches) * p.settings.batch_size)  # a resumed run's earlier batches
        self.start_done, self.t0 = self.done, time.perf_counter()
        self.ok = self.failed = 0
        self.bar = None
        self.last = 0.0
        try:
            self.bar = create_progress_artifact(progress=self.percent(), key=PROGRESS_KEY,
                                                description=f"run {p.run_id}: images compressed of {self.total}")
        except Exception:  # noqa: BLE001 - progress is a nicety; never fail a run over it
            self.bar = None
        self.publish(force=True)

    def percent(self) -> float:
        return 100.0 if not self.total else round(100.0 * self.done / self.total, 2)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.done += len(rows)
        for r in rows:
            if r["status"] == "ok":
                self.ok += 1
            elif r["status"] == "failed":
                self.failed += 1
                # the reason in the run's own log (the Prefect UI, the API), not only the worker's stdout
                self.logger.warning("%s: failed (%s): %s", r["key"], r["error_kind"], r["error"])
        self.publish()

    def line(self) -> tuple[str, float, float | None]:
        elapsed = time.perf_counter() - self.t0
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else None
        return f"{self.done}/{self.total} images ({self.percent():.1f}%), {self.ok} ok, {self.failed} failed", rate, eta

    def publish(self, force: bool = False, log: bool = True) -> None:
        text, rate, eta = self.line()
        eta_text = "-" if eta is None else f"{eta / 60:.1f} min"
        if log and (self.done or force):
            self.logger.info("run %s: %s, %.2f images/s, ETA %s", self.p.run_id, text, rate, eta_text)
        now = time.perf_counter()
        if not force and now - self.last < 2.0 and self.done < self.total:
            return  # at most one artifact update every 2 s: a fast run is not slowed by the API
        self.last = now
        try:
            if self.bar is not None:
                update_progress_artifact(self.bar, progress=self.percent())
            create_markdown_artifact(
                key=PROGRESS_KEY, description=f"bulk compress run {self.p.run_id}: progress",
                markdown=(f"# Run `{self.p.run_id}`: progress\n\n| done | of | ok | failed | skipped | images/s | ETA |\n"
                          f"|---:|---:|---:|---:|---:|---:|---:|\n| {self.done} | {self.total} | {self.ok} | {self.failed} | "
                          f"{self.p.skipped} | {rate:.2f} | {eta_text} |\n"))
        except Exception:  # noqa: BLE001
            pass


def publish_summary(summary: _run.Summary, src: str, dst: str, title: str, key: str, failures_key: str) -> None:
    """The summary (markdown), a table of the failed keys with their reasons, and a link to the manifest."""
    create_markdown_artifact(key=key, markdown=_run.summary_markdown(summary, title), description=f"{title} {src} -> {dst}")
    if summary.failures:
        rows = [{"key": k, "kind": kind, "reason": err} for k, kind, err in summary.failures]
        more = f" (the first {len(rows)} of {summary.failed}; all in the manifest)" if summary.failed > len(rows) else ""
        create_table_artifact(key=failures_key, table=rows, description=f"{title}: failed keys and why{more}")
    create_link_artifact(key=f"{key}-manifest", link=_link(summary.manifest), link_text=summary.manifest,
                         description=f"{title}: the run manifest (every row, parquet; a .csv beside it)")


def _link(url: str) -> str:
    return url if "://" in url else "file://" + os.path.abspath(url)


def _failed(summary: _run.Summary, what: str) -> Any:
    """The run's final state when some images failed: Failed, carrying the summary in an
    exception (a Failed state's data must be one, or Prefect's engine raises about it)."""
    message = f"{summary.failed} of {summary.ok + summary.failed} {what} failed; reasons in the run log, the failures table and {summary.manifest}"
    return Failed(message=message, data=_run.ImagesFailed(message, summary.to_dict()))


@flow(name="bulk-compress", log_prints=False)
def bulk_compress(
    src: str,
    dst: str,
    quality: float | None = _D.quality,
    bpp: float | None = _D.bpp,
    device: str = _D.device,
    tile_size: int | None = _D.tile_size,
    batch_size: int = _D.batch_size,
    psnr_floor: float = _D.psnr_floor,
    shard: str | None = _D.shard,
    concurrency: int = _D.concurrency,
    weights: str | None = _D.weights,
    run_id: str | None = None,
    refine_steps: int | None = _D.refine_steps,
    recompress_other_models: bool = _D.recompress_other_models,
    resume: bool = False,
    fallback: bool = _D.fallback,
    parallel: int = _D.parallel,
) -> dict[str, Any]:
    """Compress the images under ``src`` (folder or s3://bucket/prefix) into ``dst``.

    ``shard="i/n"`` takes only keys whose stable hash falls in shard i of n (scale-out);
    ``concurrency`` batches run at once in this flow run (1 suits one GPU);
    ``refine_steps`` > 0 searches each tile's latents (smaller files, ~2 decodes' time a step);
    outputs another model made (an earlier release's) are kept unless ``recompress_other_models``;
    ``resume`` continues the newest unfinished run with the same settings (no new listing);
    ``fallback`` (default on) stores an image as WebP when that is clearly better at no more bytes;
    ``parallel`` images of a batch are coded at once (0: auto, Settings.images_at_once).
    """
    t0 = time.perf_counter()
    logger = get_run_logger()
    try:  # bad parameters (a deployment's, a -p ...): one line in the run log, before any listing
        settings = Settings(quality=quality, bpp=bpp, device=device, tile_size=tile_size, psnr_floor=psnr_floor, weights=weights,
                            refine_steps=refine_steps, recompress_other_models=recompress_other_models, batch_size=batch_size,
                            shard=shard, concurrency=concurrency, fallback=fallback, parallel=parallel).resolved()
    except ValueError as exc:
        logger.error("%s", exc)
        return Failed(message=str(exc), data=exc)
    logger.info("codec on %s%s, latent search %s", settings.device, " (device auto)" if device in (None, "auto") else "",
                f"{settings.search_steps} steps" if settings.search_steps else "off")
    p = plan_task(src, dst, settings.to_dict(), run_id, resume)
    settings = p.settings
    logger.info("run %s%s: %d listed, %d to compress in %d batches (%d done before), %d skipped, %d ignored",
                p.run_id, " (resumed)" if p.resumed else "", p.listed, p.pending, p.n_batches, len(p.done_batches), p.skipped, p.ignored)
    progress = Progress(logger, p)
    leftover: list[dict[str, Any]] = []
    window: list[tuple[Any, int, list[dict[str, Any]]]] = []

    def drain(limit: int) -> None:
        while len(window) > limit:
            future, index, jobs = window.pop(0)
            result = future.result(raise_on_failure=False)
            if isinstance(result, BaseException):
                logger.error("batch %d of %d images (first %s) failed after its retries: %s", index, len(jobs), jobs[0]["key"], result)
                rows = _jobs.failed_batch_rows(jobs, settings, p.model_id, p.run_id, result)
                try:  # its rows still go to a part, so a resumed run does not redo it blindly and no memory piles up
                    _jobs.write_part(dst, p.run_id, index, rows, p.scratch)
                except Exception:  # noqa: BLE001 - storage down: the finish step records them
                    leftover.extend(rows)
                result = rows
            progress.add(result)

    for i, jobs in p.iter_batches():
        # quote(): Prefect would otherwise walk every job dict looking for futures to wait on
        args = (src, dst, quote(jobs), settings.to_dict(), p.model_id, p.run_id, i, p.scratch)
        if concurrency <= 1:
            # One batch at a time: run it in this thread, as a task run all the same (retries,
            # tags, state). In a task-runner thread the same batch took ~4% longer here (glibc
            # gives each thread its own malloc arena; benchmarks/bulk_overhead.py).
            window.append((compress_batch_task(*args, return_state=True), i, jobs))
        else:
            window.append((compress_batch_task.submit(*args), i, jobs))
        drain(max(1, concurrency) - 1)
    drain(0)
    summary = finish_task(dst, quote(p), quote(leftover), time.perf_counter() - t0)
    progress.publish(force=True, log=False)
    publish_summary(summary, src, dst, "gancodec bulk compress", ARTIFACT_KEY, ARTIFACT_KEY + "-failures")
    if summary.failed:
        return _failed(summary, "images")
    return summary.to_dict()


@task(name="plan-decompress", cache_policy=NO_CACHE, persist_result=False, retries=len(STEP_RETRY_DELAYS), retry_delay_seconds=list(STEP_RETRY_DELAYS), retry_condition_fn=transient_only)
def plan_decompress_task(src: str, path: str) -> int:
    """List the ``.gcx`` objects under ``src`` into the jobs file ``path``; how many."""
    return _plan.list_decompress(src, path)


@task(name="decompress-batch", task_run_name="decompress-batch-{batch_index}", cache_policy=NO_CACHE, persist_result=False,
      retries=len(BATCH_RETRY_DELAYS), retry_delay_seconds=list(BATCH_RETRY_DELAYS), retry_jitter_factor=RETRY_JITTER, retry_condition_fn=transient_only, tags=[GPU_TAG])
def decompress_batch_task(src: str, dst: str, jobs: list[dict[str, Any]], realism: bool, device: str | None, weights: str | None, run_id: str,
                          batch_index: int, parallel: int = 0) -> list[dict[str, Any]]:
    return _decompress.decompress_batch(src, dst, jobs, realism=realism, device=device, weights=weights, run_id=run_id, parallel=parallel)


@flow(name="bulk-decompress", log_prints=False)
def bulk_decompress(src: str, dst: str, realism: bool = False, device: str = _D.device, batch_size: int = _D.batch_size,
                    weights: str | None = _D.weights, run_id: str | None = None, parallel: int = _D.parallel) -> dict[str, Any]:
    """Decode the ``.gcx`` objects under ``src`` into PNGs under ``dst`` (``a/b.jpg.gcx`` → ``a/b.jpg.png``),
    ``parallel`` images of a batch at once (0: auto)."""
    t0 = time.perf_counter()
    logger = get_run_logger()
    try:
        device = Settings(device=device, parallel=parallel).resolved().device
    except ValueError as exc:
        logger.error("%s", exc)
        return Failed(message=str(exc), data=exc)
    logger.info("decoder on %s", device)
    run_id = run_id or new_run_id()
    rows = _decompress.RowSink(run_id)  # streamed: the jobs and the rows are files on the scratch folder
    jobs_path = rows.scratch / "jobs.parquet"
    plan_decompress_task(src, str(jobs_path))
    for i, jobs in _ledger.iter_batches(jobs_path, batch_size):
        state = decompress_batch_task(src, dst, quote(jobs), realism, device, weights, run_id, i, parallel, return_state=True)
        result = state.result(raise_on_failure=False)
        rows.add(_jobs.failed_batch_rows(jobs, {}, "", run_id, result) if isinstance(result, BaseException) else result)
    summary = _decompress.finish_decompress(dst, run_id, rows, seconds=time.perf_counter() - t0)
    for key, kind, err in summary.failures:
        logger.warning("%s: failed (%s): %s", key, kind, err)
    publish_summary(summary, src, dst, "gancodec bulk decompress", DECOMPRESS_ARTIFACT_KEY, DECOMPRESS_ARTIFACT_KEY + "-failures")
    if summary.failed:
        return _failed(summary, "files")
    return summary.to_dict()

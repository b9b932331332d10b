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

import os
import time
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.states import Failed  # noqa: E402
from prefect.utilities.annotations import quote  # noqa: E402

from ..storage import is_transient  # noqa: E402
from . import decompress as _decompress  # noqa: E402
from . import jobs as _jobs  # noqa: E402
from . import plan as _plan  # noqa: E402
from . import run as _run  # noqa: E402
from .settings import ARTIFACT_KEY, DECOMPRESS_ARTIFACT_KEY, Settings, new_run_id  # noqa: E402

#: Tag for a global concurrency limit on GPU batches: ``prefect concurrency-limit create gancodec-gpu 1``.
GPU_TAG = "gancodec-gpu"
_D = Settings()  # the one set of defaults: the flow's parameters default to the Settings' fields


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry only throttling / 5xx / timeouts / dropped connections."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


# Results stay in memory (persist_result=False): a batch's rows go straight into the run
# manifest, and Prefect writing every task's result to its result storage would only cost time.
@task(name="plan", cache_policy=NO_CACHE, persist_result=False, retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=transient_only)
def plan_task(src: str, dst: str, settings: dict[str, Any], run_id: str) -> _plan.Plan:
    return _plan.plan(_jobs.cached_store(src), _jobs.cached_store(dst), settings, run_id=run_id)


@task(
    name="compress-batch",
    task_run_name="compress-batch-{batch_index}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=4,
    retry_delay_seconds=[2, 10, 30, 60],
    retry_jitter_factor=0.5,
    retry_condition_fn=transient_only,
    tags=[GPU_TAG],
)
def compress_batch_task(src: str, dst: str, jobs: list[dict[str, Any]], settings: dict[str, Any], model_id: str, run_id: str, batch_index: int) -> list[dict[str, Any]]:
    return _jobs.compress_batch(src, dst, jobs, settings, model_id=model_id, run_id=run_id, batch_index=batch_index)


@task(name="finish", cache_policy=NO_CACHE, persist_result=False, retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=transient_only)
def finish_task(dst: str, run_id: str, rows: list[dict[str, Any]], model_id: str, setting: str, ignored: int, seconds: float) -> _run.Summary:
    return _run.finish_run(dst, run_id, rows, model_id=model_id, setting=setting, ignored=ignored, seconds=seconds)


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
    refine_steps: int = _D.refine_steps,
    recompress_other_models: bool = _D.recompress_other_models,
) -> dict[str, Any]:
    """Compress the images under ``src`` (folder or s3://bucket/prefix) into ``dst``.

    ``shard="i/n"`` takes only keys whose stable hash falls in shard i of n (scale-out);
    ``concurrency`` batches run at once in this flow run (1 suits one GPU);
    ``refine_steps`` > 0 searches each tile's latents (smaller files, ~2 decodes' time a step);
    outputs another model made (an earlier release's) are kept unless ``recompress_other_models``.
    """
    t0 = time.perf_counter()
    logger = get_run_logger()
    settings = Settings(quality=quality, bpp=bpp, device=device, tile_size=tile_size, psnr_floor=psnr_floor, weights=weights,
                        refine_steps=refine_steps, recompress_other_models=recompress_other_models, batch_size=batch_size,
                        shard=shard, concurrency=concurrency)
    run_id = run_id or new_run_id()
    p = plan_task(src, dst, settings.to_dict(), run_id)
    logger.info("run %s: %d listed, %d to compress in %d batches, %d skipped, %d ignored",
                run_id, p.listed, p.pending, len(p.batches), len(p.skipped), p.ignored)
    rows: list[dict[str, Any]] = list(p.skipped)
    window: list[tuple[Any, list[dict[str, Any]]]] = []

    def drain(limit: int) -> None:
        while len(window) > limit:
            future, jobs = window.pop(0)
            result = future.result(raise_on_failure=False)
            if isinstance(result, BaseException):
                logger.error("batch of %d (first %s) failed after its retries: %s", len(jobs), jobs[0]["key"], result)
                rows.extend(_jobs.failed_batch_rows(jobs, settings, p.model_id, run_id, result))
            else:
                rows.extend(result)

    for i, jobs in enumerate(p.batches):
        # quote(): Prefect would otherwise walk every job dict looking for futures to wait on
        args = (src, dst, quote(jobs), settings.to_dict(), p.model_id, run_id, i)
        if concurrency <= 1:
            # One batch at a time: run it in this thread, as a task run all the same (retries,
            # tags, state). In a task-runner thread the same batch took ~4% longer here (glibc
            # gives each thread its own malloc arena; benchmarks/bulk_overhead.py).
            window.append((compress_batch_task(*args, return_state=True), jobs))
        else:
            window.append((compress_batch_task.submit(*args), jobs))
        drain(max(1, concurrency) - 1)
    drain(0)
    summary = finish_task(dst, run_id, quote(rows), p.model_id, settings.label, p.ignored, time.perf_counter() - t0)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=_run.summary_markdown(summary), description=f"bulk compress {src} -> {dst}")
    result = summary.to_dict()
    if summary.failed:
        return Failed(message=f"{summary.failed} of {summary.ok + summary.failed} images failed; see {summary.manifest}", data=result)
    return result


@task(name="plan-decompress", cache_policy=NO_CACHE, persist_result=False, retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=transient_only)
def plan_decompress_task(src: str, batch_size: int) -> list[list[dict[str, Any]]]:
    return _plan.plan_decompress(src, batch_size=batch_size)


@task(name="decompress-batch", task_run_name="decompress-batch-{batch_index}", cache_policy=NO_CACHE, persist_result=False, retries=4,
      retry_delay_seconds=[2, 10, 30, 60], retry_jitter_factor=0.5, retry_condition_fn=transient_only, tags=[GPU_TAG])
def decompress_batch_task(src: str, dst: str, jobs: list[dict[str, Any]], realism: bool, device: str | None, weights: str | None, run_id: str, batch_index: int) -> list[dict[str, Any]]:
    return _decompress.decompress_batch(src, dst, jobs, realism=realism, device=device, weights=weights, run_id=run_id)


@flow(name="bulk-decompress", log_prints=False)
def bulk_decompress(src: str, dst: str, realism: bool = False, device: str = _D.device, batch_size: int = _D.batch_size,
                    weights: str | None = _D.weights, run_id: str | None = None) -> dict[str, Any]:
    """Decode the ``.gcx`` objects under ``src`` into PNGs under ``dst`` (``a/b.jpg.gcx`` → ``a/b.jpg.png``)."""
    t0 = time.perf_counter()
    run_id = run_id or new_run_id()
    rows: list[dict[str, Any]] = []
    for i, jobs in enumerate(plan_decompress_task(src, batch_size)):
        state = decompress_batch_task(src, dst, quote(jobs), realism, device, weights, run_id, i, return_state=True)
        result = state.result(raise_on_failure=False)
        rows.extend(_jobs.failed_batch_rows(jobs, {}, "", run_id, result) if isinstance(result, BaseException) else result)
    summary = _decompress.finish_decompress(dst, run_id, rows, seconds=time.perf_counter() - t0)
    create_markdown_artifact(key=DECOMPRESS_ARTIFACT_KEY, markdown=_run.summary_markdown(summary, "gancodec bulk decompress"),
                             description=f"bulk decompress {src} -> {dst}")
    result = summary.to_dict()
    if summary.failed:
        return Failed(message=f"{summary.failed} of {summary.ok + summary.failed} files failed; see {summary.manifest}", data=result)
    return result

"""Prefect flow: compress every new image under SRC into ``<key>.gcx`` under DST.

Thin on purpose: the logic (planning, OOM back-off, verification, manifests, idempotency)
lives in :mod:`gancodec.bulk`; this file only maps it onto Prefect tasks. One task per batch
(coarse, so orchestration costs little), retried only for transient failures (S3 throttling,
5xx, timeouts, dropped connections); a corrupt image is a ``failed`` row, never a retry. The
flow run ends Failed when any image failed, after writing the manifest and the artifact.

Run it locally (ephemeral Prefect, no server)::

    python flows/bulk_compress.py s3://in-bucket/photos s3://out-bucket/gcx --quality 4

or through ``gancodec bulk SRC DST``; deploy it with ``prefect deploy`` (see prefect.yaml and
docs/bulk.md).
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

from gancodec import bulk  # noqa: E402
from gancodec.storage import is_transient  # noqa: E402

#: Tag for a global concurrency limit on GPU batches: ``prefect concurrency-limit create gancodec-gpu 1``.
GPU_TAG = "gancodec-gpu"


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry only throttling / 5xx / timeouts / dropped connections."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


# Results stay in memory (persist_result=False): a batch's rows go straight into the run
# manifest, and Prefect writing every task's result to its result storage would only cost time.
@task(name="plan", cache_policy=NO_CACHE, persist_result=False, retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=transient_only)
def plan_task(src: str, dst: str, settings: dict[str, Any], batch_size: int, shard: str | None, run_id: str) -> bulk.Plan:
    return bulk.plan(bulk.cached_store(src), bulk.cached_store(dst), settings, run_id=run_id, batch_size=batch_size, shard=shard)


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
    return bulk.compress_batch(src, dst, jobs, settings, model_id=model_id, run_id=run_id, batch_index=batch_index)


@task(name="finish", cache_policy=NO_CACHE, persist_result=False, retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=transient_only)
def finish_task(dst: str, run_id: str, rows: list[dict[str, Any]], model_id: str, setting: str, ignored: int, seconds: float) -> bulk.Summary:
    return bulk.finish_run(dst, run_id, rows, model_id=model_id, setting=setting, ignored=ignored, seconds=seconds)


@flow(name="bulk-compress", log_prints=False)
def bulk_compress(
    src: str,
    dst: str,
    quality: float | None = None,
    bpp: float | None = None,
    device: str | None = None,
    tile_size: int | None = None,
    batch_size: int = bulk.DEFAULT_BATCH_SIZE,
    psnr_floor: float = bulk.DEFAULT_PSNR_FLOOR,
    shard: str | None = None,
    concurrency: int = 1,
    weights: str | None = None,
    run_id: str | None = None,
    refine_steps: int = 0,
    recompress_other_models: bool = False,
) -> dict[str, Any]:
    """Compress the images under ``src`` (folder or s3://bucket/prefix) into ``dst``.

    ``shard="i/n"`` takes only keys whose stable hash falls in shard i of n (scale-out);
    ``concurrency`` batches run at once in this flow run (1 suits one GPU);
    ``refine_steps`` > 0 searches each tile's latents (smaller files, ~2 decodes' time a step);
    outputs another model made (an earlier release's) are kept unless ``recompress_other_models``.
    """
    t0 = time.perf_counter()
    logger = get_run_logger()
    settings = bulk.Settings(quality=quality, bpp=bpp, device=device, tile_size=tile_size, psnr_floor=psnr_floor, weights=weights,
                             refine_steps=refine_steps, recompress_other_models=recompress_other_models)
    run_id = run_id or bulk.new_run_id()
    p = plan_task(src, dst, settings.to_dict(), batch_size, shard, run_id)
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
                rows.extend(bulk.failed_batch_rows(jobs, settings, p.model_id, run_id, result))
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
    create_markdown_artifact(key=bulk.ARTIFACT_KEY, markdown=bulk.summary_markdown(summary), description=f"bulk compress {src} -> {dst}")
    result = summary.to_dict()
    if summary.failed:
        return Failed(message=f"{summary.failed} of {summary.ok + summary.failed} images failed; see {summary.manifest}", data=result)
    return result


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    rate = ap.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=float)
    rate.add_argument("--bpp", type=float)
    ap.add_argument("--device")
    ap.add_argument("--batch-size", type=int, default=bulk.DEFAULT_BATCH_SIZE)
    ap.add_argument("--shard")
    ap.add_argument("--psnr-floor", type=float, default=bulk.DEFAULT_PSNR_FLOOR)
    ap.add_argument("--refine", type=int, default=0, metavar="STEPS", help="encoder-side latent search steps per tile")
    ap.add_argument("--recompress-other-models", action="store_true",
                    help="redo outputs made by other weights (an earlier release's); default: keep them")
    ap.add_argument("--no-prefect", action="store_true", help="run the same logic in a plain loop")
    a = ap.parse_args()
    sys.exit(bulk.run_cli(a.src, a.dst, a.quality, a.bpp, device=a.device, batch_size=a.batch_size, shard=a.shard, psnr_floor=a.psnr_floor,
                          refine_steps=a.refine, recompress_other_models=a.recompress_other_models, use_prefect=not a.no_prefect))

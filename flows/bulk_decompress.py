"""Prefect flow: decode every ``.gcx`` under SRC into a PNG under DST (``a/b.jpg.gcx`` → ``a/b.jpg.png``).

The inverse of ``bulk_compress``; logic in :mod:`gancodec.bulk`, one task per batch, retries
only for transient storage failures. A PNG already written for the same source ETag is
skipped; a malformed ``.gcx`` is a ``failed`` row and the flow run ends Failed.
"""

from __future__ import annotations

import os
import time
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.states import Failed  # noqa: E402
from prefect.utilities.annotations import quote  # noqa: E402

from gancodec import bulk  # noqa: E402
from gancodec.storage import is_transient  # noqa: E402


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry only throttling / 5xx / timeouts / dropped connections."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


@task(name="plan-decompress", cache_policy=NO_CACHE, persist_result=False, retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=transient_only)
def plan_task(src: str, batch_size: int) -> list[list[dict[str, Any]]]:
    return bulk.plan_decompress(src, batch_size=batch_size)


@task(name="decompress-batch", task_run_name="decompress-batch-{batch_index}", cache_policy=NO_CACHE, persist_result=False, retries=4,
      retry_delay_seconds=[2, 10, 30, 60], retry_jitter_factor=0.5, retry_condition_fn=transient_only, tags=["gancodec-gpu"])
def decompress_batch_task(src: str, dst: str, jobs: list[dict[str, Any]], realism: bool, device: str | None, weights: str | None, run_id: str, batch_index: int) -> list[dict[str, Any]]:
    return bulk.decompress_batch(src, dst, jobs, realism=realism, device=device, weights=weights, run_id=run_id)


@flow(name="bulk-decompress")
def bulk_decompress(src: str, dst: str, realism: bool = False, device: str | None = None, batch_size: int = bulk.DEFAULT_BATCH_SIZE,
                    weights: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Decode the ``.gcx`` objects under ``src`` into PNGs under ``dst``."""
    t0 = time.perf_counter()
    run_id = run_id or bulk.new_run_id()
    rows: list[dict[str, Any]] = []
    for i, jobs in enumerate(plan_task(src, batch_size)):
        state = decompress_batch_task(src, dst, quote(jobs), realism, device, weights, run_id, i, return_state=True)
        result = state.result(raise_on_failure=False)
        rows.extend(bulk.failed_batch_rows(jobs, {}, "", run_id, result) if isinstance(result, BaseException) else result)
    summary = bulk.finish_decompress(dst, run_id, rows, seconds=time.perf_counter() - t0)
    create_markdown_artifact(key=bulk.DECOMPRESS_ARTIFACT_KEY, markdown=bulk.summary_markdown(summary, "gancodec bulk decompress"),
                             description=f"bulk decompress {src} -> {dst}")
    result = summary.to_dict()
    if summary.failed:
        return Failed(message=f"{summary.failed} of {summary.ok + summary.failed} files failed; see {summary.manifest}", data=result)
    return result


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--realism", action="store_true")
    ap.add_argument("--device")
    ap.add_argument("--batch-size", type=int, default=bulk.DEFAULT_BATCH_SIZE)
    a = ap.parse_args()
    sys.exit(bulk.run_cli(a.src, a.dst, device=a.device, batch_size=a.batch_size, decompress=True, realism=a.realism))

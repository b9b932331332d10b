"""Bulk compression of an object store (local folder or ``s3://bucket/prefix``), nothing lost.

The logic lives in plain functions a test can call, split by concern:

* :mod:`.settings` — the one ``Settings`` object (CLI, flow and prefect.yaml), key naming, shards;
* :mod:`.manifest` — the manifest's schema and one batch's rows as parquet/CSV;
* :mod:`.ledger` — constant-memory bookkeeping: listing, plan and manifests as files, joined by DuckDB;
* :mod:`.planner` — list SRC, skip what is done, batch the rest;
* :mod:`.jobs` — one image (read, compress, verify, write ``<key>.gcx``) and one batch;
* :mod:`.run` — finish a run, the plain loop, ``run_cli`` behind ``gancodec bulk``;
* :mod:`.decompress` — ``.gcx`` back to PNG;
* :mod:`.flows` — the Prefect flows (the only module that imports Prefect);
* :mod:`.cli` — the ``bulk`` and ``bulk-decompress`` commands.

Layout under DST (docs/bulk.md)::

    <key>.gcx                               one output per source image, S3 metadata names its source
    _gancodec/parts/<run>/<batch>.parquet   rows of one batch, written right after the batch
    _gancodec/manifest-<run>.parquet|.csv   every row of one run (ok / failed / skipped)
    _gancodec/manifest.parquet|.csv         merged view: the latest row per source key

Names are loaded on first use (``gancodec.bulk.plan`` ...), so importing the package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "settings": (
        "Settings", "model_id_for", "new_run_id", "now", "is_image_key", "output_key_for", "png_key_for", "shard_of", "parse_shard",
        "IMAGE_EXTENSIONS", "OUTPUT_SUFFIX", "CONTROL_PREFIX", "PARTS_PREFIX", "MERGED_MANIFEST", "DEFAULT_BATCH_SIZE",
        "DEFAULT_PSNR_FLOOR", "GPU_REFINE_STEPS", "resolve_device", "DEVICES_HELP", "PERMANENT_KINDS", "MODEL_FREE_KINDS", "ARTIFACT_KEY", "DECOMPRESS_ARTIFACT_KEY",
    ),
    "manifest": ("MANIFEST_COLUMNS", "make_row", "rows_to_frame", "frame_to_rows", "parquet_bytes", "csv_bytes", "read_parquet_rows",
                 "load_state"),
    "planner": ("Plan", "plan", "plan_decompress", "list_decompress", "find_resumable", "load_plan", "fetch_state"),
    "jobs": ("decode_source", "psnr", "encode", "verify_output", "compress_one", "cached_store", "part_key",
             "compress_batch", "write_part", "failed_batch_rows"),
    "run": ("Summary", "ImagesFailed", "MAX_FAILURES", "finish_run", "summary_markdown", "run_batches", "check_access", "run_cli",
            "load_flows"),
    "decompress": ("RowSink", "decompress_one", "decompress_batch", "finish_decompress", "run_decompress_plain", "_run_decompress_plain"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gancodec.bulk' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

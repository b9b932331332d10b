"""finish_run's memory against the number of manifest parts, with DuckDB's share held small.

    python benchmarks/bulk_parts.py 30000      # parts (64 rows each: 1.92 M rows)

A local destination gets P hard links to one 64-row manifest part (64 keys, so DuckDB's work
stays tiny whatever P is; cheap to make), under ``_gancodec/parts/run1/``. Then ``finish_run``
of run1 (its own P parts: the run manifest and a new merged view), then of run2 (no parts of its
own: the merged view holds the 64 keys' latest rows, so P - 1 of run1's parts are not in it and
are merged again as another run's). Printed: each run's resident memory before -> after and its
peak, and each bookkeeping call's (see bulk_calls.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from bulk_calls import _peak, _sample, rss_mib, traced

from gancodec.bulk import ledger, manifest, planner, run, settings
from gancodec.storage import LocalStore


def main() -> None:
    n_parts = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    threading.Thread(target=_sample, daemon=True).start()
    base = lambda i: lambda *a, **k: os.path.basename(str(a[i]))  # noqa: E731
    for module, name, label in [(planner, "fetch_state", None), (ledger, "consolidate", base(1)), (ledger, "latest_view", base(2)),
                                (run, "write_manifest", base(3))]:
        traced(module, name, label)
    root = Path(tempfile.mkdtemp(prefix="gancodec-bulk-parts-"))
    try:
        (root / "dst").mkdir()
        dst = LocalStore(root / "dst")
        rows = [manifest.make_row(run_id="run1", key=f"k/{i:05d}.jpg", source_etag="e", model_id="0" * 32, setting="q4", status="ok",
                                  output_key=f"k/{i:05d}.jpg.gcx", sha256="0" * 64, bytes_in=1, bytes_out=1, width=1, height=1, channels=3,
                                  bpp=1.0, psnr=30.0, attempts=1, seconds=0.1, finished_at=settings.now()) for i in range(64)]
        one = root / "one.parquet"
        one.write_bytes(manifest.parquet_bytes(rows))  # part "": filled in from each link's key
        folder = root / "dst" / "_gancodec" / "parts" / "run1"
        folder.mkdir(parents=True)
        for i in range(n_parts):
            os.link(one, folder / f"batch-{i:06d}.parquet")
        cfg = settings.Settings(quality=4, device="cpu")
        print(f"{n_parts:,} parts; resident after setup {rss_mib():.0f} MiB", flush=True)
        for run_id in ("run1", "run2"):
            p = planner.Plan(run_id=run_id, model_id="0" * 32, settings=cfg, scratch=str(ledger.new_scratch(run_id)))
            before = rss_mib()
            _peak[0], t0 = before, time.process_time()
            summary = run.finish_run(dst, p)
            print(f"finish_run {run_id}: resident {before:.0f} -> {rss_mib():.0f} MiB, peak {_peak[0]:.0f} MiB, "
                  f"CPU {time.process_time() - t0:.1f} s ({summary.ok:,} ok rows)", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

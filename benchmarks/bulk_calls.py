"""bulk_scale.py with the resident memory of each bookkeeping call: where each step's peak is reached.

    python benchmarks/bulk_calls.py --objects 1000000      # the arguments are bulk_scale.py's

Each call of ``plan``, ``finish_run``, ``fetch_state``, ``consolidate``, ``plan_files``,
``latest_view``, ``write_manifest`` and ``copy_out`` prints a line (nested calls indented, before
the caller's): resident memory before -> after, the peak during it (sampled every 10 ms from
/proc/self/statm, Linux only), its CPU seconds and pyarrow's allocated bytes after it.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa

from gancodec.bulk import ledger, planner, run

PAGE = os.sysconf("SC_PAGE_SIZE")
_peak = [0.0]
_depth = [0]


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def _sample() -> None:
    while True:
        _peak[0] = max(_peak[0], rss_mib())
        time.sleep(0.01)


def traced(module, name: str, label=None) -> None:
    fn = getattr(module, name)

    def call(*a, **k):
        before, outer = rss_mib(), _peak[0]
        _peak[0], t0 = before, time.process_time()
        tag = name + (": " + label(*a, **k) if label else "")
        _depth[0] += 1
        try:
            return fn(*a, **k)
        finally:
            _depth[0] -= 1
            peak = _peak[0]
            print(f"{'  ' * _depth[0]}[{tag}] rss {before:.0f} -> {rss_mib():.0f} MiB, peak {peak:.0f}, "
                  f"cpu {time.process_time() - t0:.1f} s, arrow {pa.total_allocated_bytes() / 2**20:.1f} MiB", flush=True)
            _peak[0] = max(outer, peak)

    setattr(module, name, call)


def main() -> None:
    threading.Thread(target=_sample, daemon=True).start()
    base = lambda i: lambda *a, **k: os.path.basename(str(a[i]))  # noqa: E731 - a call's file argument
    for module, name, label in [(planner, "plan", None), (run, "finish_run", None), (planner, "fetch_state", None),
                                (ledger, "consolidate", base(1)), (ledger, "plan_files", None), (ledger, "latest_view", base(2)),
                                (run, "write_manifest", base(3)), (ledger, "copy_out", base(2))]:
        traced(module, name, label)
    sys.argv = ["bulk_scale.py", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("bulk_scale.py")), run_name="__main__")


if __name__ == "__main__":
    main()

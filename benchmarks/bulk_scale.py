"""Memory and time of the bulk job's bookkeeping at bucket scale (no images are coded).

    /usr/bin/time -v python benchmarks/bulk_scale.py --objects 1000000    # peak RSS: "Maximum resident set size"

A listing of N synthetic image keys (generated as it is read: the cost measured is ours, not a
listing's) goes through the three steps whose work grows with the bucket, on a real local
destination folder (the manifests are real files):

* ``plan`` of a fresh run: every key becomes a job (``jobs.parquet``);
* ``finish_run`` after every batch wrote its manifest part (one ``ok`` row per key, parts of
  64 rows written here as ``compress_batch`` writes them): the run manifest and the merged
  view (parquet + CSV);
* ``plan`` of the next run over the same, unchanged bucket: the merged manifest is joined
  against the listing and every key is skipped.

Printed per step: wall and CPU seconds, both per million objects, this process's peak
resident memory so far (``ru_maxrss``; the number to quote is /usr/bin/time's, which also sees
the start-up), and the step's own peak (resident memory sampled every 10 ms: a step below an
earlier step's peak does not show in ``ru_maxrss``). Run it for 100,000 and 1,000,000 objects: time per million should stay the same
(linear in N) and the peak should not grow with N.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

from gancodec.bulk import jobs, manifest, planner, run, settings
from gancodec.storage import LocalStore, ObjectInfo, Store


class SyntheticSource(Store):
    """N image keys listed in S3 order, made up as they are listed (nothing held)."""

    def __init__(self, n: int) -> None:
        self.n, self.url = n, "synthetic://src"

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for i in range(self.n):
            yield ObjectInfo(key=key_of(i), size=300_000, etag=f"{i:032x}")

    def get(self, key: str) -> bytes:  # pragma: no cover - no image is coded
        raise NotImplementedError

    def put(self, key, data, *, metadata=None, content_type=None):  # pragma: no cover
        raise NotImplementedError

    def head(self, key: str):  # pragma: no cover
        return None

    def delete(self, key: str) -> None:  # pragma: no cover
        pass

    def probe(self, *, write: bool = False) -> None:
        pass


class Destination(LocalStore):
    """A real folder for the manifests, whose listing also shows the N outputs (20 kB each)
    without making N files."""

    def __init__(self, root: Path, n: int) -> None:
        super().__init__(root)
        self.n, self.outputs = n, False

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        yield from super().list(prefix)
        if not prefix and self.outputs:
            for i in range(self.n):
                yield ObjectInfo(key=settings.output_key_for(key_of(i)), size=20_000, etag="x")


def key_of(i: int) -> str:
    return f"photos/{i // 1000:05d}/{i:09d}.jpg"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StepPeak:
    """The highest resident memory seen since :meth:`reset`, read from /proc/self/statm every
    10 ms by a daemon thread (Linux; elsewhere nothing is sampled)."""

    def __init__(self) -> None:
        self.page, self.peak = os.sysconf("SC_PAGE_SIZE"), 0.0
        self.ok = Path("/proc/self/statm").exists()
        if self.ok:
            threading.Thread(target=self._sample, daemon=True, name="rss-sampler").start()

    def rss_mib(self) -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page / 2**20

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.rss_mib())
            time.sleep(0.01)

    def reset(self) -> None:
        self.peak = self.rss_mib() if self.ok else 0.0

    def read(self) -> str:
        return f"{max(self.peak, self.rss_mib()):,.0f} MiB" if self.ok else "-"


STEP_PEAK = StepPeak()


def step(label: str, n: int, fn):
    STEP_PEAK.reset()
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    scale = 1_000_000 / n
    print(f"| {label} | {n:,} | {wall:.1f} s | {cpu:.1f} s | {wall * scale / 60:.2f} min | {peak_mib():,.0f} MiB | {STEP_PEAK.read()} |",
          flush=True)
    return result


def write_parts(dst: Store, p: planner.Plan) -> None:
    """One ok row per job, as the batches would have written them (64 rows a part)."""
    now = settings.now()
    for index, batch in p.iter_batches():
        rows = [manifest.make_row(run_id=p.run_id, key=j["key"], source_etag=j["etag"], model_id=p.model_id, setting=p.settings.label,
                                  status="ok", output_key=settings.output_key_for(j["key"]), sha256="0" * 64, bytes_in=300_000,
                                  bytes_out=20_000, width=768, height=512, channels=3, bpp=0.41, psnr=30.2, attempts=1, seconds=0.5,
                                  finished_at=now)
                for j in batch]
        jobs.write_part(dst, p.run_id, index, rows, p.scratch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--keep", action="store_true", help="keep the destination folder (printed)")
    a = ap.parse_args()
    n = a.objects
    folder = Path(tempfile.mkdtemp(prefix="gancodec-bulk-scale-"))
    src, dst = SyntheticSource(n), Destination(folder / "dst", n)
    cfg = settings.Settings(quality=4, device="cpu")
    model_id = "0" * 32
    print(f"peak RSS after imports: {peak_mib():,.0f} MiB")
    print("| step | objects | wall | CPU | wall per 1M objects | peak RSS so far | the step's own peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    try:
        first = step("plan, fresh bucket", n, lambda: planner.plan(src, dst, cfg, run_id="run1", model_id=model_id))
        assert first.pending == n, first.pending
        step("batches' manifest parts (64 rows each)", n, lambda: write_parts(dst, first))
        dst.outputs = True
        summary = step("finish_run: run manifest + merged view", n, lambda: run.finish_run(dst, first))
        assert summary.ok == n, summary
        second = step("plan, same bucket again (all skipped)", n, lambda: planner.plan(src, dst, cfg, run_id="run2", model_id=model_id))
        assert second.pending == 0 and second.skipped == n, (second.pending, second.skipped)
        step("finish_run of the no-op run", n, lambda: run.finish_run(dst, second))
        sizes = {p.name: p.stat().st_size for p in (folder / "dst" / "_gancodec").glob("manifest*")}
        print("manifest files: " + ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in sorted(sizes.items())))
    finally:
        if a.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

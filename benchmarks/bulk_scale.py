"""Memory and time of the bulk job's bookkeeping at bucket scale (no images are coded).

    python benchmarks/bulk_scale.py [--objects 100000]

A listing of N synthetic image keys (an in-memory store: the cost measured is ours, not the
network's) goes through the three steps whose memory grows with the bucket:

* ``plan`` of a fresh run: every key becomes a job;
* ``finish_run`` with one ``ok`` row per key (and the batches' manifest parts in place): the
  run manifest and the merged view written (parquet + CSV);
* ``plan`` of the next run over the same, unchanged bucket: the merged manifest is read back
  and every key is skipped.

Printed per step: Python heap peak (tracemalloc) and CPU seconds, and both scaled to a million
objects, so an operator can size a worker (or pick ``shard="i/n"``: each shard's run holds
only its share). Ratios are not meaningful here; absolute numbers are, and they are noisy.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from typing import Iterator, Mapping

from gancodec import bulk
from gancodec.storage import ObjectInfo, Store


class MemoryStore(Store):
    """A dict as an object store (enough of the Store API for planning and manifests)."""

    def __init__(self, url: str, objects: dict[str, bytes] | None = None, listing: list[ObjectInfo] | None = None) -> None:
        self.url, self.objects, self.listing = url, objects or {}, listing

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if self.listing is not None:
            yield from self.listing
            return
        for key, data in sorted(self.objects.items()):
            if key.startswith(prefix):
                yield ObjectInfo(key=key, size=len(data), etag=str(len(data)))

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def put(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None, content_type: str | None = None) -> ObjectInfo:
        self.objects[key] = data
        return ObjectInfo(key=key, size=len(data), etag=str(len(data)))

    def head(self, key: str) -> ObjectInfo | None:
        return ObjectInfo(key=key, size=len(self.objects[key])) if key in self.objects else None

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def probe(self, *, write: bool = False) -> None:
        pass


class OutputsStore(MemoryStore):
    """The destination: manifests held for real; the N outputs only listed (20 kB each)."""

    def __init__(self, url: str, outputs: list[str]) -> None:
        super().__init__(url)
        self.outputs = outputs

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        yield from super().list(prefix)
        if not prefix:
            for key in self.outputs:
                yield ObjectInfo(key=key, size=20_000, etag="x")


def measure(label: str, n: int, fn):
    """Run ``fn`` twice: timed (CPU seconds of this process, so a busy machine does not inflate
    them), then under tracemalloc for the heap peak (tracing slows it, so it is not timed)."""
    t0 = time.process_time()
    fn()
    seconds = time.process_time() - t0
    tracemalloc.start()
    result = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    scale = 1_000_000 / n
    print(f"| {label} | {n:,} | {peak / 2**20:,.0f} MiB | {seconds:.1f} s | {peak * scale / 2**30:.1f} GiB | {seconds * scale / 60:.1f} min |")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    n = ap.parse_args().objects
    keys = [f"photos/{i // 1000:04d}/{i:09d}.jpg" for i in range(n)]
    src = MemoryStore("mem://src", listing=[ObjectInfo(key=k, size=300_000, etag=f"{i:032x}") for i, k in enumerate(keys)])
    dst = OutputsStore("mem://dst", outputs=[bulk.output_key_for(k) for k in keys])
    settings = bulk.Settings(quality=4)
    model_id = "0" * 32

    print("| step | objects | heap peak | CPU time | heap per 1M objects | CPU time per 1M objects |")
    print("|---|---:|---:|---:|---:|---:|")
    first = measure("plan, fresh bucket", n, lambda: bulk.plan(src, dst, settings, run_id="run1", model_id=model_id))
    rows = [
        bulk.make_row(run_id="run1", key=job["key"], source_etag=job["etag"], model_id=model_id, setting=settings.label,
                      status="ok", output_key=bulk.output_key_for(job["key"]), sha256="0" * 64, bytes_in=300_000,
                      bytes_out=20_000, width=768, height=512, channels=3, bpp=0.41, psnr=30.2, finished_at=bulk._now(),
                      part=bulk.part_key("run1", i // 64))
        for i, job in enumerate(j for batch in first.batches for j in batch)
    ]
    del first
    for start in range(0, n, 64):  # the batches' manifest parts, as compress_batch writes them
        dst.put(bulk.part_key("run1", start // 64), bulk.parquet_bytes(rows[start:start + 64]))
    measure("finish_run, one ok row per key", n, lambda: bulk.finish_run(dst, "run1", rows, model_id=model_id, setting=settings.label))
    del rows
    second = measure("plan, same bucket again (all skipped)", n, lambda: bulk.plan(src, dst, settings, run_id="run2", model_id=model_id))
    assert second.pending == 0 and len(second.skipped) == n, (second.pending, len(second.skipped))


if __name__ == "__main__":
    main()

"""The same codec work in the main thread and in a worker thread, as a ratio.

    python benchmarks/thread_penalty.py [--images ../shared/datasets/kodak] [--limit 8] [--rounds 3]
    MALLOC_ARENA_MAX=1 python benchmarks/thread_penalty.py      # one malloc arena for all threads

Why the bulk flow runs its batches in the flow's own thread when ``concurrency=1``: on the
development machine the worker thread took 3-7% longer (glibc gives each thread its own malloc
arena), and the gap vanished with ``MALLOC_ARENA_MAX=1`` (docs/bulk.md). 1 torch thread, as a
bulk worker runs; compress + decompress of each image, rounds alternated.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import gancodec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    images = [np.asarray(Image.open(q).convert("RGB")) for q in sorted(Path(a.images).glob("*.png"))[: a.limit]]
    if not images:
        raise SystemExit(f"no PNG images in {a.images}")

    def work() -> float:
        torch.set_num_threads(1)  # per thread (OpenMP), so set it in each
        t0 = time.perf_counter()
        for x in images:
            gancodec.decompress(gancodec.compress(x))
        return time.perf_counter() - t0

    pool = ThreadPoolExecutor(1)
    work(), pool.submit(work).result()  # warm both threads
    ratios = []
    for r in range(a.rounds):
        main_s = work()
        thread_s = pool.submit(work).result()
        ratios.append(thread_s / main_s)
        print(f"round {r}: main thread {main_s:.2f} s, worker thread {thread_s:.2f} s, ratio {ratios[-1]:.3f}")
    print(f"worker / main thread = {statistics.median(ratios):.3f} (median of {a.rounds}; {len(images)} images)")


if __name__ == "__main__":
    main()

"""Bulk throughput on Kodak-size images: worker processes x torch threads, and CPU-hours per million images.

    python benchmarks/bulk_throughput.py [--images ../shared/datasets/kodak] [--limit 24]
        [--configs 1x2 1x2p2 1x1 2x1 4x1] [--json out.json]

Each config ``WxT[pP]`` runs W ``gancodec bulk IN OUT --shard i/W --no-prefect --parallel P``
processes at once over local folders (defaults otherwise: quality 4, the WebP fallback,
verification), each with T torch threads (``OMP_NUM_THREADS``) and P images at once (default 1;
the threads split between them), and times them from start to the last exit (start-up and
model load included). ``1x2`` is one image across both threads of a 2-core machine; ``2x1`` is
one image per thread in two processes, ``1x2p2`` the same in one process (the default of
``gancodec bulk`` on 2 cores: ``--parallel 0``, auto). Pillow's AVIF (4:4:4, speed 6, quality 50)
encodes the same images one after another in this process as the yardstick.

CPU-hours per million images = wall seconds x the cores the config keeps busy
(min(W x T, cores)) / images x 10^6 / 3600. On a machine with other load the wall times grow:
read the ratios of one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run_config(workers: int, threads: int, parallel: int, inp: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GANCODEC_SCRATCH=tempfile.gettempdir())
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "gancodec", "bulk", str(inp), str(out), "--shard", f"{i}/{workers}",
                               "--no-prefect", "--parallel", str(parallel)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(workers)]
    for p in procs:
        log, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed ({p.returncode}):\n{log[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--configs", nargs="+", default=["1x2", "1x2p2", "1x1", "2x1", "4x1"])
    ap.add_argument("--json")
    a = ap.parse_args()
    paths = sorted(Path(a.images).glob("*.png"))[: a.limit]
    if not paths:
        raise SystemExit(f"no PNG images in {a.images}")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in"
        inp.mkdir()
        for p in paths:
            shutil.copy(p, inp / p.name)
        t = time.perf_counter()
        for p in paths:
            Image.open(p).convert("RGB").save(io.BytesIO(), format="AVIF", quality=50, speed=6, subsampling="4:4:4")
        avif = time.perf_counter() - t
        n = len(paths)
        rows = [{"config": "AVIF (Pillow, 1 process)", "seconds": avif, "images_per_s": n / avif,
                 "cpu_hours_per_million": avif * 1 / n * 1e6 / 3600}]
        for cfg in a.configs:
            w, rest = cfg.split("x")
            th, _, par = rest.partition("p")
            w, th, par = int(w), int(th), int(par or 1)
            secs = run_config(w, th, par, inp, Path(tmp) / f"out-{cfg}")
            outputs = sum(1 for _ in (Path(tmp) / f"out-{cfg}").rglob("*.gcx"))
            if outputs != n:
                raise SystemExit(f"{cfg}: {outputs} outputs for {n} images")
            busy = min(w * th, cores)
            label = f"gancodec bulk, {w} worker(s) x {th} thread(s)" + (f", {par} images at once" if par > 1 else "")
            rows.append({"config": label, "seconds": secs, "images_per_s": n / secs,
                         "cpu_hours_per_million": secs * busy / n * 1e6 / 3600})
            print(f"{cfg}: {secs:.1f} s, {n / secs:.3f} images/s", flush=True)
    print(f"\n{n} images from {a.images}, {cores} cores\n")
    print("| config | seconds | images/s | CPU-hours per million images | x AVIF |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['seconds']:.1f} | {r['images_per_s']:.3f} | {r['cpu_hours_per_million']:,.0f} | "
              f"{r['cpu_hours_per_million'] / rows[0]['cpu_hours_per_million']:.1f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"images": n, "cores": cores, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

"""Two weights files on the same images: bytes, PSNR and coding time, as ratios.

    python benchmarks/compare_weights.py NEW.pt [--base OLD.pt] [--images ../shared/datasets/kodak]
        [--limit 24] [--qualities 2 4 6] [--threads 2]

``--base`` defaults to the shipped weights. Every image is coded with both, interleaved in this
one process (the machines here are noisy: only the ratios mean much). Prints, per quality, each
model's mean bpp (real bytes) and PSNR, the new/base ratio of total bytes, and the new/base
ratio of encode and decode time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import gancodec
from gancodec.eval.metrics import psnr
from gancodec.weights import SHIPPED_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("--base", default=str(SHIPPED_WEIGHTS))
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--qualities", type=float, nargs="+", default=[2, 4, 6])
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    images = [np.asarray(Image.open(q).convert("RGB")) for q in sorted(Path(a.images).glob("*.png"))[: a.limit]]
    pixels = sum(im.shape[0] * im.shape[1] for im in images)
    models = {"base": a.base, "new": a.weights}
    for w in models.values():  # load both before timing anything
        gancodec.decompress(gancodec.compress(images[0][:64, :64], weights=w), weights=w)
    print(f"{len(images)} images; base {a.base}; new {a.weights}")
    print("quality | base bpp  PSNR  | new bpp   PSNR  | bytes new/base | encode new/base | decode new/base")
    for q in a.qualities:
        stats = {k: {"bytes": 0, "psnr": [], "enc": 0.0, "dec": 0.0} for k in models}
        for im in images:
            for k, w in models.items():
                t = time.perf_counter()
                data = gancodec.compress(im, quality=q, weights=w, fallback=False)
                t1 = time.perf_counter()
                out = np.asarray(gancodec.decompress(data, weights=w))
                s = stats[k]
                s["enc"] += t1 - t
                s["dec"] += time.perf_counter() - t1
                s["bytes"] += len(data)
                s["psnr"].append(psnr(im, out))
        b, n = stats["base"], stats["new"]
        print(f"{q:7g} | {b['bytes'] * 8 / pixels:.4f} {np.mean(b['psnr']):6.2f} | {n['bytes'] * 8 / pixels:.4f} "
              f"{np.mean(n['psnr']):6.2f} | {n['bytes'] / b['bytes']:14.4f} | {n['enc'] / b['enc']:15.2f} | "
              f"{n['dec'] / b['dec']:15.2f}", flush=True)


if __name__ == "__main__":
    main()

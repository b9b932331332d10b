"""A fidelity post-filter candidate (a noise-free detail file, docs/training.md "A post-filter over
the fidelity decode") against the plain fidelity decode: PSNR per quality and BD-rate vs WebP.

    python benchmarks/postfilter_kodak.py --post runs/p3/realism.pt [--images ../shared/datasets/kodak]
        [--limit 4] [--qualities 1 2 3 4 5 6 7 8] [--weights v1.5.pt]

Each image is centre-cropped to at most 768x512 (portrait Kodak images to 512x512). The filter is
applied as a realism decoder at strength 1 on the same plain streams (``fallback=False``); WebP is
measured here with Pillow on the same crops. ``--weights``: the model the filter was trained over
(default: the shipped one; for v1.6's filter, v1.5: ``gancodec weights get v1.5``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import gancodec
from gancodec.eval import baselines, bdrate
from gancodec.metrics_core import psnr


def _centre(a: np.ndarray, w: int = 768, h: int = 512) -> np.ndarray:
    top, left = max(0, (a.shape[0] - h) // 2), max(0, (a.shape[1] - w) // 2)
    return np.ascontiguousarray(a[top:top + h, left:left + w])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--post", required=True, help="the post-filter file (a detail generator, noise_channels 0)")
    p.add_argument("--images", default=str(Path(__file__).resolve().parents[1] / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--qualities", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    p.add_argument("--weights", default=None, help="the model the filter was trained over (default: the shipped one)")
    a = p.parse_args()
    images = {q.stem: _centre(np.asarray(Image.open(q).convert("RGB"))) for q in sorted(Path(a.images).glob("*.png"))[: a.limit]}
    rows = []
    for q in a.qualities:
        bpp, fid, post = [], [], []
        for x in images.values():
            data = gancodec.compress(Image.fromarray(x), quality=q, fallback=False, weights=a.weights)
            bpp.append(len(data) * 8 / (x.shape[0] * x.shape[1]))
            fid.append(psnr(x, np.asarray(gancodec.decompress(data, weights=a.weights))))
            post.append(psnr(x, np.asarray(gancodec.decompress(data, weights=a.weights, realism=True, realism_weights=a.post))))
        rows.append((q, np.mean(bpp), np.mean(fid), np.mean(post)))
        print(f"q{q:g} bpp {rows[-1][1]:.3f} fidelity {rows[-1][2]:.3f} post {rows[-1][3]:.3f} "
              f"gain {rows[-1][3] - rows[-1][2]:+.3f} dB", flush=True)
    webp = baselines.rd_curve(baselines.sweep("webp", images, settings=(5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)))
    r = np.array(rows)
    print(f"BD-rate vs WebP: fidelity {bdrate.bd_rate(webp.bpp, webp.psnr, r[:, 1], r[:, 2]):+.2f} %, "
          f"post-filter {bdrate.bd_rate(webp.bpp, webp.psnr, r[:, 1], r[:, 3]):+.2f} %")


if __name__ == "__main__":
    main()

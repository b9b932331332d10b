"""Encoder-side latent search (``compress(..., refine_steps=N)``) against plain encodes, paired.

    python benchmarks/refine_kodak.py [--images ../shared/datasets/kodak] [--limit 4]
        [--qualities 2 4 6] [--steps 100] [--threads 2] [--lr 0.02] [--tau 0.5 0.2]

Every image is coded plainly and with the search, interleaved in this one process. Prints per
quality the mean bpp (real bytes) and PSNR of both, the refined/plain ratios of bytes and of
encode time, and the BD-rate of refined against plain over the qualities given (negative =
fewer bits at equal PSNR). Each refined stream is decoded by the ordinary decoder. ``--lr`` and
``--tau`` override the search's step size and temperature schedule (latent_refine.SEARCH_LR,
TAU_START/TAU_END) for this run, to tune them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import gancodec
from gancodec.eval import bdrate
from gancodec.eval.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--qualities", type=float, nargs="+", default=[2, 4, 6])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=None, help="Adam step on y / gain (default: latent_refine.SEARCH_LR)")
    p.add_argument("--tau", type=float, nargs=2, default=None, metavar=("START", "END"), help="SGA temperature schedule")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from gancodec import latent_refine

    if a.lr is not None:
        latent_refine.SEARCH_LR = a.lr
    if a.tau is not None:
        latent_refine.TAU_START, latent_refine.TAU_END = a.tau
    print(f"search: lr {latent_refine.SEARCH_LR:g}, tau {latent_refine.TAU_START:g} -> {latent_refine.TAU_END:g}")
    paths = sorted(Path(a.images).glob("*.png"))[: a.limit]
    images = [np.asarray(Image.open(q).convert("RGB")) for q in paths]
    pixels = sum(im.shape[0] * im.shape[1] for im in images)
    gancodec.decompress(gancodec.compress(images[0][:64, :64]))  # load the weights before timing
    print(f"{len(images)} images ({paths[0].name}..{paths[-1].name}); {a.steps} search steps per tile")
    print("quality | plain bpp  PSNR  | refined bpp PSNR | bytes ref/plain | encode ref/plain")
    curves = {"plain": ([], []), "refined": ([], [])}
    for q in a.qualities:
        stats = {k: {"bytes": 0, "psnr": [], "enc": 0.0} for k in curves}
        for im in images:
            for k, steps in (("plain", 0), ("refined", a.steps)):
                t = time.perf_counter()
                data = gancodec.compress(im, quality=q, refine_steps=steps, fallback=False)
                stats[k]["enc"] += time.perf_counter() - t
                stats[k]["bytes"] += len(data)
                stats[k]["psnr"].append(psnr(im, np.asarray(gancodec.decompress(data))))
        for k, s in stats.items():
            curves[k][0].append(s["bytes"] * 8 / pixels)
            curves[k][1].append(float(np.mean(s["psnr"])))
        b, r = stats["plain"], stats["refined"]
        print(f"{q:7g} | {curves['plain'][0][-1]:.4f} {curves['plain'][1][-1]:6.2f} | {curves['refined'][0][-1]:.4f} "
              f"{curves['refined'][1][-1]:6.2f} | {r['bytes'] / b['bytes']:15.3f} | {r['enc'] / b['enc']:16.1f}", flush=True)
    if len(a.qualities) >= 2:
        try:
            bd = bdrate.bd_rate(*curves["plain"], *curves["refined"])
            print(f"BD-rate, refined vs plain: {bd:+.1f}% (negative = fewer bits at equal PSNR)")
        except ValueError as exc:
            print(f"BD-rate not computable: {exc}")


if __name__ == "__main__":
    main()

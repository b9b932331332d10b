"""Encode/decode time per image: gancodec next to avifenc and cjxl at the same bpp, as ratios.

    python benchmarks/codec_speed.py [--images ../shared/datasets/kodak] [--limit 24] [--quality 4]

All codecs run in this one process on the same images (machines here are noisy, so only the
ratios mean much). For each image, gancodec codes at ``--quality``; avifenc (speed 6) and cjxl
(effort 7) are set, by bisection, to the highest quality whose file is no larger, then timed on
one more encode + decode. The classical encoders run as subprocesses (as users run them, so
process start-up is included); their decoders run in-process (Pillow's libavif, imagecodecs'
libjxl). gancodec runs on the CPU with ``--threads`` torch threads.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import gancodec
from gancodec.eval import baselines, metrics


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(Path(__file__).resolve().parents[1] / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--quality", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    paths = sorted(Path(a.images).glob("*.png"))[: a.limit]
    if not paths:
        raise SystemExit(f"no PNG images in {a.images}")
    others = [c for c in ("avifenc", "cjxl") if baselines.get_codec(c).available()[0]]
    for c in ("avifenc", "cjxl"):
        if c not in others:
            print(f"{c}: skipped ({baselines.get_codec(c).available()[1]})")
    gancodec.decompress(gancodec.compress(np.zeros((64, 64, 3), np.uint8)))  # warm-up: load weights
    rows = []
    print(f"{'image':<12} {'codec':<9} {'bpp':>6} {'PSNR':>6} {'enc s':>7} {'dec s':>7}")
    for path in paths:
        img = np.asarray(Image.open(path).convert("RGB"))
        h, w = img.shape[:2]
        data, t_enc = timed(lambda: gancodec.compress(img, quality=a.quality, device="cpu", fallback=False))
        out, t_dec = timed(lambda: np.asarray(gancodec.decompress(data, device="cpu")))
        rate = metrics.bpp(len(data), h, w)
        row = {"gancodec": (rate, metrics.psnr(img, out), t_enc, t_dec)}
        for name in others:
            codec = baselines.get_codec(name)
            match = baselines.match_bpp(codec, img, rate)
            blob, te = timed(codec.encode, img, match.setting)
            dec, td = timed(codec.decode, blob)
            row[name] = (metrics.bpp(len(blob), h, w), metrics.psnr(img, dec), te, td)
        for name, (b, q, te, td) in row.items():
            print(f"{path.stem:<12} {name:<9} {b:6.3f} {q:6.2f} {te:7.3f} {td:7.3f}")
        rows.append(row)
    print(f"\nratios over {len(rows)} images (median of per-image ratios; > 1 means gancodec is slower)")
    for name in others:
        enc = statistics.median(r["gancodec"][2] / r[name][2] for r in rows)
        dec = statistics.median(r["gancodec"][3] / r[name][3] for r in rows)
        dq = statistics.mean(r["gancodec"][1] - r[name][1] for r in rows)
        print(f"gancodec / {name:<8} encode x{enc:.2f}  decode x{dec:.2f}   (PSNR gancodec - {name}: {dq:+.2f} dB at <= same bpp)")


if __name__ == "__main__":
    main()

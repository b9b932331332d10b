"""RD benchmark of the classical codecs on a folder of images (Kodak by default).

    .venv/bin/python benchmarks/rd_kodak.py --limit 4

Sweeps every available codec of gancodec.eval.baselines at its default settings, averages bpp
and PSNR per setting (CompressAI's convention), prints the RD table, then BD-rates (PSNR)
against our HEVC intra 4:4:4 and against the published BPG 4:4:4 curve of CompressAI. Codecs
that cannot run here are listed as skipped with the reason. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from gancodec.data.imageio import load_image
from gancodec.eval import anchors, baselines
from gancodec.eval.bdrate import bd_psnr, bd_rate

REPO = Path(__file__).resolve().parents[1]
PUBLISHED_BPG = "bpg_444_x265_ycbcr"
PUBLISHED_OTHERS = ("jpeg", "webp", "av1", "hm", "vtm")


def _bd(anchor_bpp, anchor_psnr, bpp, psnr) -> tuple[str, str]:
    try:
        return f"{bd_rate(anchor_bpp, anchor_psnr, bpp, psnr):+.1f}%", f"{bd_psnr(anchor_bpp, anchor_psnr, bpp, psnr):+.2f}"
    except ValueError as err:
        return f"n/a ({err})", ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=REPO.parent / "shared/datasets/kodak")
    p.add_argument("--anchors", type=Path, default=REPO.parent / "shared/anchors/compressai_kodak")
    p.add_argument("--limit", type=int, default=None, help="first N images (sorted by name)")
    p.add_argument("--codecs", nargs="+", default=list(baselines.CLASSICAL), choices=list(baselines.CODECS))
    p.add_argument("--perceptual", action="store_true", help="also SSIMULACRA2 (~0.5 s per decode)")
    p.add_argument("--csv", type=Path, default=None, help="write the per-image rows here")
    args = p.parse_args(argv)

    files = sorted(f for f in args.images.iterdir() if f.suffix.lower() in {".png", ".ppm", ".jpg", ".tif", ".tiff"})
    files = files[: args.limit] if args.limit else files
    if not files:
        print(f"no images in {args.images}", file=sys.stderr)
        return 1
    images = {f.name: load_image(f) for f in files}
    print(f"{len(images)} images from {args.images}: {', '.join(images)}\n")

    t0 = time.perf_counter()
    rows, skipped = baselines.sweep_many(args.codecs, images, perceptual=args.perceptual)
    for name, reason in skipped.items():
        print(f"SKIPPED {name}: {reason}")
    if args.csv:
        rows.to_csv(args.csv, index=False)
    curves = baselines.rd_curve(rows)
    with pd.option_context("display.width", 160, "display.max_rows", 500, "display.float_format", "{:.4f}".format):
        print(curves.drop(columns=["bytes"]).to_string(index=False))
    print(f"\nsweep took {time.perf_counter() - t0:.0f} s\n")

    published = anchors.load_anchors(args.anchors, dataset="kodak")
    bpg_bpp, bpg_psnr = anchors.curve(published, PUBLISHED_BPG)
    ours = {c: (g["bpp"].to_numpy(), g["psnr"].to_numpy()) for c, g in curves.groupby("codec", sort=False)}
    hevc = ours.get("hevc444")
    table = []
    for codec, (bpp, psnr) in ours.items():
        vs_hevc = _bd(*hevc, bpp, psnr) if hevc is not None else ("n/a (hevc444 skipped)", "")
        table.append((f"{codec} (measured)", *vs_hevc, *_bd(bpg_bpp, bpg_psnr, bpp, psnr)))
    for name in (PUBLISHED_BPG, *PUBLISHED_OTHERS):
        bpp, psnr = anchors.curve(published, name)
        vs_hevc = _bd(*hevc, bpp, psnr) if hevc is not None else ("n/a", "")
        table.append((f"{name} (published, Kodak-24)", *vs_hevc, *_bd(bpg_bpp, bpg_psnr, bpp, psnr)))
    cols = ["curve", "BD-rate vs hevc444", "BD-PSNR dB", "BD-rate vs published BPG", "BD-PSNR dB "]
    print(pd.DataFrame(table, columns=cols).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

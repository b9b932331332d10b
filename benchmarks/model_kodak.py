"""Kodak RD of the shipped (or given) weights vs WebP: published anchor and measured here.

    python benchmarks/model_kodak.py [--images ../shared/datasets/kodak] [--limit 24]
        [--qualities 1 2 3 4 5 6 7 8] [--weights W.pt] [--refine STEPS] [--json kodak.json]

Prints our curve (mean bpp from real bytes, PSNR, MS-SSIM per quality), WebP measured with
Pillow on the same images, the published CompressAI WebP anchor, and the PSNR margin at equal
bpp over 0.15-1.0 bpp. ``--json`` writes the table the model card embeds. ``--refine`` encodes
with the encoder-side latent search (``compress(..., refine_steps=STEPS)``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from gancodec.eval import baselines, bdrate, ours
from gancodec.eval.anchors import curve, load_anchors

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--anchors", default=str(ROOT / "../shared/anchors/compressai_kodak/webp.json"))
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--qualities", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    p.add_argument("--weights", default=None)
    p.add_argument("--refine", type=int, default=0, metavar="STEPS")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    paths = sorted(Path(a.images).glob("*.png"))[: a.limit]
    images = {q.stem: np.asarray(Image.open(q).convert("RGB")) for q in paths}
    df = ours.rd_sweep(images, a.qualities, weights=a.weights, refine_steps=a.refine)
    mine = ours.rd_curve(df)
    webp = baselines.rd_curve(baselines.sweep("webp", images, settings=(5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)))
    anchor_bpp, anchor_psnr = curve(load_anchors(a.anchors), "webp")
    w_at = ours.psnr_at(mine["bpp"].to_numpy(), webp["bpp"].to_numpy(), webp["psnr"].to_numpy())
    a_at = ours.psnr_at(mine["bpp"].to_numpy(), anchor_bpp, anchor_psnr)
    print(f"Kodak, {len(images)} images")
    print(f"{'quality':>7} {'bpp':>7} {'PSNR':>7} {'MS-SSIM':>8} {'WebP(here)':>11} {'WebP(pub)':>10} {'enc s':>6} {'dec s':>6}")
    rows = []
    for i, r in mine.iterrows():
        print(f"{r.quality:7.2f} {r.bpp:7.3f} {r.psnr:7.2f} {r.ms_ssim:8.4f} {w_at[i]:11.2f} {a_at[i]:10.2f} {r.encode_s:6.2f} {r.decode_s:6.2f}")
        rows.append({"quality": r.quality, "bpp": r.bpp, "psnr": r.psnr, "ms_ssim": r.ms_ssim,
                     "webp_psnr": None if np.isnan(w_at[i]) else float(w_at[i]),
                     "webp_published_psnr": None if np.isnan(a_at[i]) else float(a_at[i])})
    m_here = ours.margin_over(mine.bpp, mine.psnr, webp.bpp, webp.psnr)
    m_pub = ours.margin_over(mine.bpp, mine.psnr, anchor_bpp, anchor_psnr)
    print(f"\nPSNR margin over WebP at equal bpp, 0.15-1.0 bpp: measured here min {m_here['min_db']:+.2f} dB "
          f"(worst at {m_here['worst_bpp']:.3f} bpp, mean {m_here['mean_db']:+.2f}); "
          f"published anchor min {m_pub['min_db']:+.2f} dB (mean {m_pub['mean_db']:+.2f})")
    try:
        bd = bdrate.bd_rate(webp.bpp, webp.psnr, mine.bpp, mine.psnr)
        print(f"BD-rate vs WebP measured here: {bd:+.1f}% (negative = fewer bits)")
    except ValueError as exc:
        bd = None
        print(f"BD-rate vs WebP: not computable ({exc})")
    if a.json:
        cmd = "python benchmarks/model_kodak.py " + " ".join(sys.argv[1:])
        Path(a.json).write_text(json.dumps({"images": len(images), "rows": rows, "margin_vs_webp_here": m_here,
                                            "margin_vs_webp_published": m_pub, "bd_rate_vs_webp_here": bd,
                                            "refine_steps": a.refine, "command": cmd}, indent=2))


if __name__ == "__main__":
    main()

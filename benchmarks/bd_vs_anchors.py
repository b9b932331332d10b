"""BD-rate (PSNR) of a Kodak table against published anchors (CompressAI's Kodak JSONs).

    python benchmarks/bd_vs_anchors.py [--table src/gancodec/weights/MODEL_CARD.json]
        [--anchors bpg_444_x265_ycbcr webp jpeg compressai-bmshj2018-hyperprior_mse_cpu]
        [--window 0.25 0.75] [--at 0.25 0.5 0.75]

``--table``: a ``benchmarks/model_kodak.py --json`` file or a model card (its ``kodak`` field).
Negative = fewer bits than the anchor at equal PSNR. Beside the whole-curve BD-rate it prints
the BD-rate over the PSNR our curve spans in ``--window`` (bpp), and at each ``--at`` bpp our
PSNR, the anchor's, and how many more bits we spend than the anchor needs for our PSNR there
(the same sign as BD-rate: positive = we need more).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gancodec.eval import bdrate
from gancodec.eval.anchors import curve, load_anchors

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(ROOT / "src/gancodec/weights/MODEL_CARD.json"))
    p.add_argument("--anchor-dir", default=str(ROOT / "../shared/anchors/compressai_kodak"))
    p.add_argument("--anchors", nargs="+",
                   default=["bpg_444_x265_ycbcr", "webp", "jpeg", "compressai-bmshj2018-hyperprior_mse_cpu"])
    p.add_argument("--window", nargs=2, type=float, default=[0.25, 0.75], metavar=("LO", "HI"))
    p.add_argument("--at", nargs="+", type=float, default=[0.25, 0.5, 0.75], metavar="BPP")
    a = p.parse_args()
    table = json.loads(Path(a.table).read_text())
    rows = (table.get("kodak") or table)["rows"]
    bpp, psnr = np.array([r["bpp"] for r in rows]), np.array([r["psnr"] for r in rows])
    ours_at = bdrate.quality_at(bpp, psnr, a.at)
    print("ours: " + ", ".join(f"{q:.2f} dB at {b:g} bpp" for q, b in zip(ours_at, a.at)))
    lo, hi = a.window
    print(f"{'anchor':45s} {'BD-rate':>8s} {f'{lo:g}-{hi:g} bpp':>12s}   " + "   ".join(
        f"{f'at {b:g} bpp: dB, bits':>21s}" for b in a.at))
    for name in a.anchors:
        anchor_bpp, anchor_psnr = curve(load_anchors(Path(a.anchor_dir) / f"{name}.json"), name)
        whole = bdrate.bd_rate(anchor_bpp, anchor_psnr, bpp, psnr)
        part = bdrate.compare_at(anchor_bpp, anchor_psnr, bpp, psnr, a.window)["bd_rate_window"]
        c = bdrate.compare_at(anchor_bpp, anchor_psnr, bpp, psnr, a.at)
        points = "   ".join(f"{d:+6.2f} dB, {n * 100:+4.0f}%".rjust(21) for d, n in zip(c["delta_quality"], c["extra_rate"]))
        print(f"{name:45s} {whole:+7.1f}% {part:+11.1f}%   {points}")

if __name__ == "__main__":
    main()

"""BD-rate (PSNR) of a Kodak table against published anchors (CompressAI's Kodak JSONs).

    python benchmarks/bd_vs_anchors.py [--table src/gancodec/weights/MODEL_CARD.json]
        [--anchors bpg_444_x265_ycbcr webp jpeg compressai-bmshj2018-hyperprior_mse_cpu]

``--table``: a ``benchmarks/model_kodak.py --json`` file or a model card (its ``kodak`` field).
Negative = fewer bits than the anchor at equal PSNR.
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
    a = p.parse_args()
    table = json.loads(Path(a.table).read_text())
    rows = (table.get("kodak") or table)["rows"]
    bpp, psnr = np.array([r["bpp"] for r in rows]), np.array([r["psnr"] for r in rows])
    for name in a.anchors:
        anchor_bpp, anchor_psnr = curve(load_anchors(Path(a.anchor_dir) / f"{name}.json"), name)
        print(f"{name:45s} {bdrate.bd_rate(anchor_bpp, anchor_psnr, bpp, psnr):+7.1f}%")


if __name__ == "__main__":
    main()

"""Evaluate gancodec and the classical codecs on any folder of images, and write the report.

    python -m gancodec.eval photos/ --out reports/photos [--codecs jpeg420 webp avif] [--limit 10]

The same measurement and report as the pipeline's `evaluate` and `report` stages, for a folder
the pipeline does not know. Missing codecs are listed as skipped in the report.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import GancodecError
from .baselines import CLASSICAL
from .evaluate import evaluate
from .report import write_report

DEFAULT_CODECS = ["jpeg420", "jpeg444", "webp", "avif", "jxl", "hevc444"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gancodec.eval", description=__doc__.splitlines()[0])
    p.add_argument("images", help="a folder of PNG/JPEG images, or a CSV with a 'path' column")
    p.add_argument("--out", required=True, help="folder for rd.csv, curves.csv, summary.json, metrics.json and report/")
    p.add_argument("--weights", help="gancodec weights (default: the shipped ones)")
    p.add_argument("--qualities", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    p.add_argument("--codecs", nargs="+", default=DEFAULT_CODECS, choices=sorted(CLASSICAL), metavar="CODEC",
                   help=f"classical codecs (default: {' '.join(DEFAULT_CODECS)}; any of {', '.join(sorted(CLASSICAL))})")
    p.add_argument("--anchor", default="hevc444", help="BD-rate anchor among the codecs (default: hevc444)")
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--no-perceptual", action="store_true", help="skip SSIMULACRA2 (~1 s per image and point)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the classical codecs")
    p.add_argument("--anchors", help="folder of published curves to plot beside (e.g. ../shared/anchors/compressai_kodak)")
    p.add_argument("--dataset", help="name used in the report (default: the folder's name)")
    a = p.parse_args(argv)
    out = Path(a.out)
    try:
        evaluate(a.images, out, weights=a.weights, qualities=a.qualities, codecs=a.codecs, limit=a.limit,
                 anchor=a.anchor, perceptual=not a.no_perceptual, workers=a.workers)
        anchors = None
        if a.anchors:
            from .anchors import load_anchors

            anchors = load_anchors(a.anchors, dataset="kodak")
        report = write_report(out, out / "report", anchors, dataset=a.dataset or Path(a.images).stem)
    except GancodecError as err:
        print(f"gancodec: error: {err}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DVC stage `report`: markdown tables + RD plot (with published anchors) from the evaluation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gancodec.errors import GancodecError
from gancodec.eval.anchors import load_anchors
from gancodec.eval.report import write_report
from gancodec.params import ReportParams


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="the params file (section `report`)")
    p.add_argument("--eval", required=True)
    p.add_argument("--classes", default=None, help="the evaluate_classes stage's classes.json (optional)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        prm = ReportParams.load(a.params)
    except GancodecError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    anchors = load_anchors(prm.anchors, dataset="kodak") if prm.anchors and Path(prm.anchors).exists() else None
    print(write_report(a.eval, a.out, anchors, dataset=prm.dataset, anchor_names=prm.anchor_curves,
                       classes=a.classes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

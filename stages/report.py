"""DVC stage `report`: markdown tables + RD plot (with published anchors) from the evaluation."""

from __future__ import annotations

import argparse
from pathlib import Path

from gancodec.eval.anchors import load_anchors
from gancodec.eval.report import write_report
from gancodec.params import stage_params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    prm = stage_params("params.yaml", "report")
    anchors = None
    if prm.get("anchors") and Path(prm["anchors"]).exists():
        anchors = load_anchors(prm["anchors"], dataset="kodak")
        keep = set(prm.get("anchor_curves") or [])
        anchors = anchors[anchors["name"].isin(keep)] if keep else anchors
    print(write_report(a.eval, a.out, anchors, dataset=prm.get("dataset", "test set")))


if __name__ == "__main__":
    main()

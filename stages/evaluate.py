"""DVC stage `evaluate`: the trained weights and the classical codecs on the test list, real bytes."""

from __future__ import annotations

import argparse
import json
import os

from gancodec.eval.evaluate import evaluate
from gancodec.params import stage_params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--test-list", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    prm = stage_params("params.yaml", "evaluate")
    workers = int(prm.get("workers", 0)) or os.cpu_count() or 1
    summary = evaluate(a.test_list, a.out, weights=a.weights, qualities=prm["qualities"], codecs=prm["codecs"],
                       limit=prm.get("limit"), anchor=prm.get("anchor", "hevc444"),
                       perceptual=bool(prm.get("perceptual", True)),
                       perceptual_max_bpp=float(prm.get("perceptual_max_bpp", 2.0)), workers=workers)
    print(json.dumps({"images": summary["images"], "codecs": summary["codecs"], "skipped": summary["skipped"]}))


if __name__ == "__main__":
    main()

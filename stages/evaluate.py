"""DVC stage `evaluate`: the trained weights and the classical codecs on the test list, real bytes."""

from __future__ import annotations

import argparse
import json
import sys

from gancodec.errors import GancodecError
from gancodec.eval.evaluate import evaluate
from gancodec.params import EvaluateParams


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="the params file (section `evaluate`)")
    p.add_argument("--test-list", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        prm = EvaluateParams.load(a.params)
    except GancodecError as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 1
    summary = evaluate(a.test_list, a.out, weights=a.weights, qualities=prm.qualities, codecs=prm.codecs,
                       limit=prm.limit, anchor=prm.anchor, perceptual=prm.perceptual,
                       perceptual_max_bpp=prm.perceptual_max_bpp, workers=prm.worker_count())
    print(json.dumps({"images": summary["images"], "codecs": summary["codecs"], "skipped": summary["skipped"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

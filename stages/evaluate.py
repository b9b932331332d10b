"""DVC stage `evaluate`: the trained weights and the classical codecs on the test list, real bytes."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from gancodec.errors import DataError, GancodecError
from gancodec.eval.evaluate import evaluate
from gancodec.params import EvaluateParams


def _check_pin(weights: str, pin: str) -> None:
    """The weights are what the committed pin says (the pin is the dependency DVC tracks)."""
    try:
        expected = Path(pin).read_text().split()[0]
        actual = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    except (OSError, IndexError) as exc:
        raise DataError(f"{weights} / {pin}: cannot read ({exc}); run `dvc pull` or `dvc repro train_post_filter`") from None
    if actual != expected:
        raise DataError(f"{weights}: sha256 {actual[:16]}… is not {expected[:16]}… pinned in {pin}; "
                        "run `dvc checkout models/gancodec.pt` (or `dvc pull`, `dvc repro train_post_filter`)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="the params file (section `evaluate`)")
    p.add_argument("--test-list", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--weights-sha256", help="the train stage's `<sha256>  <name>` file: the weights must match it")
    p.add_argument("--realism-weights", default=None, help="the realism file (from train_realism)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        prm = EvaluateParams.load(a.params)
        if a.weights_sha256:
            _check_pin(a.weights, a.weights_sha256)
    except GancodecError as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 1
    summary = evaluate(a.test_list, a.out, weights=a.weights, qualities=prm.qualities, codecs=prm.codecs,
                       limit=prm.limit, anchor=prm.anchor, perceptual=prm.perceptual,
                       perceptual_max_bpp=prm.perceptual_max_bpp, workers=prm.worker_count(),
                       realism_weights=a.realism_weights, realism_qualities=prm.realism_qualities)
    print(json.dumps({"images": summary["images"], "codecs": summary["codecs"], "skipped": summary["skipped"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Is the committed evaluation what today's code, weights, params and test list measure? (used by
scripts/refresh_lock.sh)

Checks that the committed reports/eval was made from the same inputs: the weights' sha256
(models/gancodec.sha256) equals summary.json's, so does the realism weights' (models/realism.json), its images are the test list's (first `limit`),
its gancodec settings are evaluate.qualities and its codecs evaluate.codecs (less the skipped).
Then re-measures the first --images test images with today's code (SSIMULACRA2 off) into a
temporary folder and compares every (image, codec, setting) row with the committed rd.csv: file
bytes equal, PSNR / MS-SSIM equal to 1e-9. Exit 0 when all hold (`dvc commit evaluate` may record
the stage), 1 naming what differs otherwise (rerun it: `dvc repro evaluate`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from gancodec.eval.evaluate import evaluate
from gancodec.params import EvaluateParams

KEY = ["image", "codec", "setting"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--test-list", default="data/splits/test.csv")
    p.add_argument("--weights", default="models/gancodec.pt")
    p.add_argument("--committed", default="reports/eval/rd.csv")
    p.add_argument("--realism-card", default="models/realism.json",
                   help="the realism weights' card: its sha256 must be the one the evaluation measured")
    p.add_argument("--images", type=int, default=2, help="images to re-measure (0: check the inputs only)")
    a = p.parse_args(argv)
    prm = EvaluateParams.load(a.params)
    committed = Path(a.committed).parent
    summary = json.loads((committed / "summary.json").read_text())
    then = pd.read_csv(a.committed)
    pin = Path(a.weights).with_suffix(".sha256")
    weights_sha = pin.read_text().split()[0] if pin.exists() else hashlib.sha256(Path(a.weights).read_bytes()).hexdigest()
    tests = [Path(p).stem for p in pd.read_csv(a.test_list).get("clean_path", pd.read_csv(a.test_list)["path"])]
    tests = tests[: prm.limit] if prm.limit else tests
    problems = []
    if summary.get("weights_sha256") != weights_sha:
        problems.append(f"weights {weights_sha[:16]}… but the evaluation measured {str(summary.get('weights_sha256'))[:16]}…")
    if sorted(then.image.unique()) != sorted(tests):
        problems.append(f"images {sorted(then.image.unique())} are not the test list's {sorted(tests)}")
    if sorted(then[then.codec == "gancodec"].setting.unique()) != sorted(float(q) for q in prm.qualities):
        problems.append(f"gancodec settings are not evaluate.qualities {prm.qualities}")
    if set(then.codec) - {"gancodec"} != set(prm.codecs) - set(summary.get("skipped") or {}):
        problems.append(f"codecs {sorted(set(then.codec))} are not evaluate.codecs {prm.codecs}")
    realism_card = Path(a.realism_card)
    if realism_card.exists() and "realism" in summary:  # the realism table is measured with these weights
        want = json.loads(realism_card.read_text()).get("sha256")
        had = summary["realism"].get("sha256")
        if had != want:
            problems.append(f"realism weights {str(want)[:16]}… but the evaluation measured "
                            f"{str(had)[:16] + '…' if had else 'weights it did not record'}")
    if problems:
        print("check_eval: the committed evaluation was made from other inputs: " + "; ".join(problems))
        return 1
    if a.images == 0:
        print("check_eval: the committed evaluation was made from today's weights, test list and params")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        evaluate(a.test_list, tmp, weights=a.weights, qualities=prm.qualities, codecs=prm.codecs, anchor=prm.anchor,
                 limit=a.images, perceptual=False, workers=prm.worker_count(), quiet=True)
        now = pd.read_csv(Path(tmp) / "rd.csv")
    both = now.merge(then, on=KEY, how="left", suffixes=("", "_committed"), indicator=True)
    missing = both[both["_merge"] != "both"]
    bad = both[(both["_merge"] == "both") & ((both.bytes != both.bytes_committed)
               | ~np.isclose(both.psnr, both.psnr_committed, rtol=0, atol=1e-9)
               | ~np.isclose(both.ms_ssim, both.ms_ssim_committed, rtol=0, atol=1e-9, equal_nan=True))]
    if len(missing) or len(bad):
        print(f"check_eval: {len(missing)} rows not in {a.committed}, {len(bad)} differ; rerun `dvc repro evaluate`")
        print(pd.concat([missing, bad])[KEY + ["bytes", "bytes_committed", "psnr", "psnr_committed"]].to_string())
        return 1
    print(f"check_eval: {len(both)} rows ({a.images} images, every codec and setting) equal to {a.committed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

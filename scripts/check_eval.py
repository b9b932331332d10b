"""Is the committed evaluation still what today's code measures? (used by scripts/refresh_lock.sh)

Re-measures the first --images test images with the evaluate stage's own settings (params.yaml,
SSIMULACRA2 off) into a temporary folder and compares every (image, codec, setting) row with the
committed reports/eval/rd.csv: file bytes must be equal and PSNR / MS-SSIM equal to 1e-9. Exit 0
when they are (a code change that does not change results: `dvc commit evaluate` records it),
1 with the differing rows otherwise (rerun the stage: `dvc repro evaluate`).
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--images", type=int, default=2)
    a = p.parse_args(argv)
    prm = EvaluateParams.load(a.params)
    with tempfile.TemporaryDirectory() as tmp:
        evaluate(a.test_list, tmp, weights=a.weights, qualities=prm.qualities, codecs=prm.codecs, anchor=prm.anchor,
                 limit=a.images, perceptual=False, workers=prm.worker_count(), quiet=True)
        now = pd.read_csv(Path(tmp) / "rd.csv")
    then = pd.read_csv(a.committed)
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

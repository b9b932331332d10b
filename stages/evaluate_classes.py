"""DVC stage `evaluate_classes`: gancodec and the classical codecs per content class (issue 20).

Photos are the first `classes.photos` images of the test list (Kodak); the other classes are the
synthesize stage's test sets (--synthetic-tests, its tests.csv). Writes OUT/classes.csv (every
point) and OUT/classes.json (per class: BD-rate vs each anchor, the worst image).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from gancodec.errors import DataError, GancodecError
from gancodec.class_table_markdown import markdown
from gancodec.eval.classes import evaluate_classes
from gancodec.params import ClassesParams


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="the params file (section `classes`)")
    p.add_argument("--test-list", required=True, help="the split's test.csv (photos)")
    p.add_argument("--synthetic-tests", required=True, help="the synthesize stage's tests.csv")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        prm = ClassesParams.load(a.params)
        photos = pd.read_csv(a.test_list)
        if photos.empty:
            raise DataError(f"{a.test_list}: no test images for the photos class")
        column = "clean_path" if "clean_path" in photos else "path"
        sets = {"photos": list(photos[column].head(prm.photos or len(photos)))}
        tests = pd.read_csv(a.synthetic_tests)
        for cls, rows in tests.groupby("class", sort=False):
            sets[str(cls)] = list(rows["path"].head(prm.limit or len(rows)))
        summary = evaluate_classes(sets, Path(a.out), weights=a.weights, qualities=prm.qualities, codecs=prm.codecs,
                                   workers=prm.worker_count())
    except (GancodecError, OSError) as exc:
        print(f"evaluate_classes: {exc}", file=sys.stderr)
        return 1
    print("\n".join(markdown(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

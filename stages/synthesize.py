"""DVC stage `synthesize`: synthetic screen content, documents, charts, line art and studio shots.

Writes OUT/train/*.png with OUT/manifest.csv (role train: the split stage splits them by content
hash with the photos) and one test set per content class, OUT/test/<class>/*.png with
OUT/tests.csv, drawn with the section's own test seed (gancodec.data.synthetic).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from gancodec.data.synthetic import synthesize
from gancodec.errors import GancodecError
from gancodec.params import SyntheticParams


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="the params file (section `synthetic`)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        prm = SyntheticParams.load(a.params)
        shutil.rmtree(a.out, ignore_errors=True)  # nothing stale from a larger earlier run
        summary = synthesize(Path(a.out), count=prm.count, seed=prm.seed, test_per_class=prm.test_per_class,
                             test_seed=prm.test_seed, size=(prm.size[0], prm.size[1]), kinds=prm.kinds or None)
    except GancodecError as exc:
        print(f"synthesize: {exc}", file=sys.stderr)
        return 1
    print(f"synthesize: {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DVC stage `split`: train/val/test lists from the validate table, by content hash.

Reads the previous OUT/assignments.csv (a persisted out) so earlier decisions never change.
Writes OUT/{train,val,test,assignments}.csv and OUT/summary.json.
"""

import argparse
import sys

from gancodec.data.split import split_table
from gancodec.errors import GancodecError
from gancodec.params import SplitParams


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="the params file (section `split`)")
    parser.add_argument("--table", required=True, help="validate's files.csv")
    parser.add_argument("--extra", nargs="*", default=[],
                        help="more tables with validate's columns (the synthesize stage's manifest.csv)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        summary = split_table(args.table, args.out, SplitParams.load(args.params).values(), extra=args.extra)
    except GancodecError as exc:
        print(f"split: {exc}", file=sys.stderr)
        return 1
    print(f"split: {summary['counts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

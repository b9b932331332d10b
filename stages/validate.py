"""DVC stage `validate`: check every raw file; clean 8-bit RGB PNGs, a quarantine, a table.

Writes CLEAN/<source>/..., QUARANTINE/<source>/... + QUARANTINE/reasons.csv, and
TABLE/files.csv + TABLE/summary.json (checked by the Great Expectations suite).
"""

import argparse
import sys

from gancodec.data.validate import ValidateConfig, check_table, validate_dataset, write_table
from gancodec.errors import GancodecError
from gancodec.params import ValidateParams


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="the params file (section `validate`)")
    parser.add_argument("--raw", required=True)
    parser.add_argument("--clean", required=True)
    parser.add_argument("--quarantine", required=True)
    parser.add_argument("--table", required=True, help="folder for files.csv and summary.json")
    args = parser.parse_args(argv)
    try:
        cfg = ValidateConfig.from_params(ValidateParams.load(args.params).values())
        table = validate_dataset(args.raw, args.clean, args.quarantine, cfg, check=False)
        write_table(table, args.table)  # written first, so a failed check leaves it to inspect
        summary = check_table(table, cfg)
        write_table(table, args.table, summary)
    except GancodecError as exc:
        print(f"validate: {exc}", file=sys.stderr)
        return 1
    print(f"validate: {summary['status_counts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

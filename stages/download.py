"""DVC stage `download`: fetch the `download.sources` of params.yaml into OUT/<source>/.

Mirror first (download.mirror), then each source's url/archive; every file sha256-checked.
Writes OUT/manifest.csv (source, role, file, sha256, bytes, origin, license).
"""

import argparse
import logging
import sys

from gancodec.data.download import download_sources, parse_sources
from gancodec.errors import GancodecError
from gancodec.params import stage_params


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="raw data folder (a DVC out)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        cfg = stage_params(args.params, "download")
        rows = download_sources(parse_sources(cfg["sources"]), args.out, take=cfg["take"], mirror=cfg.get("mirror") or None, cache_dir=cfg.get("cache"))
    except GancodecError as exc:
        print(f"download: {exc}", file=sys.stderr)
        return 1
    print(f"download: {len(rows)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

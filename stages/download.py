"""DVC stage `download`: fetch the sources listed in --sources (data/sources.yaml) into OUT/<source>/.

Mirror first (download.mirror), then each source's url/archive; every file sha256-checked.
Writes OUT/manifest.csv (source, role, file, sha256, bytes, origin, license) and a copy at
--manifest: a small committed file that pins every raw file by sha256, so later stages depend on
it instead of on the (large, DVC-cached) raw folder.
"""

import argparse
import logging
import shutil
import sys
from pathlib import Path

from gancodec.data.download import MANIFEST, download_sources, parse_sources
from gancodec.errors import GancodecError
from gancodec.params import read_sources
from gancodec.params import DownloadParams


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="the params file (section `download`)")
    parser.add_argument("--sources", required=True, help="YAML: source -> role, license, url/archive, files (name -> sha256)")
    parser.add_argument("--out", required=True, help="raw data folder (a DVC out)")
    parser.add_argument("--manifest", help="where to copy OUT/manifest.csv (a small, committed out)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        prm = DownloadParams.load(args.params)
        sources = parse_sources(read_sources(args.sources))
        rows = download_sources(sources, args.out, take=prm.take_map(), mirror=prm.mirror or None, cache_dir=prm.cache)
    except GancodecError as exc:
        print(f"download: {exc}", file=sys.stderr)
        return 1
    if args.manifest:
        Path(args.manifest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(args.out) / MANIFEST, args.manifest)
    print(f"download: {len(rows)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

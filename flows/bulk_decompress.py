"""Prefect flow ``bulk-decompress``: a shell for ``prefect deploy`` and the command line.

The flow is defined in the package (:mod:`gancodec.bulk.flows`); this file only imports it.
``python flows/bulk_decompress.py SRC DST`` is ``gancodec bulk-decompress SRC DST``.
"""

from gancodec.bulk.flows import bulk_decompress  # noqa: F401  (the deployment's entrypoint)

if __name__ == "__main__":
    import sys

    from gancodec.bulk.cli import main

    sys.exit(main(decompress=True))

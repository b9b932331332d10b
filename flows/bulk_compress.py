"""Prefect flow ``bulk-compress``: a shell for ``prefect deploy`` and the command line.

The flow is defined in the package (:mod:`gancodec.bulk.flows`, so a wheel carries it); this
file only imports it. Run it locally (ephemeral Prefect, no server), with the options of
``gancodec bulk``::

    python flows/bulk_compress.py s3://in-bucket/photos s3://out-bucket/gcx --quality 4

or deploy it with ``prefect deploy`` (see prefect.yaml and docs/bulk.md).
"""

from gancodec.bulk.flows import bulk_compress  # noqa: F401  (the deployment's entrypoint)

if __name__ == "__main__":
    import sys

    from gancodec.bulk.cli import main

    sys.exit(main())

"""The ``gancodec bulk`` and ``gancodec bulk-decompress`` commands (registered by gancodec.cli).

Light on purpose: building the parser imports nothing heavy (``gancodec --help`` stays fast);
the options' defaults are the :class:`~gancodec.bulk.settings.Settings` defaults, and the
values are checked by building a ``Settings`` (one validation for the CLI, the flow and
prefect.yaml).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from .settings import DEVICES_HELP, GPU_REFINE_STEPS, Settings

_D = Settings.defaults()


def _common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("source", help="a folder or s3://bucket/prefix")
    sp.add_argument("destination", help="a folder or s3://bucket/prefix")
    sp.add_argument("--device", default=_D["device"], help=f"where to run the codec: {DEVICES_HELP} (default: {_D['device']})")
    sp.add_argument("--batch-size", type=int, default=_D["batch_size"], metavar="N",
                    help=f"images per Prefect task (default: {_D['batch_size']})")
    sp.add_argument("--parallel", type=int, default=_D["parallel"], metavar="N",
                    help="images a batch codes at once, sharing the torch threads (default: 0 = auto, one per thread "
                         "up to 4 on the CPU, 1 on CUDA or with --concurrency above 1)")
    sp.add_argument("--prefect", action=argparse.BooleanOptionalAction, default=None,
                    help="run as a Prefect flow, or (--no-prefect) the same job in a plain loop in this process with a "
                         "progress bar (default: the flow when a Prefect API is configured, PREFECT_API_URL; "
                         "otherwise the plain loop, which spares a temporary Prefect server ~10 s per run)")


def add_parsers(sub: Any, error: Callable[[str], None] | None = None) -> None:
    """Add ``bulk`` and ``bulk-decompress`` to the ``gancodec`` subcommands."""
    b = sub.add_parser("bulk", help="compress a bucket prefix or folder (s3://... or a path), as a Prefect flow or a plain loop",
                       description="Compress every image under SOURCE into <key>.gcx under DESTINATION (docs/bulk.md).")
    _common(b)
    g = b.add_mutually_exclusive_group()
    g.add_argument("--quality", "-q", type=float, help="quality from 1 (smallest) to 8 (best); default 4")
    g.add_argument("--bpp", type=float, help="target bits per pixel (searches the quality)")
    b.add_argument("--refine", type=int, default=_D["refine_steps"], metavar="STEPS",
                   help=f"search each tile's latents for STEPS gradient steps: smaller files, slower encodes "
                        f"(default: {GPU_REFINE_STEPS} on CUDA, 0 = off on the CPU)")
    b.add_argument("--fallback", action=argparse.BooleanOptionalAction, default=_D["fallback"],
                   help="store an image as WebP (a version-2 .gcx) when a WebP of no more bytes decodes more than 0.25 dB "
                        "PSNR better than the learned stream (default: on; not part of the setting, docs/bulk.md)")
    b.add_argument("--resume", action="store_true",
                   help="go on with the newest unfinished run of the same settings (no new listing; its done batches stay done)")
    b.add_argument("--psnr-floor", type=float, default=_D["psnr_floor"], metavar="DB",
                   help=f"verification: an output must decode at least this close to its source (default: {_D['psnr_floor']:g} dB)")
    b.add_argument("--tile-size", type=int, default=_D["tile_size"], help="tile side in pixels (multiple of 64; default 1024)")
    b.add_argument("--shard", default=_D["shard"], metavar="I/N", help="only the keys of shard I of N (a stable hash of the key)")
    b.add_argument("--concurrency", type=int, default=_D["concurrency"], metavar="N",
                   help=f"batches at once in this run (default: {_D['concurrency']}, which suits one GPU)")
    b.add_argument("--weights", default=_D["weights"], help="a weights file (default: the shipped weights)")
    b.add_argument("--recompress-other-models", action="store_true",
                   help="redo outputs made by other weights (e.g. an earlier release's); by default they are kept, "
                        "since they still decode (gancodec weights)")
    b.set_defaults(func=lambda a: cmd_bulk(a, error))

    d = sub.add_parser("bulk-decompress", help="decode every .gcx under a bucket prefix or folder back to PNG",
                       description="Decode every .gcx under SOURCE into a PNG under DESTINATION (a/b.jpg.gcx -> a/b.jpg.png).")
    _common(d)
    d.add_argument("--realism", action="store_true", help="use the GAN realism decoder")
    d.add_argument("--weights", default=None, help="a weights file (default: the weights each file names)")
    d.set_defaults(func=lambda a: cmd_bulk_decompress(a, error))


def settings_from_args(a: argparse.Namespace) -> Settings:
    return Settings(quality=a.quality, bpp=a.bpp, device=a.device, tile_size=a.tile_size, psnr_floor=a.psnr_floor, weights=a.weights,
                    refine_steps=a.refine, recompress_other_models=a.recompress_other_models, batch_size=a.batch_size,
                    shard=a.shard, concurrency=a.concurrency, fallback=a.fallback, parallel=a.parallel)


def _run(a: argparse.Namespace, settings: Any, error: Callable[[str], None] | None, **kw: Any) -> int:
    from .run import _one_line, _print_error, run_cli

    error = error or _print_error
    try:  # run_cli prints its own errors as one `gancodec: error: ...` line and returns 2
        return run_cli(a.source, a.destination, settings, use_prefect=a.prefect, error=error, **kw)
    except RuntimeError as exc:  # Prefect could not start its ephemeral server, and the like
        error(f"bulk: {_one_line(exc)}")
        return 1


def cmd_bulk(a: argparse.Namespace, error: Callable[[str], None] | None = None) -> int:
    from .run import _one_line, _print_error

    try:
        settings = settings_from_args(a)
    except ValueError as exc:
        (error or _print_error)(_one_line(exc))
        return 2
    return _run(a, settings, error, resume=a.resume)


def cmd_bulk_decompress(a: argparse.Namespace, error: Callable[[str], None] | None = None) -> int:
    from .run import _one_line, _print_error

    try:
        settings = Settings(device=a.device, batch_size=a.batch_size, weights=a.weights, parallel=a.parallel)
    except ValueError as exc:
        (error or _print_error)(_one_line(exc))
        return 2
    return _run(a, settings, error, decompress=True, realism=a.realism)


def main(argv: list[str] | None = None, *, decompress: bool = False) -> int:
    """``python flows/bulk_compress.py SRC DST ...``: the same options as ``gancodec bulk``."""
    import logging

    p = argparse.ArgumentParser(prog="bulk")
    sub = p.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    args = p.parse_args(["bulk-decompress" if decompress else "bulk", *(argv if argv is not None else __import__("sys").argv[1:])])
    if args.prefect is None:  # flows/*.py run the flow (ephemeral when no API is configured)
        args.prefect = True
    logging.basicConfig(level=logging.WARNING, format="gancodec: %(message)s")
    return args.func(args)

"""The ``gancodec`` command: compress, decompress, info, weights, bulk, bulk-decompress.

Errors are printed on one line (``gancodec: error: ...``) with no traceback, and the exit status
is non-zero; outputs are written atomically, so a failure never leaves a partial file. An output
that exists is never replaced without ``--force``, and every destination is checked (exists?
writable?) before any image is coded. Heavy modules (torch, the codec) load only once a command
runs, so ``gancodec --help`` is quick.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from .errors import GancodecError


class _Fail(Exception):
    """A one-line error for the user."""


def _collect(inputs: list[str], suffixes: set[str]) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for files and folders given on the command line."""
    found = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in suffixes)
            found += [(q, q.relative_to(p)) for q in files]
        elif p.exists():
            found.append((p, Path(p.name)))
        else:
            raise _Fail(f"{p}: no such file or folder")
    if not found:
        raise _Fail(f"no input files found in {', '.join(inputs)}")
    return found


def _outputs(pairs: list[tuple[Path, Path]], out: str, suffix: str, rename) -> list[tuple[Path, Path]]:
    """(src, dst) pairs: ``out`` itself for one input and an ``out`` ending in ``suffix``; else
    files under the folder ``out``, named by ``rename`` (the naming rule bulk uses too)."""
    o = Path(out)
    if len(pairs) == 1 and o.suffix.lower() == suffix and not o.is_dir():
        return [(pairs[0][0], o)]
    if o.exists() and not o.is_dir():
        raise _Fail(f"{o}: exists and is not a folder; give a folder for several inputs")
    jobs = [(src, o / rename(rel.as_posix())) for src, rel in pairs]
    clash = [dst for dst, n in Counter(dst for _, dst in jobs).items() if n > 1]
    if clash:
        raise _Fail(f"{clash[0]}: several inputs would be written to it; give them different names or folders")
    return jobs


def _check_destinations(jobs: list[tuple[Path, Path]], force: bool) -> None:
    """Before any work: refuse outputs that exist (unless ``force``) or cannot be written."""
    from .fsutil import check_writable

    existing = [dst for _, dst in jobs if dst.exists() or dst.is_symlink()]
    folders = [dst for dst in existing if dst.is_dir()]
    if folders:
        raise _Fail(f"{folders[0]}: is a folder, where an output file would go; rename or remove it")
    if existing and not force:
        more = f" (and {len(existing) - 1} more output(s))" if len(existing) > 1 else ""
        raise _Fail(f"{existing[0]}: exists{more}; nothing was written. Pass --force to overwrite, or choose another -o")
    checked: set[Path] = set()
    for _, dst in jobs:  # one probe file per destination folder (made if missing)
        if dst.parent not in checked:
            checked.add(dst.parent)
            try:
                check_writable(dst)
            except GancodecError as exc:
                raise _Fail(str(exc)) from None


def _progress(total: int, slow: bool = False):
    from .progress import progress_bar

    return progress_bar(total >= 2 or slow, stderr=False)


def _run_jobs(jobs: list[tuple[Path, Path]], label: str, one, slow: bool = False) -> int:
    """Run ``one(src, dst, progress)`` per job with a progress bar (shown for one file too when
    ``slow``; ``one`` may add its own bars to ``progress``); report each failure on one line, go on."""
    failed = 0
    with _progress(len(jobs), slow) as progress:
        task = progress.add_task(label, total=len(jobs))
        for src, dst in jobs:
            try:
                message = one(src, dst, progress)
                if message:
                    progress.console.print(message)
            except (_Fail, GancodecError) as exc:
                failed += 1
                _error(str(exc))
            progress.advance(task)
    if failed and len(jobs) > 1:
        _error(f"{failed} of {len(jobs)} files failed")
    return 1 if failed else 0


def cmd_compress(a: argparse.Namespace) -> int:
    from .codec import BPP_REFINED_ENCODES, compress, search_steps
    from .fsutil import atomic_write_bytes

    def search_bar(src: Path, progress):
        """A bar over the latent-search steps of one file (with --bpp: up to 3 searched encodes)."""
        total = None
        try:
            from PIL import Image

            with Image.open(src) as im:
                total = search_steps(im.height, im.width, a.refine, a.tile_size)
        except Exception:  # noqa: BLE001 - compress() reports unreadable images properly
            pass
        if total is not None and a.bpp is not None:
            total *= BPP_REFINED_ENCODES
        return progress.add_task(f"searching latents of {src.name}", total=total)

    def one(src: Path, dst: Path, progress) -> str | None:
        t = time.perf_counter()
        task = search_bar(src, progress) if a.refine else None
        try:
            data = compress(src, quality=a.quality, bpp=a.bpp, device=a.device, tile_size=a.tile_size,
                            refine_steps=a.refine, progress=None if task is None else lambda n: progress.advance(task, n),
                            fallback=a.fallback)
        finally:
            if task is not None:
                progress.remove_task(task)
        atomic_write_bytes(dst, data, overwrite=a.force)
        kind = "webp fallback" if data[4:5] == b"\x02" else "learned"
        return f"{src} -> {dst}: {len(data)} bytes ({kind}) in {time.perf_counter() - t:.2f} s" if a.verbose else None

    from .data import IMAGE_SUFFIXES, compressed_name

    jobs = _outputs(_collect(a.inputs, IMAGE_SUFFIXES), a.output, ".gcx", compressed_name)
    _check_destinations(jobs, a.force)
    return _run_jobs(jobs, "compressing", one, slow=a.refine > 0)


def cmd_decompress(a: argparse.Namespace) -> int:
    import numpy as np

    from .codec import decompress
    from .data import decompressed_name
    from .data.imageio import save_image

    jobs = _outputs(_collect(a.inputs, {".gcx"}), a.output, Path(a.output).suffix.lower() or ".png", decompressed_name)
    _check_destinations(jobs, a.force)

    def one(src: Path, dst: Path, _progress) -> None:
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise _Fail(f"{src}: cannot read ({exc.strerror})") from None
        try:
            img = decompress(data, realism=a.realism, device=a.device)
        except GancodecError as exc:
            raise _Fail(f"{src}: {exc}") from None
        save_image(np.asarray(img)[..., None] if img.mode == "L" else np.asarray(img), dst, overwrite=a.force)

    return _run_jobs(jobs, "decompressing", one)


def cmd_info(a: argparse.Namespace) -> int:
    from .bitstream import read_header  # light: a bad file fails before the weights load

    p = Path(a.file)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise _Fail(f"{p}: cannot read ({exc.strerror})") from None
    try:
        h = read_header(data)
    except GancodecError as exc:
        raise _Fail(f"{p}: {exc}") from None
    if h.version != 1:  # a classical payload (the WebP fallback): no model, no tiles
        rows = [("file", str(p)), ("format", f"gcx version {h.version}"), ("payload", f"{h.payload} (fallback)"),
                ("model needed", "no (decodes without weights)"), ("size", f"{h.width}x{h.height}"),
                ("channels", f"{h.channels} ({'grayscale' if h.channels == 1 else 'RGB'})"), ("bit depth", str(h.bit_depth)),
                ("payload bytes", str(h.payload_length)), ("bytes", str(len(data))), ("bpp", f"{len(data) * 8 / h.pixels:.4f}")]
        _print_rows(rows)
        return 0
    from .weights import default_model_id  # ids from file hashes: no torch, no model
    from .weights.history import find_weights, missing_weights_hint, version_of

    release = version_of(h.model_id)
    current = default_model_id()
    if current == h.model_id:
        known = "yes (this install's weights)"
    else:
        found = find_weights(h.model_id)
        known = f"yes ({found})" if found else f"no: {missing_weights_hint(h.model_id)}"
        if current is None and not found:
            known = "unknown (the default weights are missing or damaged)"
    rows = [("file", str(p)), ("format", "gcx version 1"), ("payload", "learned"), ("model id", h.model_id),
            ("weights version", release["version"] if release else "not a gancodec release"), ("model available", known),
            ("size", f"{h.width}x{h.height}"), ("channels", f"{h.channels} ({'grayscale' if h.channels == 1 else 'RGB'})"),
            ("bit depth", str(h.bit_depth)), ("quality", f"{h.quality:g}"), ("tile size", f"{h.tile_size} px, halo {h.halo} px"),
            ("tiles", str(h.n_tiles)), ("bytes", str(len(data))), ("bpp", f"{len(data) * 8 / h.pixels:.4f}")]
    _print_rows(rows)
    return 0


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def cmd_weights(a: argparse.Namespace) -> int:
    from .weights import load_model
    from .weights.history import fetch, find_weights, search_folders, versions

    if a.action == "get":
        for name in a.names:
            print(fetch(name, a.to))
        return 0
    current = load_model().model_id
    rows = [("version", "shipped", "model id", "on this machine")]
    for v in versions():
        found = find_weights(v["model_id"])
        where = "this install's weights" if v["model_id"] == current else str(found) if found else "no (gancodec weights get " + v["version"] + ")"
        rows.append((v["version"], v["shipped"], v["model_id"], where))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    print("searched: " + ", ".join(str(f) for f in search_folders()))
    return 0


def _error(msg: str) -> None:
    print(f"gancodec: error: {msg}", file=sys.stderr)


def _strength(text: str) -> float:
    """argparse type for --realism: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"realism strength must be a number from 0 to 1, got {text!r}")
    return value


def _refine_steps(text: str) -> int:
    """argparse type for --refine: a whole number of search steps."""
    from .codec import MAX_REFINE_STEPS

    if not text.isdigit() or int(text) > MAX_REFINE_STEPS:
        raise argparse.ArgumentTypeError(f"refine steps must be a whole number from 0 to {MAX_REFINE_STEPS}, got {text!r}")
    return int(text)


def fallback_arg(sp: argparse.ArgumentParser) -> None:
    """--fallback/--no-fallback: the WebP safety net (gancodec.fallback), on by default."""
    sp.add_argument("--fallback", action=argparse.BooleanOptionalAction, default=True,
                    help="store an image as WebP (a version-2 .gcx) when a WebP of no more bytes decodes more than "
                         "0.25 dB PSNR better than the learned stream, as on screenshots and documents (default: on)")


DEVICE_HELP = "auto (CUDA when present, else the CPU), cpu, cuda, cuda:1 ... (default: auto)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gancodec", description="A learned image codec: compress images to .gcx and back.")
    p.add_argument("--version", action="version", version="gancodec 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def refine_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--refine", type=_refine_steps, default=0, metavar="STEPS",
                        help="search each tile's latents for STEPS gradient steps: smaller files, slower encodes "
                             "(100 is a good start; default 0, off)")

    def force_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--force", "-f", action="store_true",
                        help="overwrite outputs that exist (by default they are kept and the command fails before any work)")

    def rate_args(sp: argparse.ArgumentParser) -> None:
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--quality", "-q", type=float, help="quality from 1 (smallest) to 8 (best); default 4")
        g.add_argument("--bpp", type=float, help="target bits per pixel (searches the quality)")

    c = sub.add_parser("compress", help="images (files or folders) -> .gcx")
    c.add_argument("inputs", nargs="+", metavar="IN")
    c.add_argument("-o", "--output", required=True, metavar="OUT", help="a .gcx file (one input) or a folder")
    rate_args(c)
    c.add_argument("--device", default=None, help=DEVICE_HELP)
    c.add_argument("--tile-size", type=int, default=None, help="tile side in pixels (multiple of 64; default 1024)")
    refine_arg(c)
    fallback_arg(c)
    force_arg(c)
    c.add_argument("-v", "--verbose", action="store_true")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help=".gcx (files or folders) -> PNG")
    d.add_argument("inputs", nargs="+", metavar="IN")
    d.add_argument("-o", "--output", required=True, metavar="OUT", help="an image file (one input) or a folder")
    d.add_argument("--realism", nargs="?", type=_strength, const=1.0, default=0.0, metavar="STRENGTH",
                   help="use the GAN realism decoder; optional strength 0..1 blends it with the fidelity one (default 1); "
                        "a WebP fallback file has none: it decodes as WebP, with a warning")
    d.add_argument("--device", default=None, help=DEVICE_HELP)
    force_arg(d)
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", help="print a .gcx file's header")
    i.add_argument("file")
    i.set_defaults(func=cmd_info)

    w = sub.add_parser("weights", help="list the shipped weights versions, or get a retired one to decode old files")
    wsub = w.add_subparsers(dest="action", required=True, metavar="ACTION")
    wsub.add_parser("list", help="every shipped version and where it is on this machine")
    wg = wsub.add_parser("get", help="write retired weights from this checkout's git history into the weights cache")
    wg.add_argument("names", nargs="+", metavar="VERSION", help="a version (v1.4) or a model id")
    wg.add_argument("--to", default=None, metavar="DIR", help="folder to write to (default: ~/.cache/gancodec/weights)")
    w.set_defaults(func=cmd_weights)

    from .bulk.cli import add_parsers as add_bulk_parsers  # light: no Prefect, torch or pandas import

    add_bulk_parsers(sub, _error)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import logging  # after parsing: --help and usage errors never pay for it

    logging.basicConfig(level=logging.WARNING, format="gancodec: %(message)s")

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"gancodec: warning: {message}", file=sys.stderr)

    warnings.showwarning = show_warning
    try:
        return args.func(args)
    except (_Fail, GancodecError, ValueError) as exc:
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

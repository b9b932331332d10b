"""``make demo``: compress a few bundled sample photos with the shipped weights and print a table.

The photos are scikit-image's bundled test images (installed with the package, no download).
Outputs land in ``demo-out/``: the ``.gcx`` files and their decoded PNGs, to look at.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SAMPLES = {  # name -> skimage.data loader
    "astronaut": "astronaut",
    "coffee": "coffee",
    "chelsea": "chelsea",
    "rocket": "rocket",
    "camera": "camera",
}


def sample_images() -> dict[str, np.ndarray]:
    from skimage import data

    return {name: getattr(data, loader)() for name, loader in SAMPLES.items()}


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from . import compress, decompress, read_header
    from .eval.baselines import match_bpp
    from .eval.metrics import psnr
    from .fsutil import atomic_write_bytes
    from .weights import load_model

    p = argparse.ArgumentParser(prog="python -m gancodec.demo", description=__doc__.splitlines()[0])
    p.add_argument("--quality", type=float, default=None, help="quality 1..8 (default: the codec's default)")
    p.add_argument("--out", default="demo-out")
    a = p.parse_args(argv)

    console = Console(width=None if Console().is_terminal else 110)
    out = Path(a.out)
    lm = load_model()
    console.print(f"gancodec demo: weights {lm.path.name} (model id {lm.model_id[:12]}...), output in {out}/")
    table = Table(title="gancodec on bundled sample images (real file bytes)")
    for col in ("file", "size", "bytes", "bpp", "PSNR dB", "encode s", "decode s", "JPEG PSNR @ bpp"):
        table.add_column(col, justify="left" if col == "file" else "right")
    with console.status("compressing...") as status:
        for name, img in sample_images().items():
            status.update(f"compressing {name}...")
            t0 = time.perf_counter()
            data = compress(img, quality=a.quality)
            t1 = time.perf_counter()
            decoded = np.asarray(decompress(data))
            t2 = time.perf_counter()
            atomic_write_bytes(out / f"{name}.gcx", data)
            from PIL import Image

            Image.fromarray(decoded).save(out / f"{name}.png")
            h = read_header(data)
            rate = len(data) * 8 / (h.height * h.width)
            ref = img if img.ndim == 3 else img[:, :, None]
            ours = psnr(ref, decoded if decoded.ndim == 3 else decoded[:, :, None])
            jpeg = match_bpp("jpeg420", img if img.ndim == 3 else np.dstack([img] * 3), rate)
            jpeg_text = f"{jpeg.psnr:.2f} @ {jpeg.bpp:.3f}" + (" (min size)" if jpeg.over_target else "")
            table.add_row(name, f"{h.width}x{h.height}{' gray' if h.channels == 1 else ''}", str(len(data)),
                          f"{rate:.3f}", f"{ours:.2f}", f"{t1 - t0:.2f}", f"{t2 - t1:.2f}", jpeg_text)
    console.print(table)
    console.print("JPEG column: Pillow JPEG 4:2:0 at the highest quality whose file is no larger (bpp shown).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

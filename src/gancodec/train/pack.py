"""Pack training images into a small folder of random crops under a size budget.

    python -m gancodec.train.pack --data DIR [DIR...] --out crops/ [--crop 256] [--max-mib 48]
        [--format png|jpeg] [--jpeg-quality 95]

PNG is lossless; JPEG (4:4:4, quality 95 by default) fits about 2.5x more crops in the same
budget, at the cost of faint coding noise in the training targets.

For a lent GPU whose working-tree transfer is capped (64 MiB here): the crops travel with the
repo, and ``python -m gancodec.train --data crops/`` trains on them like on any image folder.
Crops are drawn evenly over images (weighted by area), reproducibly from ``--seed``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from .crops import list_images


def pack(sources: list[str], out: str | Path, crop: int = 256, max_bytes: int = 48 << 20, seed: int = 0,
         fmt: str = "png", jpeg_quality: int = 95) -> tuple[int, int]:
    """Write crops until the next one would pass ``max_bytes``; return (crops, bytes)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = []
    for p in list_images(sources):
        with Image.open(p) as img:
            arr = np.asarray(img.convert("RGB"))
        if min(arr.shape[:2]) >= crop:
            images.append(arr)
    if not images:
        raise ValueError(f"no image is at least {crop}x{crop}")
    area = np.array([a.shape[0] * a.shape[1] for a in images], dtype=np.float64)
    total, n = 0, 0
    while True:
        img = images[rng.choice(len(images), p=area / area.sum())]
        y, x = rng.integers(0, img.shape[0] - crop + 1), rng.integers(0, img.shape[1] - crop + 1)
        buf = io.BytesIO()
        patch = Image.fromarray(img[y : y + crop, x : x + crop])
        if fmt == "jpeg":
            patch.save(buf, "JPEG", quality=jpeg_quality, subsampling=0)
        else:
            patch.save(buf, "PNG", optimize=True)
        if total + buf.tell() > max_bytes:
            return n, total
        (out / f"crop{n:05d}.{'jpg' if fmt == 'jpeg' else 'png'}").write_bytes(buf.getvalue())
        total += buf.tell()
        n += 1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m gancodec.train.pack", description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--max-mib", type=float, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("png", "jpeg"), default="png")
    p.add_argument("--jpeg-quality", type=int, default=95)
    a = p.parse_args(argv)
    n, size = pack(a.data, a.out, a.crop, int(a.max_mib * (1 << 20)), a.seed, a.format, a.jpeg_quality)
    print(f"{n} crops of {a.crop}x{a.crop}, {size / (1 << 20):.1f} MiB in {a.out}")


if __name__ == "__main__":
    main()

"""What SSIMULACRA2 penalises in the fidelity decoder's output (issue 5's perceptual goal).

    python benchmarks/ssimulacra2_probe.py [--images ../shared/datasets/kodak] [--limit 6] [--qualities 2 4]

For each image and quality: PSNR and SSIMULACRA2 of
- ``decoded``: the fidelity decoder's output;
- ``chroma-smoothed``: the same with Cb/Cr Gaussian-blurred (sigma 1.5), to see whether colour noise costs the score;
- ``blurred-more``: the same with all channels blurred (sigma 0.5), to see whether it is too sharp;
- ``original-blurred``: the original blurred (sigma 1.2), a clean image with detail removed and no false structure;
- WebP and AVIF 4:4:4 at the highest setting whose file is no larger than ours.
Means over images are printed per quality. Nothing is trained; it only measures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

import gancodec
from gancodec.eval import baselines, metrics

ROOT = Path(__file__).resolve().parents[1]


def chroma_smoothed(img: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    for c in (1, 2):
        ycc[..., c] = cv2.GaussianBlur(ycc[..., c], (0, 0), sigma)
    return cv2.cvtColor(np.clip(ycc.round(), 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def blurred(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--qualities", type=float, nargs="+", default=[2.0, 4.0])
    p.add_argument("--baselines", nargs="*", default=["webp", "avif"])
    a = p.parse_args()
    paths = sorted(Path(a.images).glob("*.png"))[: a.limit]
    if not paths:
        sys.exit(f"no PNG images in {a.images}")
    rows = []
    for path in paths:
        x = np.asarray(Image.open(path).convert("RGB"))
        for q in a.qualities:
            data = gancodec.compress(x, quality=q, fallback=False)
            y = np.asarray(gancodec.decompress(data))
            bpp = len(data) * 8 / (x.shape[0] * x.shape[1])
            variants = {"decoded": y, "chroma-smoothed": chroma_smoothed(y), "blurred-more": blurred(y, 0.5),
                        "original-blurred": blurred(x, 1.2)}
            for c in a.baselines:
                m = baselines.match_bpp(c, x, bpp)
                codec = baselines.get_codec(c)
                variants[f"{c} ({m.bpp:.2f} bpp)" if len(paths) == 1 else c] = codec.decode(codec.encode(x, m.setting))
            for name, z in variants.items():
                m = metrics.compute_metrics(x, z, len(data))
                rows.append({"image": path.stem, "quality": q, "bpp": bpp, "variant": name, "psnr": m.psnr,
                             "ssimulacra2": m.ssimulacra2})
        print(f"{path.stem} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    table = df.groupby(["quality", "variant"], sort=False)[["bpp", "psnr", "ssimulacra2"]].mean().reset_index()
    print(f"{len(paths)} images; bpp is ours (the baselines use no more)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()

"""Kodak quality of the realism decoder vs the fidelity decoder on the same streams (issue 5).

    python benchmarks/realism_kodak.py [--images ../shared/datasets/kodak] [--limit 24]
        [--qualities 1 2.5 4] [--strengths 0 0.5 1] [--weights W.pt] [--realism-weights R.pt]
        [--json realism.json]

Each image is encoded once per quality; the same bytes are decoded at every realism strength
(0 = the fidelity decoder). Reports mean bpp (real bytes), PSNR, MS-SSIM and SSIMULACRA2
(weight-free perceptual score, higher is better) per quality and strength, and WebP measured
here at equal bpp (SSIMULACRA2 and PSNR interpolated in log-bpp over a quality sweep).
The goal: realism scores better than fidelity and WebP, within ~2 dB PSNR of fidelity.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

import gancodec
from gancodec.eval import baselines, metrics, ours

ROOT = Path(__file__).resolve().parents[1]


def _measure(x: np.ndarray, x_hat: np.ndarray, num_bytes: int) -> dict:
    m = metrics.compute_metrics(x, x_hat, num_bytes)
    return {"bpp": m.bpp, "psnr": m.psnr, "ms_ssim": m.ms_ssim, "ssimulacra2": m.ssimulacra2}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--qualities", type=float, nargs="+", default=[1.0, 2.5, 4.0])
    p.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--weights", default=None)
    p.add_argument("--realism-weights", default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    paths = sorted(Path(a.images).glob("*.png"))[: a.limit]
    if not paths:
        sys.exit(f"no PNG images in {a.images}")
    images = {q.stem: np.asarray(Image.open(q).convert("RGB")) for q in paths}

    rows = []
    for name, x in images.items():
        for q in a.qualities:
            data = gancodec.compress(x, quality=q, weights=a.weights)
            for s in a.strengths:
                out = gancodec.decompress(data, weights=a.weights, realism=s if s > 0 else False,
                                          realism_weights=a.realism_weights)
                rows.append({"image": name, "quality": q, "strength": s, **_measure(x, np.asarray(out), len(data))})
        print(f"{name} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    table = df.groupby(["quality", "strength"], as_index=False)[["bpp", "psnr", "ms_ssim", "ssimulacra2"]].mean()

    webp = baselines.rd_curve(baselines.sweep("webp", images, settings=(5, 10, 20, 30, 40, 50, 60, 70, 80, 90),
                                               perceptual=True))
    for key in ("psnr", "ssimulacra2"):  # WebP at our bpp, linear in log bpp; NaN outside its range
        table[f"webp_{key}"] = ours.psnr_at(table["bpp"].to_numpy(), webp["bpp"].to_numpy(), webp[key].to_numpy())

    print(f"Kodak, {len(images)} images; strength 0 = fidelity decoder")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if a.json:
        cmd = "python benchmarks/realism_kodak.py " + " ".join(sys.argv[1:])
        Path(a.json).write_text(json.dumps({"images": len(images), "rows": table.to_dict("records"),
                                            "command": cmd}, indent=2))


if __name__ == "__main__":
    main()

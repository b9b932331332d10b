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
from gancodec.eval import baselines, metrics

ROOT = Path(__file__).resolve().parents[1]


def _measure(x: np.ndarray, x_hat: np.ndarray) -> dict:
    return {"psnr": metrics.psnr(x, x_hat), "ms_ssim": metrics.ms_ssim(x, x_hat),
            "ssimulacra2": metrics.ssimulacra2(x, x_hat)}


def _at(bpp: float, curve: pd.DataFrame, key: str) -> float:
    """``key`` of a codec's curve at ``bpp``, interpolated in log-bpp; NaN outside its range."""
    c = curve.sort_values("bpp")
    lb = np.log(c["bpp"].to_numpy())
    if not lb[0] <= np.log(bpp) <= lb[-1]:
        return float("nan")
    return float(np.interp(np.log(bpp), lb, c[key].to_numpy()))


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
                rows.append({"image": name, "quality": q, "strength": s,
                             "bpp": metrics.bpp(len(data), *x.shape[:2]), **_measure(x, np.asarray(out))})
        print(f"{name} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    table = df.groupby(["quality", "strength"], as_index=False)[["bpp", "psnr", "ms_ssim", "ssimulacra2"]].mean()

    codec = baselines.get_codec("webp")
    webp_rows = []
    for name, x in images.items():
        for setting in (5, 10, 20, 30, 40, 50, 60, 70, 80, 90):
            data = codec.encode(x, setting)
            webp_rows.append({"setting": setting, "bpp": metrics.bpp(len(data), *x.shape[:2]),
                              **_measure(x, codec.decode(data))})
    webp = pd.DataFrame(webp_rows).groupby("setting", as_index=False).mean(numeric_only=True)
    table["webp_psnr"] = [_at(b, webp, "psnr") for b in table["bpp"]]
    table["webp_ssimulacra2"] = [_at(b, webp, "ssimulacra2") for b in table["bpp"]]

    print(f"Kodak, {len(images)} images; strength 0 = fidelity decoder")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if a.json:
        cmd = "python benchmarks/realism_kodak.py " + " ".join(sys.argv[1:])
        Path(a.json).write_text(json.dumps({"images": len(images), "rows": table.to_dict("records"),
                                            "command": cmd}, indent=2))


if __name__ == "__main__":
    main()

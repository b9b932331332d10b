"""Kodak quality of the realism decoder vs the fidelity decoder on the same streams (issue 5).

    python benchmarks/realism_kodak.py [--images ../shared/datasets/kodak] [--limit 24]
        [--qualities 1 2.5 4] [--strengths 0 0.5 1] [--weights W.pt] [--realism-weights R.pt]
        [--baselines webp avif] [--json realism.json] [--crops DIR] [--crop-images 3]

Each image is encoded once per quality; the same bytes are decoded at every realism strength
(0 = the fidelity decoder). Reports mean bpp (real bytes), PSNR, MS-SSIM and SSIMULACRA2
(weight-free perceptual score, higher is better) per quality and strength, and each baseline
(WebP, AVIF 4:4:4) measured here at equal bpp (SSIMULACRA2 and PSNR interpolated in log-bpp
over a quality sweep). The goal: realism scores better than fidelity, WebP and AVIF, within
~2 dB PSNR of fidelity.

``--crops DIR`` also writes side-by-side PNGs for the first ``--crop-images`` images at each
quality: original | fidelity | realism (the largest strength) | each baseline at the highest
setting whose file is no larger, on the 192 x 192 window with the most texture.
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
from gancodec.eval.panels import side_by_side, texture_window

ROOT = Path(__file__).resolve().parents[1]


def _measure(x: np.ndarray, x_hat: np.ndarray, num_bytes: int) -> dict:
    m = metrics.compute_metrics(x, x_hat, num_bytes)
    return {"bpp": m.bpp, "psnr": m.psnr, "ms_ssim": m.ms_ssim, "ssimulacra2": m.ssimulacra2}


CROP = 192


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--qualities", type=float, nargs="+", default=[1.0, 2.5, 4.0])
    p.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--weights", default=None)
    p.add_argument("--realism-weights", default=None)
    p.add_argument("--baselines", nargs="*", default=["webp", "avif"])
    p.add_argument("--json", default=None)
    p.add_argument("--crops", default=None, help="folder for side-by-side crop PNGs")
    p.add_argument("--crop-images", type=int, default=3)
    a = p.parse_args()
    available = baselines.availability()
    codecs = [c for c in a.baselines if available.get(c) == "ok"]
    for c in set(a.baselines) - set(codecs):
        print(f"skipping {c}: {available.get(c, 'unknown codec')}", file=sys.stderr)
    crops = Path(a.crops) if a.crops else None
    if crops:
        crops.mkdir(parents=True, exist_ok=True)
    paths = sorted(Path(a.images).glob("*.png"))[: a.limit]
    if not paths:
        sys.exit(f"no PNG images in {a.images}")
    images = {q.stem: np.asarray(Image.open(q).convert("RGB")) for q in paths}

    rows = []
    for n, (name, x) in enumerate(images.items()):
        corner = texture_window(x, CROP)
        for q in a.qualities:
            data = gancodec.compress(x, quality=q, weights=a.weights, fallback=False)
            decoded = {}
            for s in a.strengths:
                out = np.asarray(gancodec.decompress(data, weights=a.weights, realism=s if s > 0 else False,
                                                     realism_weights=a.realism_weights))
                decoded[s] = out
                rows.append({"image": name, "quality": q, "strength": s, **_measure(x, out, len(data))})
            if crops and n < a.crop_images:
                bpp = len(data) * 8 / (x.shape[0] * x.shape[1])
                panels = [x, decoded[min(decoded)], decoded[max(decoded)]]
                labels = ["original", f"fidelity {bpp:.3f} bpp", f"realism {max(decoded):g}"]
                for c in codecs:
                    m = baselines.match_bpp(c, x, bpp)
                    panels.append(baselines.get_codec(c).decode(baselines.get_codec(c).encode(x, m.setting)))
                    labels.append(f"{c} {m.bpp:.3f} bpp")
                path = crops / f"{name}_q{q:g}.png"
                Image.fromarray(side_by_side(panels, corner, CROP)).save(path)
                print(f"{path}: " + " | ".join(labels), file=sys.stderr, flush=True)
        print(f"{name} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    table = df.groupby(["quality", "strength"], as_index=False)[["bpp", "psnr", "ms_ssim", "ssimulacra2"]].mean()

    for c in codecs:
        curve = baselines.rd_curve(baselines.sweep(c, images, settings=(5, 10, 20, 30, 40, 50, 60, 70, 80, 90),
                                                   perceptual=True))
        for key in ("psnr", "ssimulacra2"):  # the baseline at our bpp, linear in log bpp; NaN outside its range
            table[f"{c}_{key}"] = ours.psnr_at(table["bpp"].to_numpy(), curve["bpp"].to_numpy(), curve[key].to_numpy())

    print(f"Kodak, {len(images)} images; strength 0 = fidelity decoder")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if a.json:
        cmd = "python benchmarks/realism_kodak.py " + " ".join(sys.argv[1:])
        Path(a.json).write_text(json.dumps({"images": len(images), "rows": table.to_dict("records"),
                                            "command": cmd}, indent=2))


if __name__ == "__main__":
    main()

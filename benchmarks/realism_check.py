"""Issue 19's check of a realism decoder on a set of photos (``gancodec.eval.realism_eval``).

    python benchmarks/realism_check.py [--images DIR | --list FILE] [--limit 8] [--center-crop 768x512]
        [--qualities 1 2] [--strengths 0 0.5 1] [--realism-weights R.pt] [--baselines webp avif]
        [--no-ssimulacra2] [--json out.json] [--crops DIR] [--crop-windows NAME:Y:X ...]

Prints, per quality and decoder (fidelity, realism at each strength, the fid+noise control, and
each baseline at no more bytes), mean bpp / PSNR / MS-SSIM / SSIMULACRA2 / corr and the set's
Laplacian-patch SWD and spectrum distance, then the check (realism SWD <= 0.7 x fidelity's and
below every baseline's, PSNR within 1.5 dB of fidelity, corr > 0). ``--crops`` writes
original | fidelity | realism | baselines side by side on the most textured 160 px window of
each image and on the given ``NAME:Y:X`` windows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from gancodec.eval import baselines
from gancodec.eval.panels import side_by_side, texture_window
from gancodec.eval.realism_eval import check, decoder_name, realism_table

ROOT = Path(__file__).resolve().parents[1]
CROP = 160


def _load(a) -> dict[str, np.ndarray]:
    paths = [Path(p.strip()) for p in Path(a.list).read_text().split()] if a.list else sorted(Path(a.images).glob("*.png"))
    paths = paths[: a.limit]
    if not paths:
        sys.exit("no images")
    out = {}
    for p in paths:
        x = np.asarray(Image.open(p).convert("RGB"))
        if a.center_crop:
            w, h = (int(v) for v in a.center_crop.split("x"))
            if x.shape[0] >= h and x.shape[1] >= w:
                i, j = (x.shape[0] - h) // 2, (x.shape[1] - w) // 2
                x = np.ascontiguousarray(x[i:i + h, j:j + w])
        out[p.stem] = x
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--list", default=None, help="a file of image paths (one per line) instead of --images")
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--center-crop", default=None, help="WxH: the centre of larger images (e.g. 768x512)")
    p.add_argument("--qualities", type=float, nargs="+", default=[1.0, 2.0])
    p.add_argument("--strengths", type=float, nargs="+", default=[0.0, 1.0])
    p.add_argument("--weights", default=None)
    p.add_argument("--realism-weights", default=None)
    p.add_argument("--baselines", nargs="*", default=["webp", "avif"])
    p.add_argument("--no-ssimulacra2", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--crops", default=None)
    p.add_argument("--crop-windows", nargs="*", default=[], help="NAME:Y:X windows to crop (besides the most textured)")
    a = p.parse_args()
    available = baselines.availability()
    codecs = [c for c in a.baselines if available.get(c) == "ok"]
    for c in set(a.baselines) - set(codecs):
        print(f"skipping {c}: {available.get(c, 'unknown codec')}", file=sys.stderr)
    images = _load(a)
    windows: dict[str, list[tuple[int, int]]] = {}
    for w in a.crop_windows:
        name, y, x = w.split(":")
        windows.setdefault(name, []).append((int(y), int(x)))
    crops = Path(a.crops) if a.crops else None
    if crops:
        crops.mkdir(parents=True, exist_ok=True)
    top = decoder_name(max(a.strengths))

    def on_image(name, q, outs, sizes):
        x = images[name]
        if crops:
            order = ["fidelity", top] + codecs
            for n, corner in enumerate([texture_window(x, CROP)] + windows.get(name, [])):
                path = crops / f"{name}_q{q:g}_{'texture' if n == 0 else f'w{n}'}.png"
                Image.fromarray(side_by_side([x] + [outs[k] for k in order], corner, CROP)).save(path)
                print(f"{path}: original | " + " | ".join(f"{k} {sizes[k] * 8 / x.shape[0] / x.shape[1]:.3f} bpp"
                                                      for k in order), file=sys.stderr, flush=True)
        print(f"{name} q{q:g} done", file=sys.stderr, flush=True)

    _, table = realism_table(images, a.qualities, weights=a.weights, realism_weights=a.realism_weights,
                             strengths=a.strengths, codecs=codecs, perceptual=not a.no_ssimulacra2, on_image=on_image)
    print(f"{len(images)} images; baselines at no more bytes than ours")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    verdict = check(table, codecs, top)
    print(json.dumps(verdict, indent=1))
    if a.json:
        cmd = "python benchmarks/realism_check.py " + " ".join(sys.argv[1:])
        Path(a.json).write_text(json.dumps({"images": list(images), "rows": table.to_dict("records"), "check": verdict,
                                            "command": cmd}, indent=2))


if __name__ == "__main__":
    main()

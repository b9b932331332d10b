"""What bfloat16 inference costs in quality and buys in time: float32 and bfloat16 on the same images.

    python benchmarks/precision_kodak.py [--images ../shared/datasets/kodak] [--limit 24]
        [--qualities 1 2 3 4 5 6 7 8] [--classes] [--threads 2] [--json out.json]

Every image is encoded and decoded with ``GANCODEC_PRECISION=float32`` and ``=bfloat16``,
interleaved in this one process (the machines here are noisy: only the ratios mean much), plain
encodes (no fallback). Prints per quality each precision's mean bpp (real bytes) and PSNR, the
BD-rate (PSNR) of bfloat16 against float32 over the qualities, the worst PSNR change of any
image at any quality, and the bf16/f32 time ratios. ``--classes`` adds the per-class test images
of the synthesize stage (``data/synthetic/tests.csv``; made by ``dvc repro synthesize``, or
generated here with the stage's params when absent): the mean PSNR change at equal bytes per class.
On a CPU without native bf16, bfloat16 is emulated: the quality numbers still hold, the times do not.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import gancodec
from gancodec.eval.bdrate import bd_psnr, bd_rate
from gancodec.eval.metrics import psnr
from gancodec.models.inference import ENV_PRECISION

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("float32", "bfloat16")


def code(img: np.ndarray, quality: float, precision: str) -> tuple[int, float, float, float]:
    """(bytes, PSNR, encode s, decode s) of a plain encode and decode at ``precision``."""
    os.environ[ENV_PRECISION] = precision
    t = time.perf_counter()
    data = gancodec.compress(img, quality=quality, fallback=False, device="cpu")
    t1 = time.perf_counter()
    out = np.asarray(gancodec.decompress(data, device="cpu"))
    t2 = time.perf_counter()
    return len(data), psnr(img, out), t1 - t, t2 - t1


def class_images() -> dict[str, list[np.ndarray]]:
    table = ROOT / "data/synthetic/tests.csv"
    found: dict[str, list[np.ndarray]] = defaultdict(list)
    if table.is_file():
        for row in csv.DictReader(table.open()):
            path = ROOT / row["path"]
            if path.is_file():
                found[row["class"]].append(np.asarray(Image.open(path).convert("RGB")))
    if not found:  # not pulled: generate the synthesize stage's test set (same params, same pixels)
        import tempfile

        from gancodec.data.synthetic import generate_tests
        from gancodec.params import SyntheticParams

        p = SyntheticParams.load(ROOT / "params.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            for row in generate_tests(tmp, per_class=p.test_per_class, seed=p.test_seed, size=tuple(p.size)):
                found[row["class"]].append(np.asarray(Image.open(row["path"]).convert("RGB")))
    return found


def run_set(name: str, images: list[np.ndarray], qualities: list[float], times: dict) -> dict:
    """Per precision and quality: total bytes, pixels and per-image PSNR; times added to ``times``."""
    res = {p: {q: {"bytes": 0, "psnr": []} for q in qualities} for p in PRECISIONS}
    pixels = sum(im.shape[0] * im.shape[1] for im in images)
    for im in images:
        for q in qualities:
            for p in PRECISIONS:
                n, v, te, td = code(im, q, p)
                res[p][q]["bytes"] += n
                res[p][q]["psnr"].append(v)
                times[p]["enc"] += te
                times[p]["dec"] += td
    f32, b16 = res["float32"], res["bfloat16"]
    rate = {p: [res[p][q]["bytes"] * 8 / pixels for q in qualities] for p in PRECISIONS}
    qual = {p: [float(np.mean(res[p][q]["psnr"])) for q in qualities] for p in PRECISIONS}
    worst = min(b - a for q in qualities for a, b in zip(f32[q]["psnr"], b16[q]["psnr"]))
    out = {"set": name, "images": len(images), "qualities": qualities, "bpp": rate, "psnr": qual,
           "worst_psnr_change_db": worst}
    if len(qualities) >= 4:
        out["bd_rate_bf16_vs_f32_pct"] = bd_rate(rate["float32"], qual["float32"], rate["bfloat16"], qual["bfloat16"])
    if len(qualities) >= 2:
        out["bd_psnr_bf16_vs_f32_db"] = bd_psnr(rate["float32"], qual["float32"], rate["bfloat16"], qual["bfloat16"])
    print(f"\n{name}: {len(images)} images")
    print("quality | f32 bpp   PSNR  | bf16 bpp  PSNR  | bytes bf16/f32")
    for i, q in enumerate(qualities):
        print(f"{q:7g} | {rate['float32'][i]:.4f} {qual['float32'][i]:6.2f} | {rate['bfloat16'][i]:.4f} "
              f"{qual['bfloat16'][i]:6.2f} | {b16[q]['bytes'] / f32[q]['bytes']:.4f}")
    for key in ("bd_rate_bf16_vs_f32_pct", "bd_psnr_bf16_vs_f32_db", "worst_psnr_change_db"):
        if key in out:
            print(f"{key}: {out[key]:+.3f}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--qualities", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    p.add_argument("--classes", action="store_true", help="also the per-class test images (qualities 2 4 6)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    images = [np.asarray(Image.open(q).convert("RGB")) for q in sorted(Path(a.images).glob("*.png"))[: a.limit]]
    if not images:
        raise SystemExit(f"no PNG images in {a.images}")
    for prec in PRECISIONS:  # load and warm both copies before timing anything
        code(images[0][:64, :64], 4, prec)
    times = {prec: {"enc": 0.0, "dec": 0.0} for prec in PRECISIONS}
    results = [run_set(Path(a.images).name, images, a.qualities, times)]
    if a.classes:
        for cls, imgs in sorted(class_images().items()):
            results.append(run_set(cls, imgs, [2, 4, 6], times))
    f32, b16 = times["float32"], times["bfloat16"]
    print(f"\ntime bf16/f32: encode {b16['enc'] / f32['enc']:.3f}, decode {b16['dec'] / f32['dec']:.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"sets": results, "time_ratio_bf16_vs_f32": {
            "encode": b16["enc"] / f32["enc"], "decode": b16["dec"] / f32["dec"]}}, indent=1))


if __name__ == "__main__":
    main()

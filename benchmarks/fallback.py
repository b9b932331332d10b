"""The WebP fallback per content class (issue 20): each image's PSNR margin over WebP at equal bpp,
with and without the fallback, and how often it triggers.

    python benchmarks/fallback.py [--classes DIR] [--kodak DIR] [--kodak-limit 24] [--limit N]
        [--qualities 2 4 6] [--weights W.pt] [--timing 3] [--margins 0.1 0.3 0.5] [--csv points.csv]

``--classes``: a folder with one sub-folder of PNGs per class (``benchmarks/class_table.py
--tests DIR`` or ``gancodec.data.synthetic.generate_tests`` makes one); ``--kodak``: Kodak, as
the class ``photos``. Per image and quality: the learned stream (``compress(...,
fallback=False)``), its decode, and what ``compress(..., fallback=True)`` keeps
(:func:`gancodec.fallback.choose` on that decode: the same call, so the same bytes). The margin is
gancodec's PSNR minus WebP's at gancodec's bpp, WebP's curve being interpolated in log bpp over
Pillow/libwebp (method 4) at quality 0, 5, ..., 100 of the same image; each image's margin is
the mean over the qualities (issue 20's check: no image below -0.5 dB). ``--margins``: the same
for other values of the margin WebP must win by (:data:`gancodec.fallback.MARGIN_DB` is the
one ``compress`` uses); ``--csv``: every point. ``--timing N`` times
``compress`` with the fallback on and off on the first N images of each class, in this process,
and prints the ratio (the fallback costs a learned decode, about 8 WebP encodes and 4 WebP decodes on photos (at most 24 and 11)).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

import gancodec
from gancodec import fallback
from gancodec.eval import baselines, ours
from gancodec.eval.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
WEBP_SETTINGS = tuple(range(0, 101, 5))


def load(folder: Path, limit: int | None) -> dict[str, np.ndarray]:
    paths = sorted(folder.glob("*.png"))[:limit] if limit else sorted(folder.glob("*.png"))
    return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in paths}


def measure(img: np.ndarray, qualities, weights, margins) -> list[dict]:
    """One dict per quality: the learned point, the budgeted WebP point, and both margins over WebP's curve."""
    webp = baselines.sweep("webp", [img], list(WEBP_SETTINGS), with_ms_ssim=False)
    h, w = img.shape[:2]

    def margin(n: int, value: float) -> float:
        return value - ours.psnr_at(np.array([n * 8 / (h * w)]), webp.bpp.to_numpy(), webp.psnr.to_numpy())[0]

    points = []
    for q in qualities:
        data = gancodec.compress(img, quality=q, weights=weights, fallback=False)
        decoded = np.asarray(gancodec.decompress(data, weights=weights))
        point = {"quality": q, "learned_bytes": len(data), "learned_psnr": psnr(img, decoded),
                 "learned_margin": margin(len(data), psnr(img, decoded)), "webp_bytes": None, "webp_psnr": None}
        choice = fallback.choose(img, data, decoded, margin_db=0.0)  # the budgeted WebP, whatever the margin
        if choice.webp_psnr is not None:
            n = len(fallback.encode_within(img, len(data))[0])
            point.update(webp_bytes=n, webp_psnr=choice.webp_psnr, webp_margin=margin(n, choice.webp_psnr))
        for m in margins:  # what compress(fallback=True) keeps with margin m
            wins = point["webp_psnr"] is not None and point["webp_psnr"] > point["learned_psnr"] + m
            point[f"fallback_{m:g}"] = bool(wins)
            point[f"margin_{m:g}"] = point["webp_margin"] if wins else point["learned_margin"]
        points.append(point)
    return points


def timing(images: list[np.ndarray], quality: float, weights) -> float:
    """Encode time with the fallback over encode time without, summed over ``images``."""
    on = off = 0.0
    gancodec.compress(images[0], quality=quality, weights=weights)  # warm-up: weights and kernels load once
    for img in images:
        t = time.perf_counter()
        gancodec.compress(img, quality=quality, weights=weights, fallback=False)
        off += time.perf_counter() - t
        t = time.perf_counter()
        gancodec.compress(img, quality=quality, weights=weights)
        on += time.perf_counter() - t
    return on / off


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", default=None, help="a folder of class sub-folders of PNGs")
    p.add_argument("--kodak", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--kodak-limit", type=int, default=24)
    p.add_argument("--limit", type=int, default=None, help="images per class")
    p.add_argument("--qualities", type=float, nargs="+", default=[2.0, 4.0, 6.0])
    p.add_argument("--weights", default=None)
    p.add_argument("--timing", type=int, default=0, metavar="N", help="time the first N images of each class")
    p.add_argument("--margins", type=float, nargs="+", default=[fallback.MARGIN_DB])
    p.add_argument("--csv", default=None, help="write every point here")
    a = p.parse_args()
    sets = {}
    if a.classes:
        sets.update({d.name: load(d, a.limit) for d in sorted(Path(a.classes).iterdir()) if d.is_dir()})
    if a.kodak and Path(a.kodak).is_dir():
        sets["photos"] = load(Path(a.kodak), a.kodak_limit)
    print(f"qualities {a.qualities}; margin = gancodec PSNR - WebP PSNR at equal bpp (dB), mean over the qualities\n")
    head = ["class", "margin", "images", "worst learned", "worst with fallback", "mean learned", "mean with fallback",
            "points stored as WebP", "images below -0.5 dB (learned -> fallback)"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    ratios, every = [], []
    for cls, images in sets.items():
        rows = {name: measure(img, a.qualities, a.weights, a.margins) for name, img in images.items()}
        every += [{"class": cls, "image": n, **pt} for n, pts in rows.items() for pt in pts]
        learned = {n: float(np.nanmean([pt["learned_margin"] for pt in pts])) for n, pts in rows.items()}
        wl = min(learned, key=learned.get)
        for m in a.margins:
            safe = {n: float(np.nanmean([pt[f"margin_{m:g}"] for pt in pts])) for n, pts in rows.items()}
            ws = min(safe, key=safe.get)
            fell = sum(pt[f"fallback_{m:g}"] for pts in rows.values() for pt in pts)
            points = sum(len(pts) for pts in rows.values())
            below = (sum(v < -0.5 for v in learned.values()), sum(v < -0.5 for v in safe.values()))
            print(f"| {cls} | {m:g} dB | {len(rows)} | {learned[wl]:+.2f} ({wl}) | {safe[ws]:+.2f} ({ws}) "
                  f"| {np.mean(list(learned.values())):+.2f} | {np.mean(list(safe.values())):+.2f} "
                  f"| {fell}/{points} ({100 * fell / points:.0f} %) | {below[0]} -> {below[1]} |", flush=True)
        if a.csv:
            import pandas as pd

            pd.DataFrame(every).to_csv(a.csv, index=False)
        if a.timing:
            ratios.append((cls, timing(list(images.values())[: a.timing], 4.0, a.weights)))
    for cls, r in ratios:
        print(f"encode time with / without the fallback, {cls} (quality 4): {r:.2f}x")


if __name__ == "__main__":
    main()

"""When may the WebP fallback stop trying qualities below q*? Every offset against an early stop.

    python benchmarks/fallback_offsets.py [--folders DIR ...] [--limit 40] [--skip 0] [--skimage]
        [--workers 2] [--json curves.json]

Each image is coded by libwebp (Pillow, the fallback's method) at every quality 0..100 once: its
size and PSNR. Then, for byte budgets just above the sizes at qualities 5, 10, ..., 95, the
search of :func:`gancodec.fallback.best_within` is replayed on those numbers: the highest quality
that fits (:func:`gancodec.fallback.highest_fitting`, the real one), then the best PSNR over q*
and q* - d for d in :data:`~gancodec.fallback.LOWER_OFFSETS` (every offset), against the same
search stopped after q* - k when the PSNR falls strictly from q* to there (k = 2 and k = 3; the
fallback uses :data:`~gancodec.fallback.MONOTONE_CHECK`). Per folder it prints the budgets, how
often a quality below q* is the best, how often each rule stops early, and the most PSNR it
gives away. ``--json`` keeps (or, when the file exists, reuses) the curves.

Default folders: Kodak, the CLIC 2025 validation set and the first ``--limit`` CID22 photos from
``../shared/datasets``, and the synthesize stage's class test images (``data/synthetic/test/*``).
About 8 minutes on 2 cores for those 119 images. ``--skip N`` starts each folder at its N-th
image (``--folders ../shared/datasets/cid22_photos --skip 40``: photos the rule was not chosen
on); ``--skimage`` adds scikit-image's 19 sample images (not skipped) (text, a scanned page, a logo, a
checkerboard, a colour wheel, micrographs and photos), written to a temporary folder.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from gancodec import fallback
from gancodec.metrics_core import psnr

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"


def curve(path: str) -> tuple[str, list[int], list[float]]:
    """(path, size at each quality 0..100, PSNR at each)."""
    img = Image.open(path).convert("RGB")
    pixels = np.asarray(img)
    sizes, values = [], []
    for q in range(101):
        data = fallback._webp(img, q)
        sizes.append(len(data))
        values.append(psnr(pixels, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
    return path, sizes, values


def skimage_samples(folder: Path) -> Path:
    """scikit-image's sample images as RGB PNGs in ``folder``."""
    from skimage import data

    folder.mkdir(parents=True)
    for name in ("text", "page", "coins", "brick", "grass", "gravel", "checkerboard", "clock", "horse", "logo", "moon",
                 "rocket", "coffee", "chelsea", "astronaut", "hubble_deep_field", "immunohistochemistry", "retina",
                 "colorwheel"):
        a = getattr(data, name)()
        a = (a * 255).astype(np.uint8) if a.dtype != np.uint8 else a  # the bool checkerboard... and float images
        a = np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a[..., :3]
        Image.fromarray(a).save(folder / f"{name}.png")
    return folder


def replay(sizes: list[int], values: list[float], budget: int, stop_after: int | None) -> tuple[float, bool]:
    """The PSNR the search keeps for ``budget``, and whether it stopped early (``stop_after``:
    the k of the rule; None: every offset)."""
    top = fallback.highest_fitting(lambda q: sizes[q], budget)
    lower = [top - d for d in fallback.LOWER_OFFSETS if top - d >= 0]
    fits = lambda q: sizes[q] <= budget  # noqa: E731
    tried = [top, *lower]
    stopped = False
    if stop_after is not None:
        first = [top, *lower[:stop_after]]
        stopped = all(fits(a) and fits(b) and values[a] > values[b] for a, b in zip(first, first[1:]))
        tried = first if stopped else tried
    return max(values[q] for q in tried if fits(q)), stopped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folders", nargs="+", type=Path,
                   default=[SHARED / "kodak", SHARED / "clic2025_valid", SHARED / "cid22_photos",
                            *sorted((ROOT / "data" / "synthetic" / "test").glob("*"))])
    p.add_argument("--limit", type=int, default=40, help="images per folder at most")
    p.add_argument("--skip", type=int, default=0, help="start each folder at this image")
    p.add_argument("--skimage", action="store_true", help="also scikit-image's sample images")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path, help="keep the curves here (reused when the file exists)")
    a = p.parse_args()
    if a.json and a.json.exists():
        curves = json.loads(a.json.read_text())
    else:
        paths = [str(f) for d in a.folders for f in sorted(d.glob("*.png"))[a.skip: a.skip + a.limit]]
        if a.skimage:  # all of them, whatever --skip says
            paths += [str(f) for f in sorted(skimage_samples(Path(tempfile.mkdtemp()) / "skimage").glob("*.png"))]
        with ProcessPoolExecutor(a.workers) as pool:
            curves = {path: {"size": s, "psnr": v} for path, s, v in pool.map(curve, paths)}
        if a.json:
            a.json.write_text(json.dumps(curves))
    print("| folder | images | budgets | a lower quality is best | stops early, k=2 | most given away, k=2 "
          "| stops early, k=3 | most given away, k=3 |")
    print("|---|---|---|---|---|---|---|---|")
    for folder in sorted({str(Path(path).parent) for path in curves}):
        rows = [(c["size"], c["psnr"]) for path, c in curves.items() if str(Path(path).parent) == folder]
        n = lower_best = 0
        stops, lost = {2: 0, 3: 0}, {2: 0.0, 3: 0.0}
        for sizes, values in rows:
            for q0 in range(5, 100, 5):
                budget = sizes[q0] + 200
                if fallback.highest_fitting(lambda q: sizes[q], budget) is None:
                    continue
                n += 1
                best, _ = replay(sizes, values, budget, None)
                top = fallback.highest_fitting(lambda q: sizes[q], budget)
                lower_best += best > values[top]
                for k in (2, 3):
                    kept, stopped = replay(sizes, values, budget, k)
                    stops[k] += stopped
                    lost[k] = max(lost[k], best - kept)
        print(f"| {Path(folder).name} | {len(rows)} | {n} | {lower_best} | {stops[2] / n:.0%} | {lost[2]:.3f} dB "
              f"| {stops[3] / n:.0%} | {lost[3]:.3f} dB |")


if __name__ == "__main__":
    main()

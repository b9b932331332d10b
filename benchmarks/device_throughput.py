"""Encode and decode megapixels per second on a device, and whether its streams decode the same on the CPU.

    python benchmarks/device_throughput.py [--device cuda] [--images FOLDER] [--limit 8] [--quality 4]
        [--refine 50] [--repeat 2] [--json out.json]

The one prepared script for a lent GPU (issue 31): on ``--device`` (default cuda when present,
else the CPU) it times, per image, a plain encode, an encode with the latent search
(``--refine`` steps; 0 skips it) and a decode, best of ``--repeat``, and prints megapixels per
second for each over all images. Every stream made on the device is then decoded on the CPU:
the latents are the same by construction (the entropy path is float64 on the CPU), and the
decoded pixels must agree within ``--tolerance`` levels of the device's own decode (both run
in float32 here: ``GANCODEC_PRECISION=float32`` unless set). Exits 1 on any mismatch.

Images: ``--images`` (PNG files) or, when absent, Kodak beside the checkout, else
scikit-image's bundled photos (what a device machine without ../shared has).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def load_images(folder: str | None, limit: int) -> dict[str, np.ndarray]:
    for candidate in ([folder] if folder else [str(ROOT / "../shared/datasets/kodak")]):
        paths = sorted(Path(candidate).glob("*.png"))[:limit]
        if paths:
            return {p.name: np.asarray(Image.open(p).convert("RGB")) for p in paths}
    if folder:
        raise SystemExit(f"no PNG images in {folder}")
    from skimage import data

    return {n: getattr(data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")[:limit]}


def best_of(repeat: int, fn, sync):
    best, out = float("inf"), None
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return out, best


def main() -> int:
    os.environ.setdefault("GANCODEC_PRECISION", "float32")
    import gancodec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--images")
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--quality", type=float, default=4.0)
    p.add_argument("--refine", type=int, default=50, help="latent-search steps for the searched encode (0: skip)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--tolerance", type=int, default=1)
    p.add_argument("--json")
    a = p.parse_args()
    dev = a.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    images = load_images(a.images, a.limit)
    first = next(iter(images.values()))
    gancodec.decompress(gancodec.compress(first[:64, :64], device=dev, fallback=False), device=dev)  # warm-up
    totals = {"plain": 0.0, "search": 0.0, "decode": 0.0}
    megapixels, rows, bad = 0.0, [], 0
    for name, img in images.items():
        mp = img.shape[0] * img.shape[1] / 1e6
        megapixels += mp
        data, t_plain = best_of(a.repeat, lambda: gancodec.compress(img, quality=a.quality, device=dev, fallback=False), sync)
        t_search = 0.0
        if a.refine:
            _, t_search = best_of(1, lambda: gancodec.compress(img, quality=a.quality, device=dev, fallback=False,
                                                              refine_steps=a.refine), sync)
        out_dev, t_dec = best_of(a.repeat, lambda: np.asarray(gancodec.decompress(data, device=dev)), sync)
        out_cpu = np.asarray(gancodec.decompress(data, device="cpu"))
        diff = int(np.abs(out_dev.astype(int) - out_cpu.astype(int)).max())
        bad += diff > a.tolerance
        totals["plain"] += t_plain
        totals["search"] += t_search
        totals["decode"] += t_dec
        rows.append({"image": name, "megapixels": mp, "plain_s": t_plain, "search_s": t_search, "decode_s": t_dec,
                     "bytes": len(data), "max_abs_diff_device_vs_cpu": diff})
        print(f"{name}: {mp:.2f} MP, plain {t_plain:.3f} s, search({a.refine}) {t_search:.3f} s, decode {t_dec:.3f} s, "
              f"{dev} vs cpu decode max diff {diff}", flush=True)
    rates = {k: (megapixels / v if v else None) for k, v in totals.items()}
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu"
    print(f"\n{dev} ({name}), {len(images)} images, {megapixels:.1f} MP, quality {a.quality:g}, "
          f"precision {os.environ['GANCODEC_PRECISION']}")
    print(f"MP/s: plain encode {rates['plain']:.2f}, decode {rates['decode']:.2f}"
          + (f", encode with {a.refine}-step search {rates['search']:.3f}" if a.refine else ""))
    print(f"streams made on {dev} decoded on the CPU: {len(images) - bad} of {len(images)} within {a.tolerance} level(s)")
    if a.json:
        Path(a.json).write_text(json.dumps({"device": dev, "name": name, "rows": rows, "megapixels_per_second": rates,
                                            "mismatches": bad}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

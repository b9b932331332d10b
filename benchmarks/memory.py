"""Peak RAM and speed for 1, 4, 16 and 64 MP images on CPU: gancodec next to avifenc, as ratios.

    python benchmarks/memory.py [--sizes 1 4 16 64] [--quality 4] [--threads 2]

Each measurement runs in a fresh process (so peak RSS is that job's alone, torch included):
gancodec compress+decompress of a synthetic photo-like image, and avifenc (speed 6, q 30-ish)
+ avifdec on the same image written as PNG. Printed: seconds, megapixels per second, peak RSS,
and gancodec / avifenc ratios. DESIGN goal: 64 MP within 6 GiB on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOB = """
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads({threads})
import gancodec
h, w = {h}, {w}
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
img = np.stack([128 + 60 * np.sin(xx / 97 + c) * np.cos(yy / 61 - c) for c in range(3)], -1)
img = np.clip(img + rng.normal(0, 6, img.shape).astype(np.float32), 0, 255).astype(np.uint8)
del yy, xx
t = time.perf_counter(); data = gancodec.compress(img, quality={quality}, device="cpu", fallback=False); te = time.perf_counter() - t
t = time.perf_counter(); out = gancodec.decompress(data, device="cpu"); td = time.perf_counter() - t
print(json.dumps({{"encode_s": te, "decode_s": td, "bytes": len(data),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def avif_job(h: int, w: int, tmp: Path) -> dict:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 60 * np.sin(xx / 97 + c) * np.cos(yy / 61 - c) for c in range(3)], -1)
    img = np.clip(img + rng.normal(0, 6, img.shape).astype(np.float32), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp / "in.png", compress_level=1)
    te, me, _ = _timed_rss(["avifenc", "-s", "6", "--min", "28", "--max", "32", "-y", "444", str(tmp / "in.png"), str(tmp / "o.avif")])
    td, md, _ = _timed_rss(["avifdec", str(tmp / "o.avif"), str(tmp / "back.png")])
    return {"encode_s": te, "decode_s": td, "bytes": (tmp / "o.avif").stat().st_size, "peak_mib": max(me, md)}


def _timed_rss(cmd: list[str]) -> tuple[float, float, str]:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode()
    if status:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.read().decode()[-300:]}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1, 4, 16, 64], help="megapixels")
    p.add_argument("--quality", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    have_avif = shutil.which("avifenc") and shutil.which("avifdec")
    print(f"{'MP':>5} {'codec':<9} {'enc s':>7} {'dec s':>7} {'MP/s enc':>8} {'MP/s dec':>8} {'peak MiB':>9}")
    for mp in a.sizes:
        w = int((mp * 1e6 * 4 / 3) ** 0.5) // 16 * 16
        h = int(mp * 1e6 / w)
        job = JOB.format(h=h, w=w, quality=a.quality, threads=a.threads)
        _, _, out = _timed_rss([sys.executable, "-c", job])
        ours = json.loads(out.strip().splitlines()[-1])
        rows = {"gancodec": ours}
        if have_avif:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    rows["avifenc"] = avif_job(h, w, Path(tmp))
                except RuntimeError as exc:
                    print(f"      avifenc baseline failed at {w}x{h}: {exc}".replace("\n", " "))
        for name, r in rows.items():
            mpx = h * w / 1e6
            print(f"{mpx:5.1f} {name:<9} {r['encode_s']:7.2f} {r['decode_s']:7.2f} {mpx / r['encode_s']:8.2f} "
                  f"{mpx / r['decode_s']:8.2f} {r['peak_mib']:9.0f}")
        if "avifenc" in rows:
            o, v = rows["gancodec"], rows["avifenc"]
            print(f"      ratio gancodec/avifenc: encode x{o['encode_s'] / v['encode_s']:.2f}, "
                  f"decode x{o['decode_s'] / v['decode_s']:.2f}, peak RAM x{o['peak_mib'] / v['peak_mib']:.2f}")
        elif not have_avif:
            print("      avifenc/avifdec not installed: baseline skipped (scripts/install_codecs.sh)")


if __name__ == "__main__":
    main()

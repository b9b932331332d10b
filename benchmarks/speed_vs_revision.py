"""This checkout's encode, decode and bulk speed against an earlier revision's, as ratios in one run.

    python benchmarks/speed_vs_revision.py --base b1a7872 [--images ../shared/datasets/kodak]
        [--limit 8] [--quality 4] [--repeat 2] [--bulk] [--json out.json]

``--base`` is any git revision (b1a7872 is v1.6 before the issue-31 speed work). Its
``src/gancodec`` is exported to a temporary folder, and two worker processes, one importing
each package, take turns on every image: a decode (``gancodec.decompress`` of the revision's
own stream, made by its own shipped weights, the bytes in memory), a plain encode (``fallback=False``) and a default encode (with the
WebP fallback), best of ``--repeat`` each, in-process, on the CPU with 2 torch threads. Pillow's
AVIF (4:4:4, speed 6, quality 50) encode and decode run in this process on the same images as
the yardstick. Each stream the base makes is also decoded by the new code (and the other way
round, where the base has the new stream's weights): the PSNR of every decode is printed, so a
format break cannot hide behind a speed-up.

``--bulk`` also times ``gancodec bulk IN OUT`` (local folders, defaults: fallback on, 1 worker)
over the images, for each revision, against AVIF-encoding the same images one after another in
this process (as issue 31 measures it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import base64, json, sys, time
import numpy as np, torch
from PIL import Image
import gancodec
torch.set_num_threads(2)
print(json.dumps({"ready": gancodec.__file__}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    img = np.asarray(Image.open(cmd["path"]).convert("RGB"))
    best, out = float("inf"), None
    try:
        for _ in range(cmd["repeat"]):
            t = time.perf_counter()
            if cmd["op"] == "decode":
                data = base64.b64decode(cmd["data"])
                res = np.asarray(gancodec.decompress(data, device="cpu"))
            else:
                res = gancodec.compress(img, quality=cmd["quality"], device="cpu", fallback=cmd["op"] == "default")
            best = min(best, time.perf_counter() - t)
            out = res
    except gancodec.BitstreamError as exc:  # a stream of weights this revision does not have: say so, go on
        print(json.dumps({"error": str(exc).split(";")[0]}), flush=True)
        continue
    if cmd["op"] == "decode":
        mse = np.mean((out.astype(float) - img.astype(float)) ** 2)
        reply = {"seconds": best, "psnr": 10 * np.log10(255 ** 2 / mse)}
    else:
        reply = {"seconds": best, "bytes": len(out), "data": base64.b64encode(out).decode()}
    print(json.dumps(reply), flush=True)
"""


class Worker:
    """A Python process importing one revision's gancodec, timing what it is asked."""

    def __init__(self, src: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "2"}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.module = json.loads(self.proc.stdout.readline())["ready"]

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.module} died")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def export_revision(rev: str, into: Path) -> Path:
    """``src/gancodec`` of ``rev`` under ``into``/src (git archive: no checkout touched)."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/gancodec"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def avif_seconds(img: np.ndarray, repeat: int) -> tuple[float, float]:
    """(encode, decode) seconds of Pillow's AVIF, best of ``repeat``."""
    enc = dec = float("inf")
    for _ in range(repeat):
        buf = io.BytesIO()
        t = time.perf_counter()
        Image.fromarray(img).save(buf, format="AVIF", quality=50, speed=6, subsampling="4:4:4")
        t1 = time.perf_counter()
        np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        t2 = time.perf_counter()
        enc, dec = min(enc, t1 - t), min(dec, t2 - t1)
    return enc, dec


def bulk_seconds(src: Path, images: list[Path], work: Path) -> float:
    """Wall time of ``gancodec bulk IN OUT`` (defaults) over ``images``, in a fresh process."""
    inp, out = work / "in", work / "out"
    shutil.rmtree(work, ignore_errors=True)
    inp.mkdir(parents=True)
    for p in images:
        shutil.copy(p, inp / p.name)
    env = {**os.environ, "PYTHONPATH": str(src), "PREFECT_HOME": str(work / "prefect")}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gancodec", "bulk", str(inp), str(out)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="git revision to compare against (b1a7872: v1.6 before issue 31)")
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--quality", type=float, default=4.0)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--bulk", action="store_true", help="also gancodec bulk over the images (vs AVIF)")
    p.add_argument("--bulk-limit", type=int, default=24)
    p.add_argument("--json")
    a = p.parse_args()
    paths = sorted(Path(a.images).glob("*.png"))
    if not paths:
        raise SystemExit(f"no PNG images in {a.images}")
    with tempfile.TemporaryDirectory() as tmp:
        srcs = {"base": export_revision(a.base, Path(tmp) / "base"), "new": ROOT / "src"}
        workers = {k: Worker(v) for k, v in srcs.items()}
        print(f"base {a.base}: {workers['base'].module}\nnew: {workers['new'].module}")
        for w in workers.values():  # load the weights before timing anything
            w.ask(op="plain", path=str(paths[0]), quality=a.quality, repeat=1)
        t = {k: {"decode": [], "plain": [], "default": []} for k in workers}
        avif = {"encode": [], "decode": []}
        psnrs = {"base on base": [], "new on base": [], "new on new": [], "base on new": []}
        skipped: set[str] = set()
        for path in paths[: a.limit]:
            img = np.asarray(Image.open(path).convert("RGB"))
            streams = {}
            for k, w in workers.items():
                for op in ("plain", "default"):
                    r = w.ask(op=op, path=str(path), quality=a.quality, repeat=a.repeat)
                    t[k][op].append(r["seconds"])
                    if op == "plain":
                        streams[k] = r["data"]
            for k, w in workers.items():  # each decodes its own stream (timed) and the other's
                for of in ("base", "new"):
                    r = w.ask(op="decode", path=str(path), data=streams[of], repeat=a.repeat if of == k else 1)
                    if "error" in r:  # an earlier revision without the new release's weights
                        skipped.add(f"{k} on {of}: {r['error']}")
                        continue
                    psnrs[f"{k} on {of}"].append(r["psnr"])
                    if of == k:
                        t[k]["decode"].append(r["seconds"])
            e, d = avif_seconds(img, a.repeat)
            avif["encode"].append(e)
            avif["decode"].append(d)
            print(f"{path.name}: decode base {t['base']['decode'][-1]:.3f} s new {t['new']['decode'][-1]:.3f} s | "
                  f"plain {t['base']['plain'][-1]:.3f} / {t['new']['plain'][-1]:.3f} | default "
                  f"{t['base']['default'][-1]:.3f} / {t['new']['default'][-1]:.3f} | AVIF enc {e:.3f} dec {d:.4f}", flush=True)
        for w in workers.values():
            w.close()
        n = min(a.limit, len(paths))
        result = {"images": n, "quality": a.quality, "base": a.base, "median_seconds": {}, "speedup_new_vs_base": {},
                  "vs_avif": {}, "psnr_mean_db": {k: float(np.mean(v)) for k, v in psnrs.items() if v}}
        print(f"\n{n} images, quality {a.quality:g}, medians per image (s); speed-up = base time / new time")
        print("| path | base | new | speed-up | base / AVIF | new / AVIF |\n|---|---|---|---|---|---|")
        for op, ref in (("decode", "decode"), ("plain", "encode"), ("default", "encode")):
            b, nw, av = statistics.median(t["base"][op]), statistics.median(t["new"][op]), statistics.median(avif[ref])
            result["median_seconds"][op] = {"base": b, "new": nw, "avif": av}
            result["speedup_new_vs_base"][op] = b / nw
            result["vs_avif"][op] = {"base": b / av, "new": nw / av}
            print(f"| {op if op == 'decode' else op + ' encode'} | {b:.3f} | {nw:.3f} | {b / nw:.2f}x | "
                  f"{b / av:.1f}x | {nw / av:.1f}x |")
        print("PSNR (dB, mean): " + ", ".join(f"{k} {v:.3f}" for k, v in result["psnr_mean_db"].items()))
        for note in sorted(skipped):
            print(f"not decoded: {note}")
        if a.bulk:
            imgs = paths[: a.bulk_limit]
            avif_total = sum(avif_seconds(np.asarray(Image.open(q).convert("RGB")), 1)[0] for q in imgs)
            bulk = {k: bulk_seconds(v, imgs, Path(tmp) / f"bulk-{k}") for k, v in srcs.items()}
            avif_total = min(avif_total, sum(avif_seconds(np.asarray(Image.open(q).convert("RGB")), 1)[0] for q in imgs))
            result["bulk"] = {"images": len(imgs), "seconds": bulk, "avif_encode_seconds": avif_total,
                              "ratio_to_avif": {k: v / avif_total for k, v in bulk.items()}}
            print(f"\ngancodec bulk over {len(imgs)} images: base {bulk['base']:.1f} s ({bulk['base'] / avif_total:.1f}x AVIF), "
                  f"new {bulk['new']:.1f} s ({bulk['new'] / avif_total:.1f}x AVIF); new/base {bulk['new'] / bulk['base']:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

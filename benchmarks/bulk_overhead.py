"""Orchestration overhead of the bulk flow: flow wall time vs the same work in a plain loop.

    .venv/bin/python benchmarks/bulk_overhead.py --images tiny  --weights tiny   # 200 small crops, tiny model
    .venv/bin/python benchmarks/bulk_overhead.py --images kodak --n 24           # Kodak-sized, shipped model

Images: ``tiny`` = N crops of 64x64 .. 128x128 from scikit-image's bundled photos (the codec
costs next to nothing, so the ratio shows the fixed overhead at its worst); ``kodak`` = the
Kodak set from ``shared/datasets/kodak`` (beside or inside the repo) when present, else N
768x512 images resized from scikit-image's photos.

Both arms run in this process, warm (model loaded, Prefect's ephemeral API up), alternately
(``--rounds`` times each, the order flipped every round so neither always goes first), and the
ratio is taken per round; the median is printed. Absolute times on a shared machine are noisy;
the ratio of interleaved runs is the number to read.

* direct loop   what the flow does per image, by hand: read, decode, compress, verify (the
                product's check: full decode + header + PSNR floor), write the .gcx atomically
* prefect flow  flows/bulk_compress.py in ephemeral mode: plan, one task per batch (manifest
                part after each), run manifest + merged view, artifact

``--breakdown`` also prints where the flow's time went (plan, batches, finish, and the rest:
Prefect's own task and flow bookkeeping).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parents[1]


def _skimage_photos():
    from skimage import data

    return [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]


def make_tiny(folder: Path, n: int) -> list[str]:
    from PIL import Image

    sources = _skimage_photos()
    sizes = [(64, 64), (96, 64), (64, 96), (128, 96), (96, 128), (128, 128)]
    keys = []
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = sizes[i % len(sizes)]
        y, x = (37 * i) % (src.shape[0] - h), (53 * i) % (src.shape[1] - w)
        key = f"set{i % 8}/img{i:04d}.png"
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(src[y : y + h, x : x + w]).save(folder / key)
        keys.append(key)
    return keys


def kodak_folder() -> Path | None:
    for base in (ROOT / "shared", ROOT.parent / "shared"):
        folder = base / "datasets" / "kodak"
        if len(list(folder.glob("kodim*.png"))) >= 24:
            return folder
    return None


def make_kodak(folder: Path, n: int) -> tuple[list[str], str]:
    """N Kodak-sized PNGs (the real set, cycled, when present): (keys, where they came from)."""
    from PIL import Image

    real = kodak_folder()
    keys = []
    if real is not None:
        files = sorted(real.glob("kodim*.png"))
        for i in range(n):
            key = f"set{i % 4}/kodim-{i:03d}.png"
            (folder / key).parent.mkdir(parents=True, exist_ok=True)
            (folder / key).write_bytes(files[i % len(files)].read_bytes())
            keys.append(key)
        return keys, str(real)
    sources = _skimage_photos()
    for i in range(n):
        img = Image.fromarray(sources[i % len(sources)]).convert("RGB")
        img = img.resize((768, 512) if i % 3 else (512, 768), Image.BICUBIC)
        key = f"set{i % 4}/gen-{i:03d}.png"
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        img.save(folder / key)
        keys.append(key)
    return keys, "generated 768x512 from scikit-image photos"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", choices=("tiny", "kodak"), default="tiny")
    ap.add_argument("--n", type=int, default=None, help="number of images (default: 200 tiny, 24 kodak)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: gancodec.bulk.DEFAULT_BATCH_SIZE")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each arm, alternated (default 2)")
    ap.add_argument("--weights", default=None, help="a weights file, or 'tiny' for a random tiny model (default: shipped)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--breakdown", action="store_true", help="time the flow's plan / batches / finish too")
    a = ap.parse_args()
    n = a.n or (200 if a.images == "tiny" else 24)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="gancodec-bulk-bench-"))
    if a.weights == "tiny":
        from gancodec.models import HyperpriorCodec, ModelConfig
        from gancodec.weights import export_weights

        torch.manual_seed(0)
        a.weights = str(tmp / "tiny.pt")
        export_weights(HyperpriorCodec(ModelConfig(N=16, M=24)), a.weights)
    if a.weights:
        os.environ["GANCODEC_WEIGHTS"] = a.weights

    import gancodec
    from gancodec import bulk
    from gancodec.fsutil import atomic_write_bytes

    batch_size = a.batch_size or bulk.DEFAULT_BATCH_SIZE
    src = tmp / "src"
    if a.images == "tiny":
        keys, origin = make_tiny(src, n), "scikit-image crops 64..128 px"
    else:
        keys, origin = make_kodak(src, n)
    floor = 0.0 if "tiny" in (a.weights or "") else bulk.DEFAULT_PSNR_FLOOR
    settings = bulk.Settings(psnr_floor=floor)
    model_id = bulk.model_id_for(settings)
    flow_mod = bulk.load_flows()

    def direct(out: Path) -> float:
        t = time.perf_counter()
        for key in keys:
            data = (src / key).read_bytes()
            pixels, _ = bulk.decode_source(data, key)
            blob = gancodec.compress(pixels)
            bulk.verify_output(blob, pixels, model_id, settings)
            atomic_write_bytes(out / (key + ".gcx"), blob)
        return time.perf_counter() - t

    spans: dict[str, float] = {}
    if a.breakdown:  # the flow calls these through the module, so wrapping them times them
        def timed(name, fn):
            def wrapper(*args, **kwargs):
                t = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    spans[name] = spans.get(name, 0.0) + time.perf_counter() - t
            return wrapper

        import importlib

        for module, name in (("planner", "plan"), ("jobs", "compress_batch"), ("run", "finish_run")):
            mod = importlib.import_module(f"gancodec.bulk.{module}")
            setattr(mod, name, timed(name, getattr(mod, name)))

    def flow(out: Path) -> float:
        t = time.perf_counter()
        state = flow_mod.bulk_compress(src=str(src), dst=str(out), batch_size=batch_size, psnr_floor=floor, return_state=True)
        seconds = time.perf_counter() - t
        assert state.is_completed(), state
        result = state.result()
        assert result["ok"] == n, result
        return seconds

    # Warm-up: weights, torch kernels, Prefect's ephemeral server.
    warm = tmp / "warm-src"
    warm.mkdir()
    (warm / "w.png").write_bytes((src / keys[0]).read_bytes())
    t = time.perf_counter()
    flow_mod.bulk_compress(src=str(warm), dst=str(tmp / "warm-dst"), psnr_floor=floor, return_state=True)
    gancodec.compress(str(src / keys[0]))
    print(f"warm-up (model + Prefect start): {time.perf_counter() - t:.1f} s", file=sys.stderr)
    spans.clear()

    rounds = []
    for r in range(a.rounds):
        arms = [("direct", direct), ("flow", flow)]
        times = {}
        for name, fn in arms if r % 2 == 0 else arms[::-1]:
            times[name] = fn(tmp / f"{name}-{r}")
            print(f"round {r}: {name:<6} {times[name]:7.2f} s", file=sys.stderr)
        rounds.append(times)
    ratios = [t["flow"] / t["direct"] for t in rounds]
    ratio = statistics.median(ratios)

    print(f"{n} images ({a.images}: {origin}), batch {batch_size}, weights {a.weights or 'shipped'}, "
          f"torch threads {torch.get_num_threads()}, {a.rounds} rounds")
    for r, t in enumerate(rounds):
        print(f"  round {r}: direct {t['direct']:7.2f} s ({t['direct'] / n * 1000:6.1f} ms/image)   "
              f"flow {t['flow']:7.2f} s ({t['flow'] / n * 1000:6.1f} ms/image)   ratio {ratios[r]:.3f}")
    if a.breakdown:
        total = sum(t["flow"] for t in rounds)
        inside = sum(spans.values())
        parts = "  ".join(f"{k} {v / a.rounds:.2f} s" for k, v in spans.items())
        print(f"  flow, per run: {parts}  Prefect and the rest {(total - inside) / a.rounds:.2f} s")
    print(f"flow / direct loop = {ratio:.3f} (median of {a.rounds}; goal <= 1.05)")
    print(json.dumps({"images": a.images, "n": n, "batch_size": batch_size, "rounds": rounds, "ratios": ratios, "ratio": ratio,
                      "breakdown": {k: v / a.rounds for k, v in spans.items()} if a.breakdown else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Orchestration overhead of the bulk flow: flow wall time vs the codec called in a plain loop.

    .venv/bin/python benchmarks/bulk_overhead.py [--n 200] [--batch-size 25] [--weights tiny]

Makes N small images (64x64 .. 128x128 crops of scikit-image's bundled photos) in a temp
folder, then times, warm (model loaded, Prefect's ephemeral server already up):

* codec loop      compress() per image, nothing else
* direct loop     what the flow does per image, by hand: read, decode, compress, decompress
                  (verification), write the .gcx atomically
* plain bulk      gancodec.bulk.run_batches: the flow's logic without Prefect (manifests included)
* prefect flow    flows/bulk_compress.py in ephemeral mode

and prints flow / direct loop (goal <= 1.05). ``--weights tiny`` uses a random tiny model
(codec time ~ nothing, so the ratio shows the overhead at its worst).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def make_images(folder: Path, n: int) -> list[str]:
    from PIL import Image
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=25)
    ap.add_argument("--weights", default=None, help="a weights file, or 'tiny' for a random tiny model (default: shipped)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    a = ap.parse_args()

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

    src = tmp / "src"
    keys = make_images(src, a.n)
    floor = 0.0 if "tiny" in (a.weights or "") else bulk.DEFAULT_PSNR_FLOOR
    settings = bulk.Settings(psnr_floor=floor)
    flow_mod = bulk._load_flow_module("bulk_compress")

    # Warm-up: weights, torch kernels, Prefect's ephemeral server.
    warm = tmp / "warm-src"
    warm.mkdir()
    (warm / "w.png").write_bytes((src / keys[0]).read_bytes())
    t = time.perf_counter()
    flow_mod.bulk_compress(src=str(warm), dst=str(tmp / "warm-dst"), psnr_floor=floor, return_state=True)
    print(f"warm-up (model + Prefect start): {time.perf_counter() - t:.1f} s", file=sys.stderr)

    times: dict[str, float] = {}
    t = time.perf_counter()
    for key in keys:
        gancodec.compress(str(src / key))
    times["codec loop"] = time.perf_counter() - t

    out = tmp / "direct"
    t = time.perf_counter()
    for key in keys:
        data = (src / key).read_bytes()
        pixels, _ = bulk.decode_source(data, key)
        blob = gancodec.compress(pixels)
        gancodec.decompress(blob)
        atomic_write_bytes(out / (key + ".gcx"), blob)
    times["direct loop"] = time.perf_counter() - t

    t = time.perf_counter()
    s = bulk.run_batches(str(src), str(tmp / "plain"), settings, batch_size=a.batch_size)
    times["plain bulk"] = time.perf_counter() - t
    assert s.ok == a.n, s

    t = time.perf_counter()
    state = flow_mod.bulk_compress(src=str(src), dst=str(tmp / "flow"), batch_size=a.batch_size, psnr_floor=floor, return_state=True)
    times["prefect flow"] = time.perf_counter() - t
    assert state.is_completed(), state

    base = times["direct loop"]
    print(f"{a.n} images, batch {a.batch_size}, weights {a.weights or 'shipped'}, torch threads {torch.get_num_threads()}")
    for name, value in times.items():
        print(f"  {name:<13} {value:7.2f} s   {value / a.n * 1000:6.1f} ms/image   x{value / base:.3f} of direct loop")
    print(f"flow / direct loop = {times['prefect flow'] / base:.3f} (goal <= 1.05)")
    print(json.dumps({"n": a.n, "batch_size": a.batch_size, "seconds": times, "ratio": times["prefect flow"] / base}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

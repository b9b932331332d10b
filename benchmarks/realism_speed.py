"""Decode time of the realism decoder vs the fidelity decoder on the same streams, as a ratio.

    python benchmarks/realism_speed.py [--images ../shared/datasets/kodak] [--limit 8]
        [--realism-weights W.pt] [--strength 1.0] [--threads 2]

Both decoders run in this one process, interleaved image by image (machines here are noisy,
so only the ratio means much). Speed does not depend on how well the realism decoder is
trained, so without ``--realism-weights`` an untrained one (the fidelity decoder's weights
exported as a realism file) is timed; say so when quoting. Goal (issue 5): ratio <= 3.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import gancodec
from gancodec.realism import export_realism
from gancodec.weights import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(Path(__file__).resolve().parents[1] / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--quality", type=float, default=4.0)
    p.add_argument("--realism-weights", default=None)
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    paths = sorted(Path(a.images).glob("*.png"))[: a.limit]
    if not paths:
        raise SystemExit(f"no PNG images in {a.images}")
    rw, note = a.realism_weights, "trained"
    if rw is None:
        lm = load_model()
        rw = str(Path(tempfile.mkdtemp()) / "realism-untrained.pt")
        export_realism(lm.model.g_s, lm.model_id, rw)
        note = "untrained (fidelity weights; timing only)"
    streams = [gancodec.compress(Image.open(q), quality=a.quality, fallback=False) for q in paths]
    gancodec.decompress(streams[0]), gancodec.decompress(streams[0], realism=a.strength, realism_weights=rw)  # warm up
    fid, rea = [], []
    for data in streams:
        for label, kw, acc in (("fidelity", {}, fid), ("realism", {"realism": a.strength, "realism_weights": rw}, rea)):
            t = time.perf_counter()
            np.asarray(gancodec.decompress(data, **kw))
            acc.append(time.perf_counter() - t)
    ratio = statistics.median(r / f for r, f in zip(rea, fid))
    print(f"{len(paths)} images, quality {a.quality}, {a.threads} threads; realism decoder: {note}")
    print(f"decode s/image: fidelity median {statistics.median(fid):.3f}, realism median {statistics.median(rea):.3f}")
    print(f"realism / fidelity decode time: {ratio:.2f}x (goal <= 3)")


if __name__ == "__main__":
    main()

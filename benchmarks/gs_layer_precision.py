"""Which of g_s's layers can run in bfloat16: PSNR change and decode time, layer set by layer set.

    python benchmarks/gs_layer_precision.py [--kodak 3 7 23] [--per-class 2] [--qualities 2 6]

g_s (the synthesis transform) runs in float32 in the inference copy because bf16 throughout cost
flat images up to 0.7 dB (docs/speed.md). This decodes the same streams with chosen g_s layers
under bf16 autocast (the rest, and the last layer, in float32) in this one process: Kodak images
and the first ``--per-class`` images of each content class of the synthesize stage's test set
(``data/synthetic/tests.csv``: ``dvc repro synthesize``), plain encodes. Prints, per variant, the
mean and worst PSNR change against float32 g_s and the decode-time ratio. Layers are indexed as
in ``SynthesisTransform``: 0 deconv, 1 IGDN, 2 deconv, 3 IGDN, 4 deconv (the costliest: half
the output resolution), 5 IGDN. Needs a CPU with native bf16 for the times to mean anything.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import gancodec
from gancodec.eval.metrics import psnr
from gancodec.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"float32": (), "deconv 4": (4,), "deconv 4 + IGDN 5": (4, 5), "deconvs 2, 4": (2, 4),
            "first block (0, 1)": (0, 1), "every layer": (0, 1, 2, 3, 4, 5)}


class LayerPrecision(nn.Module):
    """g_s's body with the layers in ``bf16`` under bfloat16 autocast, the others in float32."""

    def __init__(self, layers: list[nn.Module], bf16: tuple[int, ...]) -> None:
        super().__init__()
        self.layers, self.bf16 = nn.ModuleList(layers), set(bf16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            if i in self.bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    x = layer(x)
            else:
                x = layer(x.float())
        return x.float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=int, nargs="*", default=[3, 7, 23])
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--qualities", type=float, nargs="+", default=[2, 6])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    paths = [ROOT / f"../shared/datasets/kodak/kodim{i:02d}.png" for i in a.kodak]
    tests = ROOT / "data/synthetic/tests.csv"
    if tests.exists():
        rows = list(csv.DictReader(tests.open()))
        for cls in dict.fromkeys(r["class"] for r in rows):
            paths += [ROOT / r["path"] for r in rows if r["class"] == cls][: a.per_class]
    net = load_model().on(torch.device("cpu"))
    layers = list(net.g_s.body)
    values = {k: [] for k in VARIANTS}
    seconds = dict.fromkeys(VARIANTS, 0.0)
    for path in paths:
        img = np.asarray(Image.open(path).convert("RGB"))
        for q in a.qualities:
            data = gancodec.compress(img, quality=q, device="cpu", fallback=False)
            for name, bf16 in VARIANTS.items():
                net.g_s.body = LayerPrecision(layers, bf16)
                t = time.perf_counter()
                out = np.asarray(gancodec.decompress(data, device="cpu"))
                seconds[name] += time.perf_counter() - t
                values[name].append(psnr(img, out))
    net.g_s.body = nn.Sequential(*layers)
    base = np.array(values["float32"])
    print(f"{len(paths)} images x qualities {a.qualities}; PSNR change against float32 g_s, decode time ratio")
    print("| g_s layers in bf16 | mean dB | worst dB | decode time |\n|---|---|---|---|")
    for name in VARIANTS:
        d = np.array(values[name]) - base
        print(f"| {name} | {d.mean():+.3f} | {d.min():+.3f} | {seconds[name] / seconds['float32']:.2f}x |")


if __name__ == "__main__":
    main()

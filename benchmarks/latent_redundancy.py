"""How much a linear context could save on a model's latents (an upper-bound probe for context models).

    python benchmarks/latent_redundancy.py [--weights W.pt] [--images ../shared/datasets/kodak]
        [--fit 12] [--test 6] [--rates 1 3 5]

For each rate point, fits least-squares predictors of the residual ``y - mean`` (the hyperprior's
mean) on the first ``--fit`` images and measures, on the next ``--test`` images, the ideal code
length (discretised Gaussian with the hyperprior's scales) of:

- non-anchor positions, predicted from the same channel's 12 checkerboard anchor taps;
- the second half of the channels, predicted from the first half at the same position.

Prints each against the hyperprior alone. A near-zero saving means the latents hold little
linear redundancy that a context could take without retraining the encoder.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gancodec.models.checkerboard import TAPS, anchor_mask
from gancodec.weights import load_model

ROOT = Path(__file__).resolve().parents[1]


def code_bits(residual: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    s = scales.clamp_min(0.11).double()
    v = torch.round(residual).abs().double()
    p = 0.5 * torch.erfc(-(0.5 - v) / (s * math.sqrt(2))) - 0.5 * torch.erfc(-(-0.5 - v) / (s * math.sqrt(2)))
    return -torch.log2(p.clamp_min(1e-9))


@torch.no_grad()
def residuals(model, path: Path, rate: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(y - mean, scale), each M x h x w, and the image's pixel count."""
    x = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    y = model.analysis(x, rate)
    means, scales = model.h_s(torch.round(model.h_a(y))).chunk(2, dim=1)
    return (y - means)[0].double(), scales[0].clamp_min(0.11), x.shape[-1] * x.shape[-2]


def lstsq(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    return torch.linalg.lstsq(x1, y).solution


def spatial(train, test) -> tuple[float, float]:
    def taps(r):
        M, h, w = r.shape
        q = F.pad(torch.round(r), (2, 2, 2, 2))
        nb = torch.stack([q[:, 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] for dy, dx in TAPS], -1)
        mask = ~anchor_mask(h, w, dtype=torch.bool)[0, 0]
        return nb[:, mask], mask

    M = train[0][0].shape[0]
    fits = [taps(r) for r, _, _ in train]
    coef = [lstsq(torch.cat([f[0][c] for f in fits]), torch.cat([r[c][f[1]] for (r, _, _), f in zip(train, fits)])[:, None])
            for c in range(M)]
    base = ctx = pixels = 0.0
    for r, s, n in test:
        nb, mask = taps(r)
        pred = torch.stack([torch.cat([nb[c], torch.ones(len(nb[c]), 1, dtype=nb.dtype)], 1) @ coef[c][:, 0] for c in range(M)])
        base += float(code_bits(r[:, mask], s[:, mask]).sum())
        ctx += float(code_bits(r[:, mask] - pred, s[:, mask]).sum())
        pixels += n
    return base / pixels, ctx / pixels


def channels(train, test) -> tuple[float, float]:
    M = train[0][0].shape[0]
    half = M // 2
    r = torch.cat([t[0].flatten(1) for t in train], 1)
    coef = lstsq(torch.round(r[:half]).T, r[half:].T)
    base = ctx = pixels = 0.0
    for r, s, n in test:
        r, s = r.flatten(1), s.flatten(1)
        x = torch.cat([torch.round(r[:half]).T, torch.ones(r.shape[1], 1, dtype=r.dtype)], 1)
        base += float(code_bits(r[half:], s[half:]).sum())
        ctx += float(code_bits(r[half:] - (x @ coef).T, s[half:]).sum())
        pixels += n
    return base / pixels, ctx / pixels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None)
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--fit", type=int, default=12)
    p.add_argument("--test", type=int, default=6)
    p.add_argument("--rates", type=float, nargs="+", default=[1, 3, 5], help="gain-unit rate points (quality - 1)")
    a = p.parse_args()
    model = load_model(a.weights).model
    paths = sorted(Path(a.images).glob("*.png"))
    print("rate | non-anchors: hyperprior bpp -> 12-tap same-channel | channels M/2..M: hyperprior bpp -> from 0..M/2")
    for rate in a.rates:
        train = [residuals(model, q, rate) for q in paths[: a.fit]]
        test = [residuals(model, q, rate) for q in paths[a.fit : a.fit + a.test]]
        b1, c1 = spatial(train, test)
        b2, c2 = channels(train, test)
        print(f"{rate:4g} | {b1:.4f} -> {c1:.4f} ({c1 / b1 - 1:+.1%}) | {b2:.4f} -> {c2:.4f} ({c2 / b2 - 1:+.1%})", flush=True)


if __name__ == "__main__":
    main()

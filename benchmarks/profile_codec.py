"""Where encode and decode time goes, part by part: multiply-adds per pixel and share of the time.

    python benchmarks/profile_codec.py [--images ../shared/datasets/kodak] [--limit 8] [--quality 4]
        [--threads 2] [--repeat 2] [--precision auto|float32|bfloat16] [--json out.json]

Each part of the code path runs on its own, in the order the codec runs it, on the same images
in this one process, best of ``--repeat`` per image, summed over the images:

- encode: image I/O (PNG read), g_a, h_a, the entropy parameters (float64 h_s, scale indexes,
  the checkerboard and channel contexts), the range coder, the fallback's decode of the learned stream (g_s
  and the post-filter on the encoder's own y_hat: the decode's rows, counted again), and its
  WebP search (``gancodec.fallback.best_within``, after that decode, as in ``compress``);
- decode: the entropy decode (z, float64 h_s, tables, the context passes), g_s, the
  post-filter, and the PNG write.

Multiply-adds are counted from the layers' shapes (convolutions, transposed convolutions, GDN's
1x1 convolution, the float64 context network), per pixel of the image. The transforms run as the
codec runs them (``gancodec.models.inference``: the precision the CPU pays for, ``--precision``
to force one), the entropy path always in float64 as the format requires. The machines here are
noisy: read the shares and ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from gancodec import fallback
from gancodec.entropy import rangecoder
from gancodec.entropy.gaussian import GaussianConditional
from gancodec.models.inference import InferenceGDN, SubpixelDeconv, inference_copy
from gancodec.models.layers import GDN
from gancodec.weights import load_model

ROOT = Path(__file__).resolve().parents[1]


def count_macs(module: nn.Module, *args, **kwargs) -> int:
    """Multiply-adds of one call of ``module`` (convolutions, transposed convolutions, GDN, linear)."""
    total = 0

    def hook(m, inputs, output):
        nonlocal total
        if isinstance(m, SubpixelDeconv):  # counted as the 3x3 convolution it runs, 4 phases
            total += output.numel() * m.weight.shape[1] * 9
        elif isinstance(m, nn.ConvTranspose2d):
            total += inputs[0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        elif isinstance(m, nn.Conv2d):
            total += output.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, (GDN, InferenceGDN)):
            total += output.numel() * output.shape[1]
        elif isinstance(m, nn.Linear):
            total += output.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        with torch.no_grad():
            module(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return total


def best_of(repeat: int, fn):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def profile_image(lm, net, path: Path, rate: float, repeat: int, seconds: dict, macs: dict) -> None:
    """Add one image's time per part (``seconds``) and multiply-adds (``macs``)."""
    coder, model = lm.coder, lm.model
    img, t = best_of(repeat, lambda: np.asarray(Image.open(path).convert("RGB")))
    seconds["encode: image read (PNG)"] += t
    h, w = img.shape[:2]
    ph, pw = -(-h // 64) * 64, -(-w // 64) * 64
    x = torch.from_numpy(np.pad(img, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge").copy())
    x = x.permute(2, 0, 1).unsqueeze(0).float().div(255).contiguous(memory_format=torch.channels_last)
    npx = h * w
    with torch.no_grad():
        y, t = best_of(repeat, lambda: net.analysis(x, rate))
        seconds["encode: g_a"] += t
        macs["encode: g_a"] += count_macs(net.g_a, x) / npx
        y = y.float()[:, :, : -(-h // 16), : -(-w // 16)].contiguous()
        _, t = best_of(repeat, lambda: model.h_a(torch.nn.functional.pad(y, (0, (-y.shape[-1]) % 4, 0, (-y.shape[-2]) % 4))))
        seconds["encode: h_a"] += t
        macs["encode: h_a"] += count_macs(model.h_a, y) / npx
    (z_hat, indexes, means, _), t = best_of(repeat, lambda: coder.quantisation(y))
    seconds_quantisation = t
    seconds["encode: entropy parameters (float64 h_s, tables, context)"] += t
    entropy_macs = _entropy_macs(lm, z_hat, y) / npx  # the decoder derives the same parameters
    macs["encode: entropy parameters (float64 h_s, tables, context)"] += entropy_macs

    data, t = best_of(repeat, lambda: coder.encode(y))  # parameters again, then the range coder
    seconds["encode: range coder"] += max(0.0, t - seconds_quantisation)
    lh, lw = y.shape[-2:]
    y_hat, t = best_of(repeat, lambda: coder.decode(data, lh, lw, model.config.N))
    seconds["decode: entropy decode (z, float64 h_s, tables, context, range decoder)"] += t
    macs["decode: entropy decode (z, float64 h_s, tables, context, range decoder)"] += entropy_macs
    with torch.no_grad():
        r = torch.tensor([rate])
        y_in = (y_hat * model.gain.inverse_gain(r)).contiguous(memory_format=torch.channels_last)
        x_fid, t = best_of(repeat, lambda: net.g_s(y_in))
        seconds["decode: g_s"] += t
        macs["decode: g_s"] += count_macs(net.g_s, y_in) / npx
        if net.post_filter is not None:
            pf = net.post_filter
            x_in = x_fid.clamp(0, 1)
            x_hat, t = best_of(repeat, lambda: x_fid + pf(x_in, y_in, pf.noise_for(x_fid), rate=rate))
            seconds["decode: post-filter"] += t
            macs["decode: post-filter"] += count_macs(pf, x_in, y_in, pf.noise_for(x_fid), rate=rate) / npx
        else:
            x_hat = x_fid
    pixels = x_hat[0, :, :h, :w].float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()

    def png() -> bytes:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        return buf.getvalue()

    _, t = best_of(repeat, png)
    seconds["decode: image write (PNG)"] += t
    _, t = best_of(repeat, lambda: fallback.best_within(img, len(data) + 64))
    seconds["encode: fallback's WebP search"] += t


def _entropy_macs(lm, z_hat: torch.Tensor, y: torch.Tensor) -> int:
    """Multiply-adds of the float64 entropy-parameter path for one tile."""
    n = count_macs(lm.coder.h_s64, z_hat)
    ctx = lm.coder.context64
    if ctx is not None:
        M, positions = y.shape[1], y.shape[-1] * y.shape[-2] // 2
        C = ctx.weight.shape[0]
        n += positions * C * M * ctx.weight.shape[2]
        n += positions * sum(m.in_channels * m.out_channels for m in ctx.mix if isinstance(m, nn.Conv2d))
    channel = lm.coder.channel64
    if channel is not None:  # every position is refined once per slice s >= 1 (its anchor or non-anchor pass)
        positions = y.shape[-1] * y.shape[-2]
        for refiner in (*channel.anchor_refiners, *channel.non_anchor_refiners):
            per = refiner.context.in_channels * refiner.context.out_channels * 9
            per += sum(m.in_channels * m.out_channels for m in refiner.mix if isinstance(m, nn.Conv2d))
            n += positions // 2 * per
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--quality", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto")
    p.add_argument("--json", help="write the table here too")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    paths = sorted(Path(a.images).glob("*.png"))[: a.limit]
    if not paths:
        raise SystemExit(f"no PNG images in {a.images}")
    lm = load_model()
    net = inference_copy(lm.model, torch.device("cpu"), a.precision)
    seconds: dict[str, float] = defaultdict(float)
    macs: dict[str, float] = defaultdict(float)
    for path in paths:
        profile_image(lm, net, path, a.quality - 1, a.repeat, seconds, macs)
    # the fallback decodes the learned stream once, from the encoder's own y_hat (no entropy
    # decode): the decode's transforms, counted again on the encode side
    dec_keys = [k for k in seconds if k.startswith("decode:") and "image write" not in k and "entropy" not in k]
    seconds["encode: fallback's decode of the learned stream"] = sum(seconds[k] for k in dec_keys)
    macs["encode: fallback's decode of the learned stream"] = sum(macs[k] for k in dec_keys)
    n = len(paths)
    print(f"{n} images from {a.images}, quality {a.quality:g}, {a.threads} threads, precision {net.precision}, "
          f"best of {a.repeat}; seconds are per image")
    rows = []
    for side in ("encode", "decode"):
        keys = [k for k in seconds if k.startswith(side)]
        total = sum(seconds[k] for k in keys)
        print(f"\n| {side} part | MAC/px | s/image | share |\n|---|---|---|---|")
        for k in keys:
            rows.append({"part": k, "macs_per_pixel": macs[k] / n, "seconds": seconds[k] / n, "share": seconds[k] / total})
            print(f"| {k.split(': ', 1)[1]} | {macs[k] / n / 1000:,.1f} k | {seconds[k] / n:.3f} | {seconds[k] / total:.0%} |")
        print(f"| **total** | {sum(macs[k] for k in keys) / n / 1000:,.1f} k | {total / n:.3f} | |")
    if a.json:
        Path(a.json).write_text(json.dumps({"images": n, "quality": a.quality, "threads": a.threads,
                                            "precision": net.precision, "parts": rows}, indent=1))


if __name__ == "__main__":
    main()

"""Other ways to run g_s in float32, each against the inference copy's own, in this process.

    python benchmarks/gs_alternatives.py [--latent 32 48] [--threads 2] [--repeat 7] [--compile]

On one latent window of ``--latent`` h w (32 x 48: a Kodak image, 512 x 768 pixels), with the
shipped weights' inference copy (``gancodec.models.inference``), best of ``--repeat``:

1. each of g_s's layers alone (where the time goes);
2. its last IGDN as matrix products over chunks of pixels (channels-last rows of C values) that
   stay in the cache: the normalisation's three elementwise passes read and write the whole
   activation otherwise;
3. its costliest transposed convolution (5 x 5, stride 2, 128 -> 128 channels) as a 3 x 3
   convolution + pixel shuffle (36 taps per output pixel where the transposed one has 25: how the
   inference copy runs g_s's 3-channel last layer);
4. with ``--compile``, the whole g_s through ``torch.compile`` (and its compile time).

Each alternative's largest difference from the inference copy's output is printed beside its
time; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import time

import torch

from gancodec.models.inference import SubpixelDeconv, inference_copy
from gancodec.weights import load_model


def best_of(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def chunked_gdn(gdn, x: torch.Tensor, pixels: int) -> torch.Tensor:
    """An InferenceGDN's output as addmm over ``pixels`` rows at a time (x channels-last)."""
    B, C, H, W = x.shape
    gamma, beta = gdn.gamma[:, :, 0, 0].t(), gdn.beta
    rows = x.permute(0, 2, 3, 1).reshape(-1, C)  # a view: channels-last memory is pixel-major
    out = torch.empty_like(rows)
    for i in range(0, rows.shape[0], pixels):
        r, o = rows[i:i + pixels], out[i:i + pixels]
        torch.addmm(beta, r * r, gamma, out=o)
        (o.sqrt_() if gdn.gdn.inverse else o.rsqrt_()).mul_(r)
    return out.reshape(B, H, W, C).permute(0, 3, 1, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latent", type=int, nargs=2, default=[32, 48])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--compile", action="store_true", help="also torch.compile the whole g_s (compiling takes ~20 s)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    net = inference_copy(load_model().model, torch.device("cpu"), "float32")
    layers = [*net.g_s.body, net.g_s.tail]
    y = torch.randn(1, net.config.M, *a.latent).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        print(f"g_s on a {a.latent[0]} x {a.latent[1]} latent, {a.threads} threads, best of {a.repeat}")
        print(f"whole g_s: {best_of(lambda: net.g_s(y), a.repeat) * 1000:.1f} ms")
        inputs, x = [], y
        for layer in layers:
            inputs.append(x)
            t = best_of(lambda: layer(x), a.repeat)
            x = layer(x)
            print(f"  {type(layer).__name__:16s} -> {tuple(x.shape[1:])}: {t * 1000:.1f} ms")
        gdn_at = max(i for i, m in enumerate(layers) if type(m).__name__ == "InferenceGDN")
        gdn, x = layers[gdn_at], inputs[gdn_at]
        ref = gdn(x)
        print(f"last IGDN as its convolution: {best_of(lambda: gdn(x), a.repeat) * 1000:.1f} ms")
        for pixels in (1024, 2048, 4096, 8192):
            t = best_of(lambda: chunked_gdn(gdn, x, pixels), a.repeat)
            diff = (chunked_gdn(gdn, x, pixels) - ref).abs().max().item()
            print(f"  as addmm over {pixels} pixels at a time: {t * 1000:.1f} ms (max difference {diff:.1e})")
        deconvs = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.ConvTranspose2d)]
        i = deconvs[-1]
        deconv, x = layers[i], inputs[i]
        sub = SubpixelDeconv(deconv)
        print(f"last 128-channel transposed convolution: {best_of(lambda: deconv(x), a.repeat) * 1000:.1f} ms; "
              f"as 3x3 convolution + pixel shuffle: {best_of(lambda: sub(x), a.repeat) * 1000:.1f} ms "
              f"(max difference {(sub(x) - deconv(x)).abs().max().item():.1e})")
        if a.compile:
            t0 = time.perf_counter()
            compiled = torch.compile(net.g_s)
            compiled(y)
            made = time.perf_counter() - t0
            t = best_of(lambda: compiled(y), a.repeat)
            print(f"torch.compile(g_s): {t * 1000:.1f} ms after {made:.1f} s of compiling "
                  f"(max difference {(compiled(y) - net.g_s(y)).abs().max().item():.1e})")


if __name__ == "__main__":
    main()

"""Where the artifacts of issue 20 item 6 come from: false colour, grain on flat areas, ringing at text.

    python benchmarks/artifact_probe.py [--weights W.pt] [--kodak ../shared/datasets/kodak]
        [--qualities 2 4 6] [--crop 256] [--json artifacts.json]

On a few crops (Kodak textures, a synthetic document, UI and studio shot) and at each quality,
for gancodec (real bytes) and WebP / AVIF 4:4:4 at the highest setting whose file is no larger:

* ``chroma share``: the part of the squared error in the two chroma axes of an orthonormal
  opponent space (luma (R+G+B)/sqrt 3; RGB MSE is the sum of the three). A codec that spends
  little on chroma shows a high share; false colour shows as chroma error where the input has
  none;
* ``grey false colour``: the image made grey (R = G = B) is coded; the RMS of the decode's chroma
  (in 8-bit levels) is colour the codec invented. ``grey bits``: the grey file's size over the
  colour file's at the same setting (what the colour costs);
* ``flat grain``: RMS error over flat pixels (the input's 5x5 local std below 1 level);
* ``period-2 share``: of the error power on flat pixels, the share at the highest spatial
  frequencies (the 2-pixel periods that a stride-2 transposed convolution leaves as a checkerboard);
* ``grey`` / ``as one channel``: PSNR of the grey image's decode, and of its channel mean;
* ``transform PSNR``: gancodec's decoder on the *unquantised* latent (g_s(y)) against the
  input: what the transforms can represent at all, before any rounding. If that is already
  low on text, the loss is in the transforms (what they were trained on), not in the entropy
  coding; ``means-exact PSNR`` decodes round(y - mu) + mu as the coder does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancodec import compress, decompress
from gancodec.data.synthetic import generate
from gancodec.eval import baselines, metrics
from gancodec.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
OPP = np.array([[1, 1, 1], [1, -1, 0], [1, 1, -2]], dtype=np.float64)
OPP /= np.linalg.norm(OPP, axis=1, keepdims=True)  # orthonormal: luma, red-green, yellow-blue


def _opponent(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ OPP.T


def _flat_mask(img: np.ndarray, thresh: float = 1.0) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    g = img.astype(np.float64).mean(axis=2)
    m = uniform_filter(g, 5)
    var = uniform_filter(g * g, 5) - m * m
    return np.sqrt(np.maximum(var, 0)) < thresh


def _period2_share(err: np.ndarray, mask: np.ndarray) -> float | None:
    """Share of the error power (luma) at the 2-pixel periods, over the largest flat square."""
    if mask.mean() < 0.05:
        return None
    e = (err @ OPP[0]) * mask
    p = np.abs(np.fft.fft2(e - e[mask].mean() * mask)) ** 2
    h, w = p.shape
    hi = np.zeros_like(p, dtype=bool)
    hi[h // 2 - h // 16 : h // 2 + h // 16 + 1, :] = True  # within 1/16 of Nyquist in y or x
    hi[:, w // 2 - w // 16 : w // 2 + w // 16 + 1] = True
    total = p.sum()
    return float(p[hi].sum() / total) if total > 0 else None


def _stats(orig: np.ndarray, dec: np.ndarray, nbytes: int) -> dict:
    err = dec.astype(np.float64) - orig.astype(np.float64)
    o = _opponent(err)
    se = (o**2).reshape(-1, 3).sum(0)
    flat = _flat_mask(orig)
    return {"bpp": metrics.bpp(nbytes, *orig.shape[:2]), "psnr": metrics.psnr(orig, dec),
            "chroma_share": float(se[1:].sum() / max(se.sum(), 1e-12)),
            "flat_fraction": float(flat.mean()),
            "flat_grain_rms": float(np.sqrt((err[flat] ** 2).mean())) if flat.any() else None,
            "period2_share": _period2_share(err, flat)}


def _grey(img: np.ndarray) -> np.ndarray:
    g = np.round(img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def _chroma_rms(dec: np.ndarray) -> float:
    return float(np.sqrt((_opponent(dec)[..., 1:] ** 2).sum(-1).mean()))


@torch.no_grad()
def _transform_psnr(model, img: np.ndarray, rate: float) -> tuple[float, float]:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    y = model.analysis(x, rate)
    exact = model.synthesis(y, rate).clamp(0, 1)
    y_hat = model.quantise(y)
    quant = model.synthesis(y_hat, rate).clamp(0, 1)
    to8 = lambda t: (t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    return metrics.psnr(img, to8(exact)), metrics.psnr(img, to8(quant))


def crops(kodak: Path, size: int) -> dict[str, np.ndarray]:
    out = {}
    # fine periodic texture and flat areas in Kodak: the fence (kodim19), shutters (kodim08),
    # the wall (kodim01), the sky over the lighthouse (kodim21)
    for name, (y, x) in {"kodim19": (300, 60), "kodim08": (40, 300), "kodim01": (200, 300),
                         "kodim21": (40, 40)}.items():
        p = kodak / f"{name}.png"
        if p.exists():
            a = np.asarray(Image.open(p).convert("RGB"))
            out[f"{name}@{y},{x}"] = a[y : y + size, x : x + size]
    for kind, seed in (("document", 7), ("ui", 7), ("studio", 7)):
        out[f"{kind}"] = np.asarray(generate(kind, seed=9001, index=seed, size=(size, size)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None)
    p.add_argument("--kodak", default=str(ROOT / "../shared/datasets/kodak"))
    p.add_argument("--qualities", type=float, nargs="+", default=[2, 4, 6])
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--only", nargs="+", default=None, help="crops whose name starts with one of these")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_grad_enabled(False)
    model = load_model(a.weights).model
    rows = []
    for name, img in crops(Path(a.kodak), a.crop).items():
        if a.only and not name.startswith(tuple(a.only)):
            continue
        for q in a.qualities:
            data = compress(img, quality=q, weights=a.weights, fallback=False)
            dec = np.asarray(decompress(data, weights=a.weights))
            row = {"crop": name, "quality": q, "gancodec": _stats(img, dec, len(data))}
            grey = _grey(img)
            gdata = compress(grey, quality=q, weights=a.weights, fallback=False)
            gdec = np.asarray(decompress(gdata, weights=a.weights))
            row["gancodec"]["grey_false_colour"] = _chroma_rms(gdec)
            # the same grey image decoded as one channel (the channel mean: what channels = 1 gives)
            mono = np.repeat(gdec.astype(np.float64).mean(2, keepdims=True).round().astype(np.uint8), 3, axis=2)
            row["gancodec"]["grey_psnr"], row["gancodec"]["grey_psnr_one_channel"] = (
                metrics.psnr(grey, gdec), metrics.psnr(grey, mono))
            row["gancodec"]["grey_bits"] = len(gdata) / len(data)
            row["gancodec"]["transform_psnr"], row["gancodec"]["means_exact_psnr"] = _transform_psnr(model, img, q - 1)
            for codec in ("webp", "avif"):
                c = baselines.get_codec(codec)
                if not c.available()[0]:
                    continue
                m = baselines.match_bpp(c, img, row["gancodec"]["bpp"])
                cdata = c.encode(img, m.setting)
                row[codec] = _stats(img, c.decode(cdata), len(cdata))
                gd = c.encode(_grey(img), m.setting)
                row[codec]["grey_false_colour"] = _chroma_rms(c.decode(gd))
                row[codec]["grey_bits"] = len(gd) / len(cdata)
            rows.append(row)
            fmt = lambda v, s: "  n/a" if v is None else format(v, s)  # noqa: E731
            line = [f"{name:16s} q{q:g}"]
            for codec in ("gancodec", "webp", "avif"):
                if codec in row:
                    r = row[codec]
                    line.append(f"{codec} {r['bpp']:.3f}bpp {r['psnr']:5.2f}dB chroma {r['chroma_share']:.2f} "
                                f"greyC {r['grey_false_colour']:.2f} greyBits {r['grey_bits']:.2f} "
                                f"flat {fmt(r['flat_grain_rms'], '.2f')} p2 {fmt(r['period2_share'], '.3f')}")
            g = row["gancodec"]
            line.append(f"transform {g['transform_psnr']:.2f} dB, quantised {g['means_exact_psnr']:.2f} dB, "
                        f"grey {g['grey_psnr']:.2f} dB, as one channel {g['grey_psnr_one_channel']:.2f} dB")
            print(" | ".join(line), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "qualities": a.qualities, "crop": a.crop}, indent=2))


if __name__ == "__main__":
    main()

"""Issue 19's check of a realism decoder: realism metrics beside PSNR/MS-SSIM/SSIMULACRA2, at equal bytes.

:func:`realism_table` encodes each image once per quality; the same bytes decode at every
realism strength (0 = the fidelity decoder); each classical codec is encoded at the highest
setting whose file is no larger than ours (``baselines.match_bpp``), image by image. Per
(quality, decoder): mean bpp, PSNR, MS-SSIM, SSIMULACRA2 and ``corr`` (the mean per-image
correlation of decoded - fidelity with original - fidelity: whether the added detail lines up
with what the fidelity decoder lost; noise scores ~0), and over the set the Laplacian-patch SWD
and the radial log-spectrum distance to the originals (:mod:`.realism_metrics`). A control,
``fid+noise``, adds Gaussian noise with the realism decoder's detail energy to the fidelity
decode: it lowers SWD too without being realism.

:func:`check` applies issue 19's bar at each quality: realism SWD <= 0.7 x fidelity's and below
each classical codec's, mean PSNR within 1.5 dB of fidelity, corr > 0.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import baselines, metrics
from .realism_metrics import realism_metrics


def _corr(x: np.ndarray, fid: np.ndarray, out: np.ndarray) -> float:
    lost = x.astype(np.float64) - fid
    added = out.astype(np.float64) - fid
    if not added.std():
        return 0.0
    return float(np.corrcoef(lost.ravel(), added.ravel())[0, 1])


def decoder_name(strength: float) -> str:
    return "fidelity" if strength == 0 else ("realism" if strength == 1 else f"realism@{strength:g}")


def realism_table(images: Mapping[str, np.ndarray], qualities: Sequence[float], *, weights=None, realism_weights=None,
                  strengths: Sequence[float] = (0.0, 1.0), codecs: Sequence[str] = ("webp", "avif"),
                  perceptual: bool = True, seed: int = 0,
                  on_image: Callable[[str, float, dict, dict], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-image rows, per (quality, decoder) table with the set metrics). ``on_image(name, q,
    decoded, sizes)`` sees every image's decodes (for crops)."""
    from .. import compress, decompress

    strengths = sorted(set(strengths) | {0.0})
    rng = np.random.default_rng(seed)
    decoded: dict[tuple[float, str], list[np.ndarray]] = {}
    rows = []
    for name, x in images.items():
        for q in qualities:
            data = compress(x, quality=q, weights=weights, fallback=False)  # a WebP stream has no realism decoder
            outs = {decoder_name(s): np.asarray(decompress(data, weights=weights, realism=s if s > 0 else False,
                                                          realism_weights=realism_weights)) for s in strengths}
            fid, real = outs["fidelity"], outs[decoder_name(max(strengths))]
            rms = float(np.sqrt(np.mean((real.astype(np.float64) - fid) ** 2)))
            outs["fid+noise"] = np.clip(fid + rng.normal(0, rms, fid.shape), 0, 255).round().astype(np.uint8)
            sizes = {k: len(data) for k in outs}
            for c in codecs:
                m = baselines.match_bpp(c, x, len(data) * 8 / (x.shape[0] * x.shape[1]))
                codec = baselines.get_codec(c)
                outs[c] = codec.decode(codec.encode(x, m.setting))
                sizes[c] = m.bytes
            for k, out in outs.items():
                decoded.setdefault((q, k), []).append(out)
                row = {"image": name, "quality": q, "decoder": k, "bytes": sizes[k],
                       "bpp": sizes[k] * 8 / (x.shape[0] * x.shape[1]), "psnr": metrics.psnr(x, out),
                       "corr": _corr(x, fid, out)}
                try:
                    row["ms_ssim"] = metrics.ms_ssim(x, out)
                except ValueError:
                    row["ms_ssim"] = float("nan")
                if perceptual:
                    row["ssimulacra2"] = metrics.ssimulacra2(x, out)
                rows.append(row)
            if on_image:
                on_image(name, q, outs, sizes)
    df = pd.DataFrame(rows)
    table = df.groupby(["quality", "decoder"], as_index=False, sort=False).mean(numeric_only=True)
    originals = list(images.values())
    extra = [realism_metrics(originals, decoded[(r.quality, r.decoder)], seed=seed) for r in table.itertuples()]
    table = pd.concat([table, pd.DataFrame(extra)[["swd", "spectrum_db", "spectrum_signed_db"]]], axis=1)
    return df, table


def check(table: pd.DataFrame, codecs: Sequence[str], decoder: str = "realism") -> dict:
    """Issue 19's bar per quality: {q: {swd_vs_fidelity, psnr_drop_db, corr, swd_below_<codec>..., pass}}."""
    verdict = {}
    for q, t in table.groupby("quality"):
        t = t.set_index("decoder")
        if decoder not in t.index:
            continue
        real = t.loc[decoder]
        ok = {"swd_vs_fidelity": float(real["swd"] / t.loc["fidelity", "swd"]),
              "psnr_drop_db": float(t.loc["fidelity", "psnr"] - real["psnr"]), "corr": float(real["corr"]),
              **{f"swd_below_{c}": bool(real["swd"] < t.loc[c, "swd"]) for c in codecs if c in t.index}}
        ok["pass"] = bool(ok["swd_vs_fidelity"] <= 0.7 and ok["psnr_drop_db"] <= 1.5 and ok["corr"] > 0
                          and all(v for k, v in ok.items() if k.startswith("swd_below_")))
        verdict[f"q{q:g}"] = ok
    return verdict

"""gancodec's rate-distortion sweep, and curve-vs-curve comparisons at equal bpp.

gancodec is a :class:`~gancodec.eval.baselines.Codec` like the others
(:func:`~gancodec.eval.baselines.gancodec_codec`), so its sweep is the same path as theirs:
rates from real ``.gcx`` bytes, metrics from :func:`~gancodec.eval.metrics.compute_metrics`,
each quality averaged over the images (bpp and PSNR separately), as CompressAI's published
curves are. :func:`rd_sweep` is that sweep with gancodec's column names.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import pandas as pd

from . import baselines


def rd_sweep(images: Mapping[str, np.ndarray], qualities, *, device=None, weights=None,
             with_ms_ssim: bool = True, perceptual: bool = False, progress=None, refine_steps: int = 0,
             fallback: bool = False) -> pd.DataFrame:
    """One row per (image, quality): bytes, bpp, psnr, ms_ssim, encode_s, decode_s (+ ssimulacra2),
    and ``quality`` (= ``setting``). ``progress`` is called per (image, quality).

    ``refine_steps``: encoder-side latent search per tile (``compress(..., refine_steps=)``).
    ``fallback``: measure ``compress(..., fallback=True)`` (codec ``gancodec+webp``) instead of
    the learned codec, with a ``payload`` column (learned | webp) per point."""
    codec = baselines.gancodec_codec(weights=weights, device=device, refine_steps=refine_steps, fallback=fallback)
    payloads: list[str] = []
    if fallback:  # the sweep encodes once per row, in row order: note each stream's payload
        from ..bitstream import read_header

        def encode(img: np.ndarray, quality: float, inner=codec._encode) -> bytes:
            data = inner(img, quality)
            payloads.append(read_header(data).payload)
            return data

        codec = dataclasses.replace(codec, _encode=encode)
    df = baselines.sweep(codec, images, [float(q) for q in qualities], perceptual=perceptual, progress=progress,
                         with_ms_ssim=with_ms_ssim)
    if df.empty:
        return df
    df.insert(df.columns.get_loc("setting") + 1, "quality", df["setting"].astype(float))
    if fallback:
        df["payload"] = payloads
    return df


def rd_curve(df: pd.DataFrame, key: str = "quality") -> pd.DataFrame:
    """Mean of every metric per setting, sorted by bpp."""
    numeric = df.drop(columns=[c for c in ("image", "codec") if c in df])
    return numeric.groupby(key, as_index=False).mean().sort_values("bpp", ignore_index=True)


def psnr_at(bpp: np.ndarray, curve_bpp: np.ndarray, curve_psnr: np.ndarray) -> np.ndarray:
    """A curve's PSNR at given bpps (linear in log bpp; NaN outside the curve's range)."""
    order = np.argsort(curve_bpp)
    x, y = np.log(np.asarray(curve_bpp, float)[order]), np.asarray(curve_psnr, float)[order]
    q = np.log(np.asarray(bpp, float))
    out = np.interp(q, x, y)
    out[(q < x[0]) | (q > x[-1])] = np.nan
    return out


def margin_over(ours_bpp, ours_psnr, other_bpp, other_psnr, lo: float = 0.15, hi: float = 1.0,
                points: int = 50) -> dict:
    """Our PSNR minus the other curve's at equal bpp, on a log grid over [lo, hi].

    ``min_db`` > 0 means we beat it at every rate in the range; ``covered`` says whether both
    curves span the whole range (else the comparison is partial and says so).
    """
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), points))
    gap = psnr_at(grid, ours_bpp, ours_psnr) - psnr_at(grid, other_bpp, other_psnr)
    ok = ~np.isnan(gap)
    if not ok.any():
        return {"min_db": float("nan"), "mean_db": float("nan"), "worst_bpp": float("nan"), "covered": False}
    worst = int(np.nanargmin(gap))
    return {"min_db": float(np.nanmin(gap)), "mean_db": float(np.nanmean(gap)), "worst_bpp": float(grid[worst]),
            "covered": bool(ok.all())}

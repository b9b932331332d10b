"""Bjøntegaard delta rate and delta PSNR between two rate-distortion curves.

The field's recipe (VCEG-M33, with the piecewise cubic interpolation JVET's CTC spreadsheets
and the ``bjontegaard`` package use instead of the original cubic polynomial fit):

* BD-rate: interpolate log10(rate) as a function of quality on each curve with a monotone
  piecewise cubic (``scipy.interpolate.PchipInterpolator``), integrate both over the quality
  range the curves share, and turn the mean log-rate gap into a percentage:
  ``(10 ** mean_gap - 1) * 100``. Negative means the test codec needs fewer bits.
* BD-PSNR: interpolate quality as a function of log10(rate) the same way, over the shared
  log-rate range; positive means the test codec is better.

Points may come in any order: each curve is sorted along the axis being integrated over, and
points that share that coordinate are averaged (pchip needs strictly increasing abscissae).
Curves that do not overlap raise ``ValueError``: there is nothing to compare, and
extrapolating would invent numbers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def _curve(rate: Sequence[float], quality: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise ValueError(f"{name}: {r.size} rates but {q.size} quality values")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise ValueError(f"{name}: rates and quality values must be finite (an inf PSNR is a lossless point; drop it)")
    if np.any(r <= 0):
        raise ValueError(f"{name}: rates must be positive for a log-rate curve")
    return np.log10(r), q


def _interpolant(x: np.ndarray, y: np.ndarray, name: str) -> PchipInterpolator:
    """Pchip of y(x) after sorting by x and averaging y over repeated x."""
    xs, inverse = np.unique(x, return_inverse=True)
    ys = np.bincount(inverse, weights=y) / np.bincount(inverse)
    if xs.size < 2:
        raise ValueError(f"{name}: need at least 2 distinct points, got {xs.size}")
    return PchipInterpolator(xs, ys)


def _mean_gap(x_a: np.ndarray, y_a: np.ndarray, x_t: np.ndarray, y_t: np.ndarray, axis: str,
              window: tuple[float, float] | None = None) -> float:
    """Mean of (y_test - y_anchor) over the shared x range (within ``window`` when given), both as pchip curves y(x)."""
    f_a, f_t = _interpolant(x_a, y_a, "anchor"), _interpolant(x_t, y_t, "test")
    lo, hi = max(x_a.min(), x_t.min()), min(x_a.max(), x_t.max())
    if window is not None:
        lo, hi = max(lo, window[0]), min(hi, window[1])
    if not hi > lo:
        raise ValueError(
            f"curves do not overlap in {axis}: anchor spans [{x_a.min():.4g}, {x_a.max():.4g}], "
            f"test spans [{x_t.min():.4g}, {x_t.max():.4g}]"
        )
    return float((f_t.integrate(lo, hi) - f_a.integrate(lo, hi)) / (hi - lo))


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_psnr: Sequence[float],
    test_rate: Sequence[float],
    test_psnr: Sequence[float],
    quality_window: tuple[float, float] | None = None,
) -> float:
    """BD-rate of the test curve against the anchor, in percent (negative = fewer bits).

    Any rate unit works (bpp, bytes) as long as both curves use it; any quality in dB works
    (PSNR, MS-SSIM dB). ``quality_window`` (lo, hi) narrows the integral to that quality range
    (e.g. the PSNR the test codec reaches between 0.25 and 0.75 bpp: :func:`quality_at`).
    """
    lr_a, q_a = _curve(anchor_rate, anchor_psnr, "anchor")
    lr_t, q_t = _curve(test_rate, test_psnr, "test")
    gap = _mean_gap(q_a, lr_a, q_t, lr_t, "quality", quality_window)
    return (10.0**gap - 1.0) * 100.0


def quality_at(rate: Sequence[float], quality: Sequence[float], at: Sequence[float]) -> np.ndarray:
    """The curve's quality at the rates ``at`` (pchip over log10 rate; nan outside the measured range)."""
    lr, q = _curve(rate, quality, "curve")
    f = _interpolant(lr, q, "curve")
    x = np.log10(np.asarray(at, dtype=np.float64))
    return np.where((x >= lr.min()) & (x <= lr.max()), f(np.clip(x, lr.min(), lr.max())), np.nan)


def rate_at(rate: Sequence[float], quality: Sequence[float], at: Sequence[float]) -> np.ndarray:
    """The rate the curve needs for the qualities ``at`` (pchip of log10 rate over quality; nan outside)."""
    lr, q = _curve(rate, quality, "curve")
    f = _interpolant(q, lr, "curve")
    y = np.asarray(at, dtype=np.float64)
    return np.where((y >= q.min()) & (y <= q.max()), 10.0 ** f(np.clip(y, q.min(), q.max())), np.nan)


def bd_psnr(
    anchor_rate: Sequence[float],
    anchor_psnr: Sequence[float],
    test_rate: Sequence[float],
    test_psnr: Sequence[float],
) -> float:
    """BD-PSNR of the test curve against the anchor, in dB (positive = better quality)."""
    lr_a, q_a = _curve(anchor_rate, anchor_psnr, "anchor")
    lr_t, q_t = _curve(test_rate, test_psnr, "test")
    return _mean_gap(lr_a, q_a, lr_t, q_t, "log-rate")


def compare_at(anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float],
               test_psnr: Sequence[float], at: Sequence[float] = (0.25, 0.5, 0.75)) -> dict:
    """Where the test curve stands against the anchor at the rates ``at`` and over their range.

    Returns ``{"at", "test_quality", "anchor_quality", "delta_quality" (test - anchor), "extra_rate"
    (test rate / anchor's rate for the test quality - 1: positive = the test codec spends more),
    "bd_rate_window"}``; nan where a curve does not reach (never extrapolated).
    """
    at = np.asarray(at, dtype=np.float64)
    ours, theirs = quality_at(test_rate, test_psnr, at), quality_at(anchor_rate, anchor_psnr, at)
    extra = at / rate_at(anchor_rate, anchor_psnr, ours) - 1.0
    window = (float(np.nanmin(ours)), float(np.nanmax(ours))) if np.isfinite(ours).sum() >= 2 else None
    try:
        bd = bd_rate(anchor_rate, anchor_psnr, test_rate, test_psnr, quality_window=window) if window else float("nan")
    except ValueError:
        bd = float("nan")
    return {"at": at.tolist(), "test_quality": ours.tolist(), "anchor_quality": theirs.tolist(),
            "delta_quality": (ours - theirs).tolist(), "extra_rate": extra.tolist(), "bd_rate_window": bd}

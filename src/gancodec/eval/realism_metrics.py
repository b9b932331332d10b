"""Realism metrics that need no downloaded network: they compare *distributions* over a set.

* :func:`laplacian_swd` -- sliced Wasserstein distance between the distributions of 7x7 patches
  of each Laplacian pyramid level of the decoded images and of the originals (the metric of
  ProGAN, Karras et al. 2018, Sec. 5 and App. D). One change: ProGAN normalises each patch set
  by its *own* per-channel mean and standard deviation, which hides a uniform loss of texture
  energy (a blurred band, divided by its own small deviation, looks like the original). Here
  both sets are normalised with the **originals'** statistics, so energy that a decoder lost
  (blur) or added (noise) counts.
* :func:`spectrum_distance` -- the distance, in dB, between the radially averaged log power
  spectra of the two sets (luma, Hann-windowed): blur is missing high-frequency energy, noise is
  excess.

Both are 0 for identical sets and deterministic: patch positions come from each image's size,
its index and ``seed``; the projection directions from ``seed``. Paired sets of equal shapes
use the same positions, so a decoder is compared with its originals patch for patch in
sampling (not in the distance, which only sees the two distributions).

Inputs: sequences of ``uint8`` HxWx3 (or HxW) arrays, originals first; the sets may differ in
length and sizes (e.g. "other photos" as a reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.ndimage import convolve1d

#: 5-tap binomial kernel of the Gaussian/Laplacian pyramid (Burt & Adelson; ProGAN's).
_KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0

PATCH = 7  # ProGAN's 7x7 neighbourhoods
LEVELS = 4  # Laplacian bands 0..3 (full resolution down to 1/8); the low-pass residual is left out
PATCHES_PER_IMAGE = 1024  # per image and level (fewer when the level has fewer positions)
DIRECTIONS = 512  # random projection directions


def _float(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise TypeError(f"realism metrics take uint8 images, got {a.dtype}")
    a = a.astype(np.float32) / 255.0
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"expected an HxW or HxWxC image with C in (1, 3), got shape {a.shape}")
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _blur(a: np.ndarray) -> np.ndarray:
    return convolve1d(convolve1d(a, _KERNEL, axis=0, mode="reflect"), _KERNEL, axis=1, mode="reflect")


def _down(a: np.ndarray) -> np.ndarray:
    return _blur(a)[::2, ::2]


def _up(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    up = np.zeros(shape, np.float32)
    up[::2, ::2] = a[: (shape[0] + 1) // 2, : (shape[1] + 1) // 2]
    return _blur(up) * 4.0


def laplacian_pyramid(img: np.ndarray, levels: int = LEVELS) -> list[np.ndarray]:
    """The first ``levels`` Laplacian bands of a uint8 image (float32, HxWx3; band k at 1/2^k size)."""
    g = _float(img)
    bands = []
    for _ in range(levels):
        low = _down(g)
        bands.append(g - _up(low, g.shape))
        g = low
    return bands


def _patches(band: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random 7x7x3 patches of ``band`` as rows of 147 values (all positions when fewer)."""
    h, w = band.shape[0] - PATCH + 1, band.shape[1] - PATCH + 1
    if h <= 0 or w <= 0:
        return np.empty((0, PATCH * PATCH * 3), np.float32)
    total = h * w
    idx = rng.choice(total, size=n, replace=False) if total > n else np.arange(total)
    ys, xs = idx // w, idx % w
    off = np.arange(PATCH)
    rows = band[ys[:, None, None] + off[None, :, None], xs[:, None, None] + off[None, None, :]]  # n x 7 x 7 x 3
    return rows.reshape(len(idx), -1)


def _descriptors(images: Sequence[np.ndarray], levels: int, per_image: int, seed: int) -> list[np.ndarray]:
    per_level: list[list[np.ndarray]] = [[] for _ in range(levels)]
    for i, img in enumerate(images):
        for k, band in enumerate(laplacian_pyramid(img, levels)):
            rng = np.random.default_rng([seed, i, k, band.shape[0], band.shape[1]])
            per_level[k].append(_patches(band, per_image, rng))
    return [np.concatenate(p) for p in per_level]


def _sliced_w1(a: np.ndarray, b: np.ndarray, directions: np.ndarray) -> float:
    """Mean over directions of the 1-D Wasserstein-1 distance of the projected sets (quantile-matched)."""
    pa, pb = np.sort(a @ directions, axis=0), np.sort(b @ directions, axis=0)
    n = min(len(pa), len(pb))
    return float(np.abs(_quantiles(pa, n) - _quantiles(pb, n)).mean())


def _quantiles(s: np.ndarray, n: int) -> np.ndarray:
    """``n`` evenly spaced quantiles of each column of the sorted ``s`` (linear interpolation)."""
    if len(s) == n:
        return s
    pos = ((np.arange(n) + 0.5) / n) * len(s) - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, len(s) - 1)
    hi = np.clip(lo + 1, 0, len(s) - 1)
    t = np.clip(pos - lo, 0.0, 1.0)[:, None]
    return s[lo] * (1 - t) + s[hi] * t


@dataclass(frozen=True)
class SWD:
    """Laplacian-patch SWD: ``mean`` over the levels, and ``per_level`` (finest first)."""

    mean: float
    per_level: tuple[float, ...]
    patches: int  # descriptors per level in the originals' set


def laplacian_swd(originals: Sequence[np.ndarray], decoded: Sequence[np.ndarray], *, levels: int = LEVELS,
                  patches_per_image: int = PATCHES_PER_IMAGE, directions: int = DIRECTIONS, seed: int = 0) -> SWD:
    """Sliced Wasserstein distance between 7x7 Laplacian-band patches of ``decoded`` and ``originals``.

    Both descriptor sets of a level are normalised with the originals' per-channel mean and
    standard deviation (over the set), so lost or added band energy moves the distance. Lower is
    better; 0 for identical sets.
    """
    if not len(originals) or not len(decoded):
        raise ValueError("laplacian_swd needs at least one original and one decoded image")
    da = _descriptors(originals, levels, patches_per_image, seed)
    db = _descriptors(decoded, levels, patches_per_image, seed)
    rng = np.random.default_rng([seed, 7919])
    per_level = []
    for a, b in zip(da, db):
        if not len(a) or not len(b):
            raise ValueError(f"images too small for {levels} pyramid levels of {PATCH}x{PATCH} patches")
        ch_a = a.reshape(len(a), PATCH * PATCH, 3)
        mean = ch_a.mean(axis=(0, 1))
        std = ch_a.std(axis=(0, 1)) + 1e-8
        na = ((ch_a - mean) / std).reshape(len(a), -1)
        nb = ((b.reshape(len(b), PATCH * PATCH, 3) - mean) / std).reshape(len(b), -1)
        d = rng.standard_normal((na.shape[1], directions))
        d /= np.linalg.norm(d, axis=0, keepdims=True)
        per_level.append(_sliced_w1(na, nb, d))
    return SWD(float(np.mean(per_level)), tuple(per_level), len(da[0]))


SPECTRUM_BINS = 32


def radial_log_spectrum(img: np.ndarray, bins: int = SPECTRUM_BINS) -> np.ndarray:
    """Radially averaged power spectrum of the luma (Hann window), in dB, over ``bins`` equal
    frequency bands from 0 to 0.5 cycles/pixel (DC excluded)."""
    a = _float(img)
    y = a @ np.array([0.299, 0.587, 0.114], np.float32)
    y = y - y.mean()
    win = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
    power = np.abs(np.fft.fft2(y * win)) ** 2 / (win ** 2).sum()
    fy, fx = np.fft.fftfreq(y.shape[0])[:, None], np.fft.fftfreq(y.shape[1])[None, :]
    r = np.sqrt(fy ** 2 + fx ** 2)
    edges = np.linspace(0.0, 0.5, bins + 1)
    which = np.digitize(r, edges) - 1
    ok = (r > 0) & (which < bins)
    sums = np.bincount(which[ok], power[ok], minlength=bins)
    counts = np.bincount(which[ok], minlength=bins)
    return 10 * np.log10(sums / np.maximum(counts, 1) + 1e-12)


def spectrum_distance(originals: Sequence[np.ndarray], decoded: Sequence[np.ndarray], *, bins: int = SPECTRUM_BINS,
                      signed: bool = False) -> float:
    """Mean absolute difference (dB) between the sets' mean radial log power spectra.

    ``signed=True`` returns the mean signed difference instead (decoded minus originals):
    negative when energy is missing (blur), positive when it is in excess (noise)."""
    if not len(originals) or not len(decoded):
        raise ValueError("spectrum_distance needs at least one original and one decoded image")
    sa = np.mean([radial_log_spectrum(x, bins) for x in originals], axis=0)
    sb = np.mean([radial_log_spectrum(x, bins) for x in decoded], axis=0)
    diff = sb - sa
    return float(diff.mean() if signed else np.abs(diff).mean())


def realism_metrics(originals: Sequence[np.ndarray], decoded: Sequence[np.ndarray], *, seed: int = 0, **swd_kw) -> dict:
    """Both metrics as one flat dict: ``swd``, ``swd_l0``..``swd_l3``, ``spectrum_db``, ``spectrum_signed_db``
    (``swd_kw``: :func:`laplacian_swd`'s settings)."""
    s = laplacian_swd(originals, decoded, seed=seed, **swd_kw)
    out = {"swd": s.mean, **{f"swd_l{k}": v for k, v in enumerate(s.per_level)}}
    out["spectrum_db"] = spectrum_distance(originals, decoded)
    out["spectrum_signed_db"] = spectrum_distance(originals, decoded, signed=True)
    return out

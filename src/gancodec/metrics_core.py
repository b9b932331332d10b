"""The one PSNR of gancodec: mean squared error and PSNR of 8-bit images, defined once.

:mod:`gancodec.eval.metrics` re-exports these (with its other metrics); the codec layer
(:mod:`gancodec.fallback`, which may not import ``gancodec.eval``) and bulk verification use them
from here. This module imports only numpy and math: it is the bottom layer of the import
contract (pyproject.toml), so anything in gancodec may import it.
"""

from __future__ import annotations

import math

import numpy as np


def _as_hwc(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ValueError(f"{name}: metrics take uint8 images, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected HxW or HxWxC with C in (1, 3), got shape {arr.shape}")
    return arr


def _pair(x: np.ndarray, x_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, x_hat = _as_hwc(x, "original"), _as_hwc(x_hat, "reconstruction")
    if x.shape != x_hat.shape:
        raise ValueError(f"shape mismatch: original {x.shape} vs reconstruction {x_hat.shape}")
    return x, x_hat


# --------------------------------------------------------------------------- fidelity
def mse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean squared error over all pixels and channels, in 8-bit units."""
    x, x_hat = _pair(x, x_hat)
    d = x.astype(np.float64) - x_hat.astype(np.float64)
    return float(np.mean(d * d))


def psnr(x: np.ndarray, x_hat: np.ndarray) -> float:
    """PSNR in dB over all channels with a 255 peak; ``inf`` when the images are identical.

    The one PSNR of gancodec: evaluation, bulk verification, training logs and the scripts
    use this (or :func:`psnr_from_mse` for an error they already have)."""
    return psnr_from_mse(mse(x, x_hat))


def psnr_from_mse(err: float, peak: float = 255.0) -> float:
    """PSNR in dB of a mean squared error at ``peak`` (255 for 8-bit units, 1.0 for [0, 1]
    tensors); ``inf`` for a zero error."""
    if err < 0 or math.isnan(err):
        raise ValueError(f"mean squared error must be >= 0, got {err}")
    return math.inf if err == 0.0 else 10.0 * math.log10(peak**2 / err)

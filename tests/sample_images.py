"""Test images: scikit-image's bundled photos (shipped with the package, so tests run anywhere)."""

from __future__ import annotations

import numpy as np


def astronaut(size: int = 256) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:size, 128 : 128 + size])


def coffee() -> np.ndarray:
    from skimage import data

    return data.coffee()  # 400 x 600 RGB


def camera(size: int = 256) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.camera()[:size, :size])  # grayscale


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)

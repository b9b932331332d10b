"""Test images: scikit-image's bundled photos (shipped with the package, so tests run anywhere),
and a page of text drawn with Pillow (the content the WebP fallback is for)."""

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


def text_page(width: int = 160, height: int = 96, grey: bool = False) -> np.ndarray:
    """Black text on white in Pillow's built-in bitmap font: a document/screenshot in miniature."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    for i, y in enumerate(range(3, height - 10, 12)):
        draw.text((3, y), f"{i:02d} The quick brown fox jumps over", fill=(0, 0, 0) if grey else (20, 20, 120 * (i % 2)))
    arr = np.asarray(im)
    return np.ascontiguousarray(arr[:, :, 0]) if grey else arr


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)

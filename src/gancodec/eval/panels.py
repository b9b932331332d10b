"""Side-by-side crops for looking at decodes: where an image has texture, and a strip of panels."""

from __future__ import annotations

import numpy as np

__all__ = ["texture_window", "side_by_side"]


def texture_window(x: np.ndarray, size: int, stride: int = 32) -> tuple[int, int]:
    """Top-left corner of the ``size`` window with the largest mean gradient magnitude."""
    g = np.asarray(x, np.float32).mean(axis=2)
    grad = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    best, corner = -1.0, (0, 0)
    for i in range(0, grad.shape[0] - size + 1, stride):
        for j in range(0, grad.shape[1] - size + 1, stride):
            v = float(grad[i:i + size, j:j + size].mean())
            if v > best:
                best, corner = v, (i, j)
    return corner


def side_by_side(panels: list[np.ndarray], corner: tuple[int, int], size: int, gap: int = 4) -> np.ndarray:
    """The ``size`` window at ``corner`` of each RGB panel, left to right on white, ``gap`` px apart
    (a window cut short by a panel's edge keeps the white beyond it)."""
    i, j = corner
    tiles = [p[i:i + size, j:j + size] for p in panels]
    out = np.full((size, len(tiles) * (size + gap) - gap, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        out[:t.shape[0], k * (size + gap):k * (size + gap) + t.shape[1]] = t
    return out

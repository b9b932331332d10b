"""Random training crops from a set of images held in memory as uint8."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def list_images(sources: list[str]) -> list[Path]:
    """Image paths from folders (recursively) or from CSV lists (``clean_path`` column, else ``path``)."""
    paths: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.suffix.lower() == ".csv":
            with open(p, newline="") as fh:
                paths += [Path(row.get("clean_path") or row["path"]) for row in csv.DictReader(fh)]
        else:
            raise FileNotFoundError(f"training source {src!r} is neither a folder nor a CSV list")
    if not paths:
        raise FileNotFoundError(f"no training images found in {sources}")
    return paths


class CropSampler:
    """Holds images as uint8 arrays and draws random crops with flips."""

    def __init__(self, paths: list[Path], crop: int, seed: int = 0) -> None:
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.images = []
        for p in paths:
            with Image.open(p) as img:
                arr = np.asarray(img.convert("RGB"))
            if min(arr.shape[:2]) >= crop:
                self.images.append(arr)
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop}")
        sizes = np.array([a.shape[0] * a.shape[1] for a in self.images], dtype=np.float64)
        self.weights = sizes / sizes.sum()  # big images give proportionally more crops

    def batch(self, n: int, uint8: bool = False) -> torch.Tensor:
        """(n, 3, crop, crop) float32 in [0, 1], or the raw uint8 pixels with ``uint8=True``
        (4x less to copy to a GPU; convert there)."""
        c = self.crop
        out = np.empty((n, c, c, 3), dtype=np.uint8)
        picks = self.rng.choice(len(self.images), size=n, p=self.weights)
        for i, k in enumerate(picks):
            img = self.images[k]
            y = self.rng.integers(0, img.shape[0] - c + 1)
            x = self.rng.integers(0, img.shape[1] - c + 1)
            patch = img[y : y + c, x : x + c]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            if self.rng.random() < 0.5:
                patch = patch[::-1]
            out[i] = patch
        pixels = torch.from_numpy(out).permute(0, 3, 1, 2)
        return pixels if uint8 else pixels.float().div_(255.0)

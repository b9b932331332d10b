"""Random training crops from a set of images held in memory as uint8."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import IMAGE_SUFFIXES


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


def list_sources(sources: list[str]) -> list[list[Path]]:
    """The image paths of each source separately (see :func:`list_images`)."""
    return [list_images([src]) for src in sources]


class CropSampler:
    """Holds images as uint8 arrays and draws random crops with flips.

    ``paths`` is one list of images, or a list of lists (one per source) with ``source_weights``:
    then each source gives that share of the crops (its images in proportion to their pixels),
    e.g. photos 0.65 and synthetic screen content 0.35 however many pixels each holds.
    """

    def __init__(self, paths: list[Path] | list[list[Path]], crop: int, seed: int = 0,
                 source_weights: list[float] | None = None) -> None:
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        groups = paths if paths and isinstance(paths[0], list) else [paths]
        if source_weights is not None and len(source_weights) != len(groups):
            raise ValueError(f"source_weights has {len(source_weights)} entries for {len(groups)} training sources; "
                             "give one weight per --data entry")
        if source_weights is not None and (min(source_weights) < 0 or sum(source_weights) <= 0):
            raise ValueError(f"source_weights {source_weights} must be >= 0 with a positive sum")
        self.images = []
        weights = []
        for g, group in enumerate(groups):
            arrays = []
            for p in group:
                with Image.open(p) as img:
                    arr = np.asarray(img.convert("RGB"))
                if min(arr.shape[:2]) >= crop:
                    arrays.append(arr)
            sizes = np.array([a.shape[0] * a.shape[1] for a in arrays], dtype=np.float64)
            if source_weights is not None:
                if not arrays and source_weights[g] > 0:
                    raise ValueError(f"training source {g + 1} has no image of at least {crop}x{crop}")
                sizes = sizes / max(sizes.sum(), 1.0) * source_weights[g]
            self.images += arrays
            weights.append(sizes)
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop}")
        w = np.concatenate(weights)
        self.weights = w / w.sum()  # big images give proportionally more crops

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

"""Published rate-distortion(-perception) points, loaded into one tidy table.

These are other people's numbers, plotted beside our own measurements and used as BD-rate
anchors; every row carries ``published=True`` so a report can never pass them off as ours.

Formats read (all seen in ``../shared/anchors``):

* CompressAI result JSON -- ``{"name", "description", ["meta"], "results": {"bpp": [...],
  "psnr-rgb": [...], "ms-ssim-rgb": [...], "ms-ssim-db-rgb": [...], "encoding_time": [...],
  "decoding_time": [...]}}``, any subset of metrics.
* Bare JSON (MLIC) -- ``{"bpp": [...], "psnr": [...]}`` without a name: the file stem names it.
* tensorflow/compression text curves -- ``bpp, value`` lines after ``#`` comments; the metric
  comes from the folder (``PSNR_sRGB_RGB`` -> ``psnr``, ``MS-SSIM_sRGB_Y`` -> ``ms_ssim_y``)
  and the name from the ``Aggregate rate-distortion data for "NAME"`` header.
* CSV tables (HiFiC ``data.csv``, MS-ILLM ``results.csv``) -- a ``dataset`` column, an optional
  ``model`` column, and metric columns (bpp, PSNR, MS-SSIM, LPIPS, FID, KID, DISTS...).

One row per published point. Columns: ``source`` (folder below the root), ``name`` (unique per
curve: file stem, plus the model for CSVs), ``label`` (the name the authors gave), ``dataset``,
``point`` (index along the curve), ``bpp``, then whichever metrics exist (``psnr``,
``ms_ssim``, ``ms_ssim_db``, ``psnr_y``, ``ms_ssim_y``, ``lpips``, ``fid``, ``kid``, ``dists``,
``niqe``, ``fid_swav``, ``encode_s``, ``decode_s``), ``file`` and ``published``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd

PathLike = Union[str, os.PathLike]

#: Metric keys as published -> our column names (lower-cased before lookup).
_KEYS = {
    "bpp": "bpp",
    "psnr": "psnr",
    "psnr-rgb": "psnr",
    "ms-ssim": "ms_ssim",
    "ms_ssim": "ms_ssim",
    "ms-ssim-rgb": "ms_ssim",
    "ms-ssim-db-rgb": "ms_ssim_db",
    "encoding_time": "encode_s",
    "decoding_time": "decode_s",
    "lpips": "lpips",
    "fid": "fid",
    "kid": "kid",
    "dists": "dists",
    "niqe": "niqe",
    "fid_swav": "fid_swav",
}
#: tensorflow/compression folder names -> metric column.
_TFC_FOLDERS = {
    "psnr_srgb_rgb": "psnr",
    "psnr_srgb_y": "psnr_y",
    "ms-ssim_srgb_rgb": "ms_ssim",
    "ms-ssim_srgb_y": "ms_ssim_y",
}
_SKIP_FILES = {"SHA256SUMS", "SOURCE.md", "README.md"}


def _frame(columns: dict[str, list], *, name: str, label: str, dataset: Optional[str], file: Path) -> pd.DataFrame:
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{file}: metric lists differ in length {lengths}")
    if "bpp" not in columns:
        raise ValueError(f"{file}: no bpp values")
    df = pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in columns.items()})
    if "ms_ssim_db" in df and "ms_ssim" not in df:
        df["ms_ssim"] = 1.0 - 10.0 ** (-df["ms_ssim_db"] / 10.0)
    if "ms_ssim" in df and "ms_ssim_db" not in df:
        df["ms_ssim_db"] = [-10.0 * math.log10(1.0 - v) if v < 1 else math.inf for v in df["ms_ssim"]]
    df.insert(0, "point", np.arange(len(df)))
    df.insert(0, "dataset", dataset)
    df.insert(0, "label", label)
    df.insert(0, "name", name)
    df["file"] = str(file)
    return df


def read_json(path: PathLike, dataset: Optional[str] = None) -> pd.DataFrame:
    """A CompressAI-style result JSON, or a bare ``{"bpp": [...], "psnr": [...]}`` one."""
    path = Path(path)
    doc = json.loads(path.read_text())
    results = doc.get("results", doc)
    columns = {_KEYS[k.lower()]: v for k, v in results.items() if k.lower() in _KEYS and isinstance(v, list)}
    meta = doc.get("meta") or {}
    return _frame(columns, name=path.stem, label=str(doc.get("name", path.stem)), dataset=meta.get("dataset", dataset), file=path)


def read_tfc_txt(path: PathLike, dataset: Optional[str] = None) -> pd.DataFrame:
    """A tensorflow/compression ``bpp, value`` curve; the parent folder names the metric."""
    path = Path(path)
    metric = _TFC_FOLDERS.get(path.parent.name.lower())
    if metric is None:
        raise ValueError(f"{path}: folder {path.parent.name!r} is not one of {sorted(_TFC_FOLDERS)} (case-insensitive)")
    text = path.read_text()
    found = re.search(r'Aggregate rate-distortion data for "([^"]+)"', text)
    rows = [line.split(",") for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if any(len(r) != 2 for r in rows):
        raise ValueError(f"{path}: expected 'bpp, value' lines")
    columns = {"bpp": [float(r[0]) for r in rows], metric: [float(r[1]) for r in rows]}
    label = found.group(1) if found else path.stem
    return _frame(columns, name=f"{path.stem}:{metric}", label=label, dataset=dataset, file=path)


def read_csv_table(path: PathLike, dataset: Optional[str] = None) -> pd.DataFrame:
    """A HiFiC/MS-ILLM CSV: rows per (model, dataset, point); ``dataset`` keeps only that one."""
    path = Path(path)
    table = pd.read_csv(path)
    table = table.loc[:, [c for c in table.columns if not str(c).startswith("Unnamed")]]
    table.columns = [str(c).strip().lower() for c in table.columns]
    if dataset is not None and "dataset" in table:
        table = table[table["dataset"] == dataset]
    if "model" not in table:
        table = table.assign(model=path.parent.name)
    if "dataset" not in table:
        table = table.assign(dataset=dataset)
    frames = []
    for (model, ds), group in table.groupby(["model", "dataset"], sort=False, dropna=False):
        columns = {_KEYS[c]: group[c].tolist() for c in group.columns if c in _KEYS}
        frames.append(_frame(columns, name=f"{path.stem}:{model}", label=str(model), dataset=ds, file=path))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_anchors(path: PathLike, dataset: Optional[str] = None) -> pd.DataFrame:
    """Every published curve in a file or folder (walked recursively), as one tidy table.

    ``dataset``: rows of multi-dataset CSVs are filtered to it, and files that do not name
    their dataset are labelled with it (the caller vouches for the folder, e.g. ``kodak``).
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"anchor path {root} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _SKIP_FILES)
    readers = {".json": read_json, ".txt": read_tfc_txt, ".csv": read_csv_table}
    frames = []
    for file in files:
        reader = readers.get(file.suffix.lower())
        if reader is None:
            continue
        df = reader(file, dataset)
        df.insert(0, "source", str(file.parent.relative_to(root)) if root.is_dir() else file.parent.name)
        frames.append(df)
    if not frames:
        raise ValueError(f"no anchor files (.json, .txt, .csv) under {root}")
    out = pd.concat(frames, ignore_index=True)
    out["published"] = True
    return out


def curve(anchors: pd.DataFrame, name: str, metric: str = "psnr") -> tuple[np.ndarray, np.ndarray]:
    """(bpp, metric) arrays of one named curve, sorted by bpp; a clear error when absent."""
    rows = anchors[anchors["name"] == name]
    if rows.empty:
        raise KeyError(f"no anchor curve named {name!r}; have {sorted(anchors['name'].unique())[:20]}...")
    if metric not in rows or rows[metric].isna().all():
        raise KeyError(f"anchor curve {name!r} has no {metric!r} values")
    rows = rows.dropna(subset=["bpp", metric]).sort_values("bpp")
    return rows["bpp"].to_numpy(), rows[metric].to_numpy()

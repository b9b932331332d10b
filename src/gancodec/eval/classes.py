"""Fidelity per content class (issue 20): photos, screen content, graphics, documents, studio.

``evaluate_classes`` measures gancodec and the classical codecs on one test set per class, from
real bytes, and ``class_table`` turns the rows into one line per class: BD-rate (PSNR) against
WebP, AVIF 4:4:4 and JPEG over the class's mean curves, and the worst single image, i.e. the
one whose own BD-rate against WebP is highest, with its PSNR gap to WebP at equal bpp averaged
over qualities 2, 4 and 6 (how issue 20 checks an image: "no image worse than WebP by more
than 0.5 dB").

Both gancodecs are measured: the learned codec (``gancodec``, fallback off, as the evaluate stage
measures it) and what users get by default, ``gancodec+webp`` (``compress(..., fallback=True)``:
a WebP of no more bytes replaces the learned stream when it decodes >0.25 dB better). Each class's
``fallback`` entry has the latter's BD-rate vs WebP, its worst image's gap, and the share of
points stored as WebP. The fallback bounds the loss; it does not make the learned model better.

Writes ``<out>/classes.csv`` (every measured point, with its class) and ``<out>/classes.json``
(the table); ``markdown`` renders the table for the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from . import baselines, bdrate, ours

#: The classical codecs each class is compared against, in the table's order.
ANCHORS = ("webp", "avif", "jpeg420")
#: Qualities at which the worst image's dB gap to WebP is read (issue 20's check).
GAP_QUALITIES = (2.0, 4.0, 6.0)
FALLBACK = baselines.FALLBACK_NAME  # gancodec with its WebP fallback on (what users get by default)


def _bd(points: pd.DataFrame, anchor: str, test: str = "gancodec") -> float | None:
    a, t = points[points.codec == anchor], points[points.codec == test]
    if len(a) < 2 or len(t) < 2:
        return None
    try:
        return float(bdrate.bd_rate(a.bpp, a.psnr, t.bpp, t.psnr))
    except ValueError:  # curves that do not overlap: nothing to compare
        return None


def _gap_db(rows: pd.DataFrame, qualities: Sequence[float] = GAP_QUALITIES, test: str = "gancodec") -> float | None:
    """One image: our PSNR minus WebP's at our bpp, averaged over ``qualities`` (those measured)."""
    ours_rows = rows[(rows.codec == test) & rows.setting.isin(list(qualities))]
    webp = rows[rows.codec == "webp"].sort_values("bpp")
    if ours_rows.empty or len(webp) < 2:
        return None
    at = ours.psnr_at(ours_rows.bpp.to_numpy(), webp.bpp.to_numpy(), webp.psnr.to_numpy())
    gaps = ours_rows.psnr.to_numpy() - at
    gaps = gaps[~np.isnan(gaps)]
    return float(gaps.mean()) if gaps.size else None


def class_table(rows: pd.DataFrame, anchors: Sequence[str] = ANCHORS) -> list[dict]:
    """One dict per class (in order of first appearance): images, BD-rate vs each anchor, the worst image."""
    need = {"class", "image", "codec", "setting", "bpp", "psnr"}
    if missing := need - set(rows.columns):
        raise DataError(f"class table: rows lack column(s) {sorted(missing)}")
    table = []
    for cls in dict.fromkeys(rows["class"]):
        sub = rows[rows["class"] == cls]
        curves = baselines.rd_curve(sub.drop(columns=["quality", "payload"], errors="ignore"))
        entry = {"class": cls, "images": int(sub.image.nunique()),
                 "bd_rate": {a: _bd(curves, a) for a in anchors}}
        per_image = []
        for image, g in sub.groupby("image", sort=True):
            per_image.append({"image": image, "bd_rate_vs_webp": _bd(g, "webp"), "gap_db_vs_webp": _gap_db(g)})
        scored = [p for p in per_image if p["bd_rate_vs_webp"] is not None]
        entry["worst"] = max(scored, key=lambda p: p["bd_rate_vs_webp"]) if scored else None
        gaps = [p for p in per_image if p["gap_db_vs_webp"] is not None]
        entry["worst_gap"] = min(gaps, key=lambda p: p["gap_db_vs_webp"]) if gaps else None
        entry["per_image"] = per_image
        if (sub.codec == FALLBACK).any():
            entry["fallback"] = _fallback_entry(sub, curves)
        table.append(entry)
    return table


def _fallback_entry(sub: pd.DataFrame, curves: pd.DataFrame) -> dict:
    """One class, gancodec with its WebP fallback: BD-rate vs WebP, share of WebP points, worst gap."""
    mine = sub[sub.codec == FALLBACK]
    share = float((mine.payload == "webp").mean()) if "payload" in mine else None
    gaps = [{"image": image, "gap_db_vs_webp": _gap_db(g, test=FALLBACK)} for image, g in sub.groupby("image", sort=True)]
    gaps = [g for g in gaps if g["gap_db_vs_webp"] is not None]
    return {"bd_rate_vs_webp": _bd(curves, "webp", FALLBACK), "fallback_share": share,
            "worst_gap": min(gaps, key=lambda g: g["gap_db_vs_webp"]) if gaps else None, "per_image": gaps}


def _load(source: str | Path | Sequence[str | Path], limit: int | None) -> dict[str, np.ndarray]:
    from PIL import Image

    from .evaluate import load_test_images

    if isinstance(source, (str, Path)):
        return load_test_images(source, limit)
    paths = [Path(p) for p in source][:limit] if limit else [Path(p) for p in source]
    if not paths:
        raise DataError("evaluate classes: a class has no test images")
    images = {}
    for p in paths:
        try:
            with Image.open(p) as img:
                images[p.stem] = np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise DataError(f"{p}: cannot read this test image ({exc}); rerun the stage that makes it") from None
    return images


def evaluate_classes(test_sets: Mapping[str, str | Path | Sequence[str | Path]], out_dir: str | Path, *,
                     weights: str | None, qualities: Sequence[float], codecs: Sequence[str] = ANCHORS,
                     limit: int | None = None, workers: int = 1, fallback: bool = True) -> dict:
    """Measure every class's test set (a folder of images, a CSV list or a list of paths); write
    classes.csv/.json. ``fallback``: measure ``gancodec+webp`` (the WebP fallback on) too."""
    if not test_sets:
        raise DataError("evaluate classes: no test sets given (class name -> folder, CSV or paths)")
    images, owner = {}, {}
    for cls, source in test_sets.items():
        for name, img in _load(source, limit).items():
            images[f"{cls}/{name}"] = img  # one sweep over every class: one process pool, not one per class
            owner[f"{cls}/{name}"] = cls
    mine = ours.rd_sweep(images, qualities, weights=weights, with_ms_ssim=False)
    safe = ours.rd_sweep(images, qualities, weights=weights, with_ms_ssim=False, fallback=True) if fallback else None
    classical, skipped = baselines.sweep_many(list(codecs), images, workers=workers)
    rows = pd.concat([mine, safe, classical], ignore_index=True)
    rows.insert(0, "class", rows.image.map(owner))
    rows["image"] = rows.image.str.split("/", n=1).str[1]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / "classes.csv", index=False)
    summary = {"classes": class_table(rows, [c for c in ANCHORS if c in set(rows.codec)]),
               "qualities": [float(q) for q in qualities], "weights": weights or "shipped",
               "test_sets": {k: str(v) if isinstance(v, (str, Path)) else [str(p) for p in v]
                             for k, v in test_sets.items()}, "skipped": skipped}
    (out / "classes.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def markdown(summary: dict) -> list[str]:
    """The per-class table as markdown lines (for the report)."""
    names = {"webp": "WebP", "avif": "AVIF 4:4:4", "avifenc": "AVIF 4:4:4", "jpeg420": "JPEG"}
    anchors = list(summary["classes"][0]["bd_rate"]) if summary.get("classes") else list(ANCHORS)
    head = ["class", "images", *[f"BD-rate vs {names.get(a, a)}" for a in anchors],
            "worst image (BD-rate vs WebP)", "worst dB vs WebP at q 2/4/6"]
    with_fallback = any("fallback" in e for e in summary.get("classes", []))
    if with_fallback:
        head += ["with WebP fallback: BD-rate vs WebP", "points stored as WebP", "worst dB vs WebP at q 2/4/6"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in summary["classes"]:
        w, g = e.get("worst"), e.get("worst_gap")
        cells = [e["class"], str(e["images"]), *[_pct(e["bd_rate"].get(a)) for a in anchors],
                 "n/a" if not w else f"{w['image']} ({_pct(w['bd_rate_vs_webp'])})", _gap_cell(g)]
        if with_fallback:
            f = e.get("fallback") or {}
            share = f.get("fallback_share")
            cells += [_pct(f.get("bd_rate_vs_webp")), "n/a" if share is None else f"{100 * share:.0f} %", _gap_cell(f.get("worst_gap"))]
        lines.append("| " + " | ".join(cells) + " |")
    if with_fallback:
        lines += ["", "Left: the learned codec (`compress(..., fallback=False)`, as the evaluation measures it). "
                  "Right: what `gancodec compress` writes by default, where a WebP of no more bytes replaces the "
                  "learned stream when it decodes more than 0.25 dB PSNR better. The fallback bounds the loss per "
                  "image; it does not make the learned model better."]
    return lines


def _gap_cell(g: dict | None) -> str:
    return "n/a" if not g else f"{g['image']} ({g['gap_db_vs_webp']:+.2f} dB)"

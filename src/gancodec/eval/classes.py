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

No comparison extrapolates a curve past what was measured: BD-rate integrates only over the PSNR
range both curves reach (:func:`gancodec.eval.bdrate.bd_rate`), and the dB gap reads WebP's
curve only at bpps inside its measured range (a quality outside it is left out of the mean; the
table says when). An image whose PSNR range does not meet WebP's at all (e.g. a learned codec
whose best PSNR is below WebP's lowest quality measured, 10) has no BD-rate: it cannot be the
"worst image (BD-rate)" and the table lists it, with the side, under "no PSNR overlap with WebP".

Writes ``<out>/classes.csv`` (every measured point, with its class) and ``<out>/classes.json``
(the table); :func:`gancodec.class_table_markdown.markdown` renders the table for the report and
the model card.
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


def _no_overlap(points: pd.DataFrame, anchor: str = "webp", test: str = "gancodec") -> str | None:
    """Why one image has no BD-rate against ``anchor``: "below" (the test codec's best PSNR is under
    the anchor's lowest measured), "above" (its worst is over the anchor's best), None when the
    PSNR ranges meet (or a curve has fewer than 2 points)."""
    a, t = points[points.codec == anchor].psnr, points[points.codec == test].psnr
    if len(a) < 2 or len(t) < 2:
        return None
    if t.max() <= a.min():
        return "below"
    if t.min() >= a.max():
        return "above"
    return None


def _gap(rows: pd.DataFrame, qualities: Sequence[float] = GAP_QUALITIES, test: str = "gancodec") -> dict | None:
    """One image: our PSNR minus WebP's at our bpp, averaged over those of ``qualities`` whose bpp
    lies inside WebP's measured bpp range (never extrapolated); ``points``: how many of the
    measured qualities that was, of ``measured``. None when there is no such quality."""
    ours_rows = rows[(rows.codec == test) & rows.setting.isin(list(qualities))]
    webp = rows[rows.codec == "webp"].sort_values("bpp")
    if ours_rows.empty or len(webp) < 2:
        return None
    at = ours.psnr_at(ours_rows.bpp.to_numpy(), webp.bpp.to_numpy(), webp.psnr.to_numpy())
    gaps = ours_rows.psnr.to_numpy() - at
    gaps = gaps[~np.isnan(gaps)]
    if not gaps.size:
        return None
    return {"gap_db_vs_webp": float(gaps.mean()), "points": int(gaps.size), "measured": int(len(ours_rows))}


def _gap_db(rows: pd.DataFrame, qualities: Sequence[float] = GAP_QUALITIES, test: str = "gancodec") -> float | None:
    """One image: our PSNR minus WebP's at our bpp, averaged over ``qualities`` (those inside WebP's range)."""
    g = _gap(rows, qualities, test)
    return None if g is None else g["gap_db_vs_webp"]


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
            bd, gap = _bd(g, "webp"), _gap(g)
            per_image.append({"image": image, "bd_rate_vs_webp": bd, "gap_db_vs_webp": gap and gap["gap_db_vs_webp"],
                              "gap_points": gap and [gap["points"], gap["measured"]],
                              "no_overlap": _no_overlap(g) if bd is None else None})
        entry["no_overlap"] = [{"image": p["image"], "side": p["no_overlap"]} for p in per_image if p["no_overlap"]]
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
    gaps = [{"image": image, **(_gap(g, test=FALLBACK) or {})} for image, g in sub.groupby("image", sort=True)]
    gaps = [{"image": g["image"], "gap_db_vs_webp": g["gap_db_vs_webp"], "gap_points": [g["points"], g["measured"]]}
            for g in gaps if "gap_db_vs_webp" in g]
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

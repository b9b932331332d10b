"""The `evaluate` stage's logic: our codec and the classical ones on a test set, from real bytes.

Writes ``rd.csv`` (one row per image, codec and setting), ``curves.csv`` (per codec and setting,
averaged over images), ``summary.json`` (every BD-rate, skipped codecs, timing per codec, tool
versions, machine, git revision, the weights' sha256) and ``metrics.json``: numbers only, the
ones to compare across experiments (``dvc metrics show``): image and point counts and
gancodec's BD-rates against each anchor.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import DataError
from . import baselines, bdrate, metrics, ours, provenance


def load_test_images(source: str | Path, limit: int | None = None) -> dict[str, np.ndarray]:
    """Images from a folder of PNG/JPEG or a CSV with a ``path`` column, as RGB uint8."""
    src = Path(source)
    if src.is_dir():
        paths = sorted(p for p in src.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    elif src.suffix == ".csv":
        with open(src, newline="") as fh:
            paths = [Path(row.get("clean_path") or row["path"]) for row in csv.DictReader(fh)]
    else:
        raise DataError(f"{src}: test set must be a folder of images or a CSV with a 'path' column")
    paths = paths[:limit] if limit else paths
    if not paths:
        raise DataError(f"{src}: no test images")
    return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in paths}


def _bd(curves: pd.DataFrame, anchor: str, test: str, metric: str) -> float | None:
    a, t = (curves[(curves.codec == c) & curves[metric].notna()] for c in (anchor, test))
    if len(a) < 2 or len(t) < 2:
        return None
    try:
        if metric == "ms_ssim":  # in dB, as the field reports it: -10 log10(1 - MS-SSIM)
            return float(bdrate.bd_rate(a.bpp, a[metric].map(metrics.ms_ssim_db), t.bpp, t[metric].map(metrics.ms_ssim_db)))
        return float(bdrate.bd_rate(a.bpp, a[metric], t.bpp, t[metric]))
    except ValueError:
        return None


METRICS = ("psnr", "ms_ssim", "ssimulacra2")  # the quality axes BD-rates are computed on


def evaluate(test_set: str | Path, out_dir: str | Path, *, weights: str | None, qualities: Sequence[float],
             codecs: Sequence[str], limit: int | None = None, anchor: str = "hevc444", perceptual: bool = True,
             perceptual_max_bpp: float = 2.0, workers: int = 1, quiet: bool = False,
             realism_weights: str | None = None, realism_qualities: Sequence[float] = ()) -> dict:
    """Measure gancodec and ``codecs`` on every test image from real bytes; write the stage's outs.

    ``perceptual`` adds SSIMULACRA2 for points up to ``perceptual_max_bpp``. ``workers``
    processes measure the classical codecs (one image each at a time). With ``realism_weights``,
    ``realism.csv`` holds the realism decoder beside the fidelity one and WebP/AVIF at no more
    bytes at ``realism_qualities`` (:mod:`.realism_eval`: SWD, spectra, PSNR, MS-SSIM,
    SSIMULACRA2), and ``summary.json`` issue 19's check of it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = load_test_images(test_set, limit)
    with _progress(quiet) as bar:
        task = bar.add_task("gancodec", total=len(images) * len(qualities))
        rows = ours.rd_sweep(images, qualities, weights=weights, perceptual=perceptual,
                             progress=lambda: bar.advance(task))  # the same sweep as the classical codecs'
        codecs = [c for c in codecs if c != "gancodec"]  # measured just above, with these weights
        task = bar.add_task("classical codecs", total=len(images))
        classical, skipped = baselines.sweep_many(list(codecs), images, perceptual=perceptual,
                                                  perceptual_max_bpp=perceptual_max_bpp, workers=workers,
                                                  progress=lambda: bar.advance(task))
    df = pd.concat([rows, classical], ignore_index=True)
    sizes = {name: img.shape[0] * img.shape[1] for name, img in images.items()}
    expected = df.bytes * 8 / df.image.map(sizes)
    if not np.allclose(df.bpp, expected, rtol=0, atol=1e-12):
        raise AssertionError("a bpp value is not file bytes x 8 / pixels")  # guards the whole report
    df.to_csv(out / "rd.csv", index=False)
    curves = baselines.rd_curve(df.drop(columns=["quality"], errors="ignore"))
    curves.to_csv(out / "curves.csv", index=False)
    anchors = [c for c in (anchor, "webp", "jpeg420") if c in set(curves.codec)]
    present = [m for m in METRICS if m in curves and curves[m].notna().any()]
    summary = {
        "images": len(images),
        "test_set": str(test_set),
        "codecs": sorted(set(df.codec)),
        "skipped": skipped,
        "perceptual_max_bpp": perceptual_max_bpp if perceptual else None,
        **{f"bd_rate_{m}": {a: {c: _bd(curves, a, c, m) for c in sorted(set(curves.codec)) if c != a} for a in anchors}
           for m in present},
        "gancodec": curves[curves.codec == "gancodec"][["setting", "bpp", *present]].to_dict("records"),
        "timing": _timing(df, sizes),
        "versions": provenance.versions(),
        "machine": provenance.machine(),
        "git": provenance.git_revision(),
    }
    if realism_weights and realism_qualities:
        from .realism_eval import check, realism_table

        rcodecs = [c for c in ("webp", "avif") if c in codecs and baselines.availability().get(c) == "ok"]
        _, rtable = realism_table(images, realism_qualities, weights=weights, realism_weights=realism_weights,
                                  codecs=rcodecs, perceptual=perceptual)
        rtable.to_csv(out / "realism.csv", index=False)
        summary["realism"] = {"weights": str(realism_weights),
                              "sha256": hashlib.sha256(Path(realism_weights).read_bytes()).hexdigest(),
                              "check": check(rtable, rcodecs),
                              "rows": rtable.to_dict("records")}
    elif realism_weights is not None:
        pd.DataFrame().to_csv(out / "realism.csv", index=False)
    first = next(iter(images))
    summary["side_by_side"] = {"image": first, "panels": side_by_side(images[first], out / "crops.png", weights=weights,
                                                                      realism_weights=realism_weights)}
    from ..weights import default_weights_path

    summary["weights_sha256"] = hashlib.sha256(Path(weights or default_weights_path()).read_bytes()).hexdigest()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    (out / "metrics.json").write_text(json.dumps(headline_metrics(summary), indent=2) + "\n")
    return summary


def headline_metrics(summary: dict, codec: str = "gancodec") -> dict:
    """The numbers of ``summary`` that experiments are compared on (numbers only, few enough for
    ``dvc exp show``): counts and ``codec``'s BD-rate (percent, negative = fewer bits) per quality
    metric against the evaluation's anchor (the first one it has; every other pair of codecs is in
    summary.json)."""
    out = {"images": int(summary["images"]), "points": len(summary.get(codec) or [])}
    for metric in METRICS:
        table = summary.get(f"bd_rate_{metric}") or {}
        for anchor, vals in table.items():
            if codec in vals:
                out[f"bd_rate_{metric}"] = {anchor: vals[codec]}
                break
    return out


def _timing(df: pd.DataFrame, sizes: dict[str, int]) -> dict:
    """Per codec: mean encode/decode seconds per image and megapixels per second (all settings)."""
    mp = df.image.map(sizes) / 1e6
    out = {}
    for codec, g in df.assign(mp=mp).groupby("codec"):
        out[codec] = {"encode_s": float(g.encode_s.mean()), "decode_s": float(g.decode_s.mean()),
                      "encode_mp_s": float(g.mp.sum() / g.encode_s.sum()), "decode_mp_s": float(g.mp.sum() / g.decode_s.sum())}
    return out


@contextlib.contextmanager
def _progress(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=quiet, transient=False) as bar:
        yield bar


def side_by_side(img: np.ndarray, path: str | Path, *, weights: str | None, target_bpp: float = 0.3,
                 codecs: Sequence[str] = ("jpeg420", "webp", "avif"), size: int = 192,
                 realism_weights: str | None = None) -> list[dict]:
    """A PNG of the same crop decoded by gancodec and by each classical codec at <= the same bpp.

    gancodec is set to ``target_bpp`` (bisection on real bytes); each classical codec gets its
    highest quality whose file is no larger than ours. With ``realism_weights`` the same stream
    is also shown through the realism decoder (same bytes, so the same bpp). Returns one dict
    per panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import compress, decompress
    from . import metrics

    h, w = img.shape[:2]
    data = compress(img, bpp=target_bpp, weights=weights, fallback=False)  # the learned codec
    ours_bpp = metrics.bpp(len(data), h, w)
    panels = [("original", img, None), ("gancodec", np.asarray(decompress(data, weights=weights)), ours_bpp)]
    if realism_weights:
        panels[1] = ("gancodec fidelity", panels[1][1], ours_bpp)
        panels.append(("gancodec realism", np.asarray(decompress(data, weights=weights, realism=True,
                                                                 realism_weights=realism_weights)), ours_bpp))
    for name in codecs:
        codec = baselines.get_codec(name)
        if not codec.available()[0]:
            continue
        m = baselines.match_bpp(codec, img, ours_bpp)
        panels.append((name, codec.decode(codec.encode(img, m.setting)), m.bpp))
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3), dpi=110)
    info = []
    for ax, (name, dec, rate) in zip(axes, panels):
        ax.imshow(dec[y0 : y0 + size, x0 : x0 + size], interpolation="nearest")
        ax.set_axis_off()
        label = name if rate is None else f"{name}\n{rate:.3f} bpp, {metrics.psnr(img, dec):.2f} dB"
        ax.set_title(label, fontsize=8)
        info.append({"codec": name, "bpp": rate, "psnr": None if rate is None else metrics.psnr(img, dec)})
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return info

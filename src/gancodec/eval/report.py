"""The `report` stage's logic: a markdown report with RD tables, RD plots and provenance.

It opens with one plain sentence: where gancodec stands against HEVC 4:4:4 (BPG's engine),
AVIF, WebP and JPEG, as BD-rates measured on the same machine from real bytes, plus the BD-rate
against the published BPG 4:4:4 curve when the anchors are at hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from . import bdrate, metrics

#: Names a reader knows, for the codecs the sentence and tables mention.
DISPLAY = {"hevc444": "HEVC 4:4:4 (x265, BPG's engine)", "avif": "AVIF", "avifenc": "AVIF (avifenc)",
           "webp": "WebP", "jpeg420": "JPEG 4:2:0", "jpeg444": "JPEG 4:4:4", "jxl": "JPEG XL", "cjxl": "JPEG XL (cjxl)"}
HEADLINE = ("hevc444", "avif", "avifenc", "webp", "jpeg420")  # the codecs the opening sentence names
AXES = {"psnr": "PSNR RGB (dB)", "ms_ssim": "MS-SSIM RGB (dB)", "ssimulacra2": "SSIMULACRA2 (higher is better)"}
PUBLISHED_BPG = "bpg_444_x265_ycbcr"


def _pct(v) -> str:
    return "n/a" if v is None or v != v else f"{v:+.1f}%"


def _name(codec: str) -> str:
    return DISPLAY.get(codec, codec)


def _axis(frame: pd.DataFrame, metric: str) -> pd.Series:
    return frame[metric].map(metrics.ms_ssim_db) if metric == "ms_ssim" else frame[metric]


def rd_plot(curves: pd.DataFrame, path: Path, anchors: pd.DataFrame | None = None, metric: str = "psnr",
            max_bpp: float = 2.0) -> None:
    """RD curves of every measured codec (and published anchors that have ``metric``) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for codec, g in curves.groupby("codec"):
        g = g[g[metric].notna()].sort_values("bpp")
        ours = codec == "gancodec"
        ax.plot(g.bpp, _axis(g, metric), "o-" if ours else ".-", lw=2.5 if ours else 1.2, label=f"{codec} (measured)")
    if anchors is not None and metric in anchors:
        for name, g in anchors[anchors[metric].notna()].groupby("name"):
            g = g.sort_values("bpp")
            ax.plot(g.bpp, _axis(g, metric), "--", lw=1, alpha=0.7, label=f"{name} (published)")
    ax.set_xlim(0, max_bpp)
    ax.set_xlabel("bits per pixel (file bytes)")
    ax.set_ylabel(AXES[metric])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _bd(anchor: pd.DataFrame, test: pd.DataFrame, metric: str = "psnr") -> float | None:
    a, t = anchor[anchor[metric].notna()], test[test[metric].notna()]
    try:
        return float(bdrate.bd_rate(a.bpp, _axis(a, metric), t.bpp, _axis(t, metric)))
    except ValueError:  # no overlap, or too few points
        return None


def published_bd_rates(curves: pd.DataFrame, anchors: pd.DataFrame | None, codec: str = "gancodec") -> dict:
    """BD-rate (PSNR) of a measured codec against each published curve, None where they do not overlap."""
    if anchors is None or "psnr" not in anchors:
        return {}
    ours = curves[curves.codec == codec]
    return {name: _bd(g, ours) for name, g in anchors[anchors.psnr.notna()].groupby("name")}


BPG_WINDOW = (0.25, 0.5, 0.75)  # the rates where issue 5 asks whether we beat BPG, or by how much we fall short


def bpg_window(curves: pd.DataFrame, anchors: pd.DataFrame | None, codec: str = "gancodec") -> list[list[str]]:
    """Table rows: gancodec against BPG 4:4:4 (measured hevc444, and the published curve) at 0.25 / 0.5 / 0.75 bpp."""
    ours = curves[curves.codec == codec]
    others = [(_name("hevc444") + ", measured here", curves[curves.codec == "hevc444"])]
    if anchors is not None and "psnr" in anchors:
        others.append(("BPG 4:4:4, published", anchors[anchors.name == PUBLISHED_BPG]))
    rows = []
    for label, other in others:
        if len(other) < 2 or len(ours) < 2:
            continue
        c = bdrate.compare_at(other.bpp, other.psnr, ours.bpp, ours.psnr, BPG_WINDOW)
        cells = [f"{_fmt(d, '+.2f')} dB ({_pct(e * 100)} bits)" for d, e in zip(c["delta_quality"], c["extra_rate"])]
        rows.append([label, *cells, _pct(c["bd_rate_window"])])
    return rows


def headline(curves: pd.DataFrame, summary: dict, dataset: str, published: dict) -> str:
    """The report's first sentence, in plain words: gancodec's PSNR BD-rate against each known codec."""
    ours = curves[curves.codec == "gancodec"]
    words = []
    for codec in HEADLINE:
        other = curves[curves.codec == codec]
        value = _bd(other, ours) if len(other) and len(ours) else None
        if value is not None:
            words.append(f"{_pct(value)} against {_name(codec)}")
    if published.get(PUBLISHED_BPG) is not None:
        words.append(f"{_pct(published[PUBLISHED_BPG])} against the published BPG 4:4:4 curve")
    if not words:
        return f"On {dataset} ({summary['images']} images) no BD-rate could be computed (no overlapping curves)."
    return (f"On {dataset} ({summary['images']} images), gancodec's BD-rate at equal PSNR is " + "; ".join(words)
            + " (negative = fewer bits than that codec for the same quality, positive = more).")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None or v != v else format(v, spec)


def write_report(eval_dir: str | Path, out_dir: str | Path, anchors: pd.DataFrame | None = None,
                 dataset: str = "test set", classes: str | Path | None = None) -> Path:
    """Write ``README.md`` and the RD plots into ``out_dir`` from the evaluate stage's outputs
    (and the per-class table from ``classes``, the evaluate_classes stage's classes.json)."""
    ev, out = Path(eval_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = pd.read_csv(ev / "curves.csv")
    summary = json.loads((ev / "metrics.json").read_text())
    published = published_bd_rates(curves, anchors)
    lines = [f"# gancodec report: {dataset}", "", headline(curves, summary, dataset, published), ""]

    axes = [m for m in AXES if m in curves and curves[m].notna().any()]
    for m in axes:
        rd_plot(curves, out / f"rd_{m}.png", anchors, metric=m)
        lines += [f"![RD curves, {AXES[m]}](rd_{m}.png)", ""]

    lines += ["## BD-rate, percent (negative = fewer bits than the anchor at equal quality)", ""]
    for m in axes:
        bd = summary.get(f"bd_rate_{m}", {})
        codecs = sorted({c for vals in bd.values() for c in vals} | set(bd))
        rows = [[c] + [_pct(bd[a].get(c)) if c != a else "0 (anchor)" for a in bd] for c in codecs]
        lines += [f"**{AXES[m]}**", ""] + _table(["codec \\ anchor", *bd], rows) + [""]
    if summary.get("perceptual_max_bpp"):
        lines += [f"SSIMULACRA2 is scored up to {summary['perceptual_max_bpp']} bpp; points above have none.", ""]
    if published:
        lines += ["**gancodec against published Kodak curves (PSNR)**", ""]
        lines += _table(["published curve", "BD-rate"], [[n, _pct(v)] for n, v in sorted(published.items())]) + [""]

    window = bpg_window(curves, anchors)
    if window:
        lines += ["**gancodec against BPG 4:4:4 at 0.25-0.75 bpp** (PSNR difference at that bpp, and the extra bits "
                  "gancodec spends for its PSNR there; n/a where a curve does not reach)", ""]
        lines += _table(["BPG curve", *(f"{b:g} bpp" for b in BPG_WINDOW), "BD-rate over 0.25-0.75 bpp"], window) + [""]

    cols = ["codec", "setting", "bpp", "PSNR (dB)", "MS-SSIM"] + (["SSIMULACRA2"] if "ssimulacra2" in axes else []) + ["encode s", "decode s"]
    rows = []
    for r in curves.sort_values(["codec", "bpp"]).to_dict("records"):
        row = [r["codec"], str(r["setting"]), f"{r['bpp']:.3f}", f"{r['psnr']:.2f}", _fmt(r.get("ms_ssim"), ".4f")]
        row += [_fmt(r.get("ssimulacra2"), ".1f")] if "ssimulacra2" in axes else []
        rows.append(row + [f"{r['encode_s']:.3f}", f"{r['decode_s']:.3f}"])
    lines += ["## RD points (mean over images; bpp from file bytes)", ""] + _table(cols, rows) + [""]

    if summary.get("timing"):
        rows = [[c, f"{t['encode_s']:.3f}", f"{t['decode_s']:.3f}", f"{t['encode_mp_s']:.2f}", f"{t['decode_mp_s']:.2f}"]
                for c, t in sorted(summary["timing"].items())]
        lines += ["## Speed (mean over all images and settings, this machine)", ""]
        lines += _table(["codec", "encode s/image", "decode s/image", "encode MP/s", "decode MP/s"], rows)
        lines += ["", "Peak memory per image size (1 to 64 MP), against avifenc and cjxl: "
                  "`python benchmarks/memory.py` (see docs/evaluation.md).", ""]

    if (ev / "crops.png").exists():
        shutil.copy(ev / "crops.png", out / "crops.png")
        lines += [f"## Side by side at equal bpp ({summary.get('side_by_side', {}).get('image', '')}, centre crop)", "",
                  "![crops](crops.png)", "",
                  "gancodec at ~0.3 bpp; each other codec at its highest quality whose file is no larger.", ""]
    if classes and Path(classes).exists():
        from .classes import markdown

        lines += ["## Per content class (PSNR BD-rate; negative = fewer bits than the anchor)", ""]
        lines += markdown(json.loads(Path(classes).read_text())) + [""]
    if summary.get("skipped"):
        lines += ["## Skipped codecs", ""] + [f"- {c}: {why}" for c, why in summary["skipped"].items()] + [""]
    lines += _provenance(summary, ev)
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def _provenance(summary: dict, ev: Path) -> list[str]:
    lines = ["## How this was made", "",
             f"`dvc repro report` (stages `evaluate` then `report`; see dvc.yaml and params.yaml), from `{ev / 'rd.csv'}`",
             f"(one row per image, codec and setting). Test set: `{summary.get('test_set', '?')}`. "
             f"Git revision: `{summary.get('git') or 'unknown'}`.", ""]
    machine = summary.get("machine") or {}
    if machine:
        lines += ["Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items() if v is not None) + ".", ""]
    versions = summary.get("versions") or {}
    if versions:
        lines += _table(["tool", "version"], [[k, str(v) if v else "not installed"] for k, v in versions.items()]) + [""]
    return lines

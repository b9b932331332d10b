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


#: The published curves a report plots, with the names a reader knows (a few, so the plot reads):
#: the classical state of the art (BPG, VTM), the learned model ours is built on (the scale
#: hyperprior), a strong learned one (ELIC) and a GAN codec (HiFiC, the realism decoder's model).
CURATED_ANCHORS = {
    "bpg_444_x265_ycbcr": "BPG 4:4:4 (x265)",
    "vtm": "VTM (H.266 intra)",
    "paper-bmshj2018-hyperprior": "Hyperprior (Ballé 2018)",
    "paper-elic2022_mse": "ELIC (He 2022)",
    "data:hific": "HiFiC (Mentzer 2020, GAN)",
}
SMOKE_IMAGES, SMOKE_POINTS = 8, 4  # fewer test images or gancodec points than this: a smoke run


def curated_anchors(anchors: pd.DataFrame | None, names=None) -> pd.DataFrame | None:
    """The published curves named in ``names`` (default ``CURATED_ANCHORS``), in that order."""
    if anchors is None:
        return None
    names = list(names) if names else list(CURATED_ANCHORS)
    return anchors[anchors["name"].isin(names)]


def _anchor_label(name: str) -> str:
    return CURATED_ANCHORS.get(name, name) + ", published"


def rd_plot(curves: pd.DataFrame, path: Path, anchors: pd.DataFrame | None = None, metric: str = "psnr",
            max_bpp: float = 2.0, title: str | None = None) -> None:
    """RD curves of every measured codec (and the published anchors that have ``metric``) to ``path``.

    The legend sits beside the axes, one line a curve: measured codecs solid, published dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 5), dpi=110)
    solid, dashed = list(plt.cm.tab10.colors[:6]), list(plt.cm.tab10.colors[6:]) + ["#1a237e", "#b71c1c"]
    measured = sorted((c for c in curves.codec.unique() if c != "gancodec"), key=_name)
    for i, codec in enumerate(["gancodec", *measured] if "gancodec" in set(curves.codec) else measured):
        g = curves[(curves.codec == codec) & curves[metric].notna()].sort_values("bpp")
        ours = codec == "gancodec"
        color = "black" if ours else solid[(i - 1) % len(solid)]
        ax.plot(g.bpp, _axis(g, metric), "o-" if ours else ".-", lw=2.6 if ours else 1.3, ms=6 if ours else 4,
                color=color, zorder=3 if ours else 2, label=f"{_name(codec)}, measured")
    if anchors is not None and metric in anchors:
        shown = anchors[anchors[metric].notna() & (anchors.bpp <= max_bpp * 1.5)]
        for i, (name, g) in enumerate(shown.groupby("name", sort=False)):
            g = g.sort_values("bpp")
            ax.plot(g.bpp, _axis(g, metric), "x--" if len(g) < 4 else "--", lw=1.3, color=dashed[i % len(dashed)],
                    label=_anchor_label(name))
    ax.set_xlim(0, max_bpp)
    ax.set_xlabel("bits per pixel (file bytes)")
    ax.set_ylabel(AXES[metric])
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
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


def model_label(summary: dict) -> str:
    """``model 0123abcd… (v1.5)``: the weights' model id (as a .gcx names it) and release, if any."""
    sha = summary.get("weights_sha256")
    if not sha:
        return "model not recorded"
    from ..weights.history import version_of

    try:
        release = version_of(sha[:32])
    except (OSError, ValueError, KeyError):
        release = None
    return f"model {sha[:32]} ({release['version'] if release else 'not a shipped release'})"


def is_smoke(curves: pd.DataFrame, summary: dict) -> bool:
    """Too few images or gancodec points for the numbers to say anything (the ci profile)."""
    return summary["images"] < SMOKE_IMAGES or (curves.codec == "gancodec").sum() < SMOKE_POINTS


def _read_summary(ev: Path) -> dict:
    """The evaluate stage's ``summary.json`` (older evaluations kept everything in ``metrics.json``)."""
    path = ev / "summary.json"
    return json.loads((path if path.exists() else ev / "metrics.json").read_text())


def write_report(eval_dir: str | Path, out_dir: str | Path, anchors: pd.DataFrame | None = None,
                 dataset: str = "test set", anchor_names=None, classes: str | Path | None = None) -> Path:
    """Write ``README.md`` and the RD plots into ``out_dir`` from the evaluate stage's outputs
    (and the per-class table from ``classes``, the evaluate_classes stage's classes.json).

    Published curves: ``anchor_names`` of ``anchors`` (default ``CURATED_ANCHORS``)."""
    ev, out = Path(eval_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = pd.read_csv(ev / "curves.csv")
    summary = _read_summary(ev)
    anchors = curated_anchors(anchors, anchor_names)
    published = published_bd_rates(curves, anchors)
    model = model_label(summary)
    points = int((curves.codec == "gancodec").sum())
    if is_smoke(curves, summary):
        opening = (f"**Smoke run**: {summary['images']} images × {points} gancodec quality points, {model}. "
                   "It checks that the pipeline runs end to end; with so few points a BD-rate says nothing, so "
                   "none is claimed here (the tables keep them for the record).")
        title = f"SMOKE RUN: {summary['images']} images × {points} points, {dataset}"
    else:
        opening = headline(curves, summary, dataset, published) + f" Weights: {model}."
        title = f"{dataset}, {summary['images']} images, {model}"
    lines = [f"# gancodec report: {dataset}", "", opening, ""]

    axes = [m for m in AXES if m in curves and curves[m].notna().any()]
    for m in axes:
        rd_plot(curves, out / f"rd_{m}.png", anchors, metric=m, title=title)
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
        lines += _table(["published curve", "BD-rate"], [[_anchor_label(n), _pct(v)] for n, v in published.items()]) + [""]

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
        from ..class_table_markdown import markdown

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

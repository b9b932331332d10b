"""The `report` stage's logic: a markdown report with RD tables and a matplotlib RD plot."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def _fmt(v) -> str:
    return "n/a" if v is None or v != v else f"{v:+.1f}%"


def rd_plot(curves: pd.DataFrame, path: Path, anchors: pd.DataFrame | None = None, max_bpp: float = 2.0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for codec, g in curves.groupby("codec"):
        g = g.sort_values("bpp")
        ax.plot(g.bpp, g.psnr, "o-" if codec == "gancodec" else ".-", lw=2.5 if codec == "gancodec" else 1.2,
                label=f"{codec} (measured)")
    if anchors is not None:
        for name, g in anchors.groupby("name"):
            g = g.sort_values("bpp")
            ax.plot(g.bpp, g.psnr, "--", lw=1, alpha=0.7, label=f"{name} (published)")
    ax.set_xlim(0, max_bpp)
    ax.set_xlabel("bits per pixel (file bytes)")
    ax.set_ylabel("PSNR RGB (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(eval_dir: str | Path, out_dir: str | Path, anchors: pd.DataFrame | None = None,
                 dataset: str = "test set") -> Path:
    ev, out = Path(eval_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = pd.read_csv(ev / "curves.csv")
    summary = json.loads((ev / "metrics.json").read_text())
    rd_plot(curves, out / "rd_psnr.png", anchors)
    bd = summary["bd_rate_psnr"]
    ref = next(iter(bd), None)
    lines = [f"# gancodec report: {dataset}", ""]
    if ref:
        ours = bd[ref].get("gancodec")
        others = ", ".join(f"{c} {_fmt(v)}" for c, v in bd[ref].items() if c != "gancodec")
        lines.append(f"On {dataset} ({summary['images']} images), gancodec's BD-rate (PSNR) against {ref} is "
                     f"{_fmt(ours)} (negative = fewer bits for the same quality); the others: {others}.")
    lines += ["", "![RD curves](rd_psnr.png)", "", "## RD points (mean over images; bpp from file bytes)", "",
              "| codec | setting | bpp | PSNR (dB) | MS-SSIM | encode s | decode s |", "|---|---|---|---|---|---|---|"]
    for r in curves.sort_values(["codec", "bpp"]).itertuples():
        lines.append(f"| {r.codec} | {r.setting} | {r.bpp:.3f} | {r.psnr:.2f} | {r.ms_ssim:.4f} | {r.encode_s:.3f} | {r.decode_s:.3f} |")
    if (ev / "crops.png").exists():
        import shutil

        shutil.copy(ev / "crops.png", out / "crops.png")
        lines += ["", f"## Side by side at equal bpp ({summary.get('side_by_side', {}).get('image', '')}, centre crop)", "",
                  "![crops](crops.png)", "",
                  "gancodec at ~0.3 bpp; each other codec at its highest quality whose file is no larger."]
    lines += ["", "## BD-rate (PSNR), percent", ""]
    for anchor, vals in bd.items():
        lines.append(f"- against **{anchor}**: " + ", ".join(f"{c} {_fmt(v)}" for c, v in vals.items()))
    if summary.get("skipped"):
        lines += ["", "## Skipped codecs", ""] + [f"- {c}: {why}" for c, why in summary["skipped"].items()]
    lines += ["", "Made by `dvc repro report` from `" + str(ev / "rd.csv") + "`.", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path

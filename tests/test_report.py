"""The report's opening sentence and `python -m gancodec.eval` on a folder the pipeline does not know."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
from PIL import Image

from gancodec.eval.report import CURATED_ANCHORS, bpg_window, curated_anchors, headline, published_bd_rates, write_report
from sample_images import coffee


def _curve(codec: str, bpp, psnr) -> pd.DataFrame:
    return pd.DataFrame({"codec": codec, "setting": range(len(bpp)), "bpp": bpp, "psnr": psnr})


def test_headline_states_bd_rates_in_plain_words():
    psnr = [28.0, 31.0, 34.0, 37.0]
    anchor_bpp = np.array([0.2, 0.4, 0.8, 1.6])
    curves = pd.concat([_curve("hevc444", anchor_bpp, psnr), _curve("webp", anchor_bpp * 0.5, psnr),
                        _curve("gancodec", anchor_bpp * 2.0, psnr)])
    published = published_bd_rates(curves, pd.DataFrame({"name": "bpg_444_x265_ycbcr", "bpp": anchor_bpp, "psnr": psnr}))
    text = headline(curves, {"images": 24}, "Kodak", published)
    assert text.startswith("On Kodak (24 images), gancodec's BD-rate at equal PSNR is +100.0% against HEVC 4:4:4")
    assert "+300.0% against WebP" in text and "+100.0% against the published BPG 4:4:4 curve" in text
    assert "AVIF" not in text  # not measured: not claimed


def test_bpg_window_says_by_how_much_we_fall_short_at_025_to_075_bpp():
    psnr = [26.0, 29.0, 32.0, 35.0, 38.0]
    bpg_bpp = np.array([0.1, 0.2, 0.4, 0.8, 1.6])  # one dB per ~0.33 doubling: a straight line in log-bpp
    ours = _curve("gancodec", bpg_bpp * 1.5, psnr)  # 50 % more bits everywhere
    curves = pd.concat([_curve("hevc444", bpg_bpp, psnr), ours])
    rows = bpg_window(curves, pd.DataFrame({"name": "bpg_444_x265_ycbcr", "bpp": bpg_bpp, "psnr": psnr}))
    assert [r[0] for r in rows] == ["HEVC 4:4:4 (x265, BPG's engine), measured here", "BPG 4:4:4, published"]
    for row in rows:
        assert all("(+50.0% bits)" in cell and cell.startswith("-") for cell in row[1:4])
        assert row[4] == "+50.0%"
    assert bpg_window(_curve("gancodec", bpg_bpp, psnr), None) == []  # no BPG curve: no row, no claim


def test_headline_without_overlap_says_so():
    curves = pd.concat([_curve("hevc444", [0.1, 0.2], [20.0, 21.0]), _curve("gancodec", [1.0, 2.0], [40.0, 41.0])])
    assert "no BD-rate could be computed" in headline(curves, {"images": 3}, "mine", {})


def test_report_plots_a_curated_few_published_curves(tmp_path):
    """A folder of ~60 published curves: the plot keeps BPG, VTM, the hyperprior, ELIC and HiFiC."""
    names = [f"paper-{i}" for i in range(55)] + list(CURATED_ANCHORS)
    anchors = pd.concat([pd.DataFrame({"name": n, "bpp": [0.2, 0.5, 1.0], "psnr": [28.0, 31.0, 34.0]}) for n in names])
    kept = curated_anchors(anchors)
    assert list(kept.name.unique()) == [n for n in names if n in CURATED_ANCHORS] and kept.name.nunique() == 5
    assert curated_anchors(anchors, ["vtm"]).name.unique().tolist() == ["vtm"]
    ev = tmp_path / "eval"
    ev.mkdir()
    pts = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
    curves = pd.concat([_curve("gancodec", pts, [27, 29, 31, 33, 35]), _curve("webp", pts, [26, 28, 30, 32, 34])])
    curves.assign(encode_s=0.1, decode_s=0.1).to_csv(ev / "curves.csv", index=False)
    (ev / "summary.json").write_text(json.dumps({"images": 24, "weights_sha256": "ab" * 32}))
    text = (write_report(ev, tmp_path / "out", anchors, dataset="Kodak")).read_text()
    assert f"model {'ab' * 16} (not a shipped release)" in text.splitlines()[2]
    assert "-" in text.splitlines()[2] and "Smoke" not in text
    assert "ELIC (He 2022), published" in text and "paper-3" not in text


def test_eval_cli_on_a_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    img = coffee()
    for i, (y, x) in enumerate([(0, 0), (40, 60)]):
        Image.fromarray(img[y : y + 192, x : x + 224]).save(folder / f"p{i}.png")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "gancodec.eval", str(folder), "--out", str(out), "--codecs", "jpeg420",
                          "--qualities", "2", "6", "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rd = pd.read_csv(out / "rd.csv")
    assert len(rd) == 2 * (2 + 11)  # each image: 2 gancodec qualities + jpeg420's 11-point sweep
    assert (rd.bpp == rd.bytes * 8 / (192 * 224)).all()
    assert rd[rd.bpp <= 2.0].ssimulacra2.notna().all()
    report = (out / "report/README.md").read_text()
    # 2 images x 2 points: a smoke run, said so, naming the model (the shipped one), claiming no BD-rate
    opening = report.splitlines()[2]
    assert opening.startswith("**Smoke run**: 2 images × 2 gancodec quality points, model "), opening
    assert "BD-rate says nothing" in opening and opening.endswith("(the tables keep them for the record).")
    assert "(v1." in opening  # the shipped weights name their release
    assert set(json.loads((out / "metrics.json").read_text())) == {"images", "points", "bd_rate_psnr", "bd_rate_ms_ssim",
                                                                   "bd_rate_ssimulacra2"}

    missing = subprocess.run([sys.executable, "-m", "gancodec.eval", str(tmp_path / "nope"), "--out", str(out)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and missing.stderr.startswith("gancodec: error:") and "Traceback" not in missing.stderr

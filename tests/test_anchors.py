"""Loading published RD points (gancodec.eval.anchors). Fixtures mimic ../shared/anchors."""

import json

import numpy as np
import pytest

from gancodec.eval.anchors import curve, load_anchors


@pytest.fixture
def anchor_dir(tmp_path):
    root = tmp_path / "anchors"
    (root / "compressai_kodak").mkdir(parents=True)
    (root / "compressai_kodak" / "bpg.json").write_text(json.dumps(
        {"name": "BPG 8b 444", "description": "BPG",
         "results": {"psnr-rgb": [30.0, 35.0], "ms-ssim-rgb": [0.95, 0.99], "bpp": [0.2, 0.6],
                     "encoding_time": [1.0, 1.1], "decoding_time": [0.1, 0.2]}}))  # fmt: skip
    (root / "compressai_kodak" / "paper-x.json").write_text(json.dumps(
        {"name": "x", "meta": {"dataset": "kodak"}, "results": {"bpp": [0.1, 0.3], "ms-ssim-db-rgb": [10.0, 20.0]}}))
    (root / "mlic").mkdir()
    (root / "mlic" / "mlic_mse.json").write_text(json.dumps({"psnr": [29.0, 31.0], "bpp": [0.12, 0.2]}))
    (root / "tfc" / "PSNR_sRGB_RGB").mkdir(parents=True)
    (root / "tfc" / "PSNR_sRGB_RGB" / "bpg444.txt").write_text(
        '# Aggregate rate-distortion data for "BPG (4:4:4)" on kodak.\n# notes\n\n0.5, 33.0\n1.0, 36.5\n')
    (root / "hific").mkdir()
    (root / "hific" / "data.csv").write_text(
        ",dataset,bpp,FID,KID,NIQE,LPIPS,MS-SSIM,PSNR\n0,clic2020,0.13,4.2,0.001,9.4,0.05,0.95,30.9\n"
        "6,kodak,0.18,,,11.3,0.069,0.937,27.6\n7,kodak,0.35,,,11.9,0.043,0.964,29.7\n")
    (root / "msillm").mkdir()
    (root / "msillm" / "results.csv").write_text(
        "model,dataset,bpp,fid,lpips,psnr\nMS-ILLM,kodak,0.04,,0.16,24.7\nMS-ILLM,kodak,0.08,,0.11,25.9\n"
        "No-GAN,kodak,0.01,,0.28,23.1\nMS-ILLM,div2k,0.05,3.0,0.1,26.0\n")
    (root / "SHA256SUMS").write_text("ignored\n")
    return root


def test_compressai_json(anchor_dir):
    df = load_anchors(anchor_dir / "compressai_kodak" / "bpg.json")
    assert df["name"].tolist() == ["bpg", "bpg"] and df["label"].iloc[0] == "BPG 8b 444"
    assert df["psnr"].tolist() == [30.0, 35.0] and df["encode_s"].tolist() == [1.0, 1.1]
    assert df["ms_ssim_db"].iloc[1] == pytest.approx(20.0)
    assert df["published"].all()


def test_whole_tree_is_one_tidy_table(anchor_dir):
    df = load_anchors(anchor_dir, dataset="kodak")
    assert set(df["source"]) == {"compressai_kodak", "mlic", "tfc/PSNR_sRGB_RGB", "hific", "msillm"}
    assert (df["dataset"] == "kodak").all() and df["published"].all()
    paper = df[df["name"] == "paper-x"]
    assert paper["ms_ssim"].tolist() == pytest.approx([0.9, 0.99])
    tfc = df[df["source"] == "tfc/PSNR_sRGB_RGB"]
    assert tfc["label"].iloc[0] == "BPG (4:4:4)" and tfc["psnr"].tolist() == [33.0, 36.5]
    hific = df[df["source"] == "hific"]
    assert hific["bpp"].tolist() == [0.18, 0.35] and hific["lpips"].tolist() == [0.069, 0.043]
    assert np.isnan(hific["fid"]).all()
    msillm = df[df["source"] == "msillm"]
    assert sorted(msillm["label"].unique()) == ["MS-ILLM", "No-GAN"] and len(msillm) == 3


def test_all_datasets_kept_without_filter(anchor_dir):
    df = load_anchors(anchor_dir / "msillm")
    assert set(df["dataset"]) == {"kodak", "div2k"}


def test_curve_lookup(anchor_dir):
    df = load_anchors(anchor_dir)
    bpp, psnr = curve(df, "mlic_mse")
    assert bpp.tolist() == [0.12, 0.2] and psnr.tolist() == [29.0, 31.0]
    with pytest.raises(KeyError, match="no anchor curve named"):
        curve(df, "nope")
    with pytest.raises(KeyError, match="no 'psnr' values"):
        curve(df, "paper-x")


def test_malformed_files_raise(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"results": {"bpp": [0.1, 0.2], "psnr-rgb": [30.0]}}))
    with pytest.raises(ValueError, match="differ in length"):
        load_anchors(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        load_anchors(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no anchor files"):
        load_anchors(empty)

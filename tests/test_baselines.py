"""Classical codecs, sweeps and RD curves (gancodec.eval.baselines)."""

import math

import numpy as np
import pandas as pd
import pytest
from skimage import data

from gancodec.eval import baselines as b
from gancodec.eval.metrics import psnr


@pytest.fixture(scope="module")
def img():
    return np.ascontiguousarray(data.astronaut()[64:240, 160:352])  # 176x192, MS-SSIM-sized


def _need(name):
    ok, reason = b.CODECS[name].available()
    if not ok:
        pytest.skip(f"{name}: {reason}")
    return b.CODECS[name]


@pytest.mark.parametrize("name", list(b.CODECS))
def test_round_trip_and_rate_order(name, img):
    codec = _need(name)
    low, high = codec.sweep_settings[1], codec.sweep_settings[-2]
    small, big = codec.encode(img, low), codec.encode(img, high)
    assert isinstance(small, bytes) and 0 < len(small) < len(big)
    out_small, out_big = codec.decode(small), codec.decode(big)
    assert out_small.shape == img.shape and out_small.dtype == np.uint8
    assert 20 < psnr(img, out_small) < psnr(img, out_big)


def test_ycbcr_is_full_range_bt601_and_round_trips(img):
    planes = b.rgb_to_ycbcr(np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], np.uint8))
    assert planes[:, 0, 0].tolist() == [255, 128, 128] and planes[:, 0, 1].tolist() == [0, 128, 128]
    assert planes[:, 0, 2].tolist() == [76, 85, 255]  # JFIF red
    assert np.abs(b.ycbcr_to_rgb(b.rgb_to_ycbcr(img)).astype(int) - img).max() <= 2


def test_hevc_stream_has_no_x265_settings_text_and_odd_sizes_work(img):
    codec = _need("hevc444")
    stream = codec.encode(img, 37)
    assert stream.startswith(b"\x00\x00\x00\x01") and b"x265" not in stream
    odd = img[:45, :67]
    assert codec.decode(codec.encode(odd, 30)).shape == odd.shape


def test_grayscale_is_coded_as_rgb(img):
    gray = img[:, :, 0]
    codec = _need("jpeg444")
    assert codec.decode(codec.encode(gray, 80)).shape == gray.shape + (3,)


def test_bad_setting_and_unknown_codec(img):
    with pytest.raises(ValueError, match="outside"):
        b.CODECS["jpeg420"].encode(img, 200)
    with pytest.raises(KeyError, match="valid: jpeg420"):
        b.get_codec("bpg")


def test_missing_codec_is_reported_not_dropped(img, monkeypatch):
    monkeypatch.setattr(b.shutil, "which", lambda name: None)
    ok, reason = b.CODECS["avifenc"].available()
    assert not ok and "avifenc not found" in reason
    with pytest.raises(b.CodecUnavailable, match="avifenc skipped: avifenc not found"):
        b.sweep("avifenc", [img])
    rows, skipped = b.sweep_many(["avifenc", "jpeg420"], {"astro": img})
    assert set(skipped) == {"avifenc"} and "avifenc not found" in skipped["avifenc"]
    assert set(rows["codec"]) == {"jpeg420"}
    assert "avifenc not found" in b.availability()["avifenc"]


def test_sweep_columns_and_rd_curve(img):
    df = b.sweep("jpeg420", {"a": img, "b": img[::-1].copy()}, settings=[20, 60])
    assert list(df.columns) == ["image", "codec", "setting", "bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s"]
    assert len(df) == 4 and df["ms_ssim"].between(0.5, 1).all()
    assert (df["bpp"] == df["bytes"] * 8 / (176 * 192)).all()
    curve = b.rd_curve(df)
    assert curve["setting"].tolist() == [20, 60] and curve["images"].tolist() == [2, 2]
    at20 = df[df["setting"] == 20]
    assert curve.loc[0, "psnr"] == pytest.approx(at20["psnr"].mean())
    assert curve.loc[0, "bpp"] == pytest.approx(at20["bpp"].mean())


def test_rd_curve_averages_per_setting_not_per_bpp():
    df = pd.DataFrame(
        {"image": ["a", "b", "a", "b"], "codec": "x", "setting": [1, 1, 2, 2],
         "bytes": [1, 3, 5, 7], "bpp": [0.1, 0.3, 0.5, 0.7], "psnr": [30.0, 32.0, 36.0, 38.0]}
    )  # fmt: skip
    curve = b.rd_curve(df)
    assert curve["bpp"].tolist() == pytest.approx([0.2, 0.6]) and curve["psnr"].tolist() == pytest.approx([31.0, 37.0])


def test_match_bpp_picks_highest_quality_under_target(img):
    target = 1.0
    got = b.match_bpp("jpeg420", img, target)
    assert got.bpp <= target and not got.over_target and math.isfinite(got.psnr)
    above = b.CODECS["jpeg420"].encode(img, got.setting + 1)
    assert len(above) * 8 / (176 * 192) > target
    tiny = b.match_bpp("jpeg420", img, 0.001)
    assert tiny.over_target and tiny.setting == 1


def test_match_bpp_on_a_falling_knob(img):
    _need("hevc444")
    got = b.match_bpp("hevc444", img, 0.5)
    assert got.bpp <= 0.5 and got.setting > 0
    assert len(b.CODECS["hevc444"].encode(img, got.setting - 1)) * 8 / (176 * 192) > 0.5

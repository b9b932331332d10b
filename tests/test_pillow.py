"""The Pillow plugin: after ``import gancodec``, Image.open reads .gcx and Image.save writes it."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import gancodec
from gancodec.eval.metrics import psnr
from sample_images import astronaut, camera, text_page


def test_open_decodes_a_gcx_file_like_decompress(tmp_path):
    pixels = astronaut(96)
    data = gancodec.compress(pixels, quality=4)
    (tmp_path / "x.gcx").write_bytes(data)
    with Image.open(tmp_path / "x.gcx") as im:
        assert (im.format, im.mode, im.size) == ("GCX", "RGB", (96, 96))
        assert im.info["quality"] == 4.0 and len(im.info["model_id"]) == 32
        decoded = np.asarray(im)
    assert np.array_equal(decoded, np.asarray(gancodec.decompress(data)))  # the same decoder, bit for bit
    assert psnr(pixels, decoded) > 25


def test_save_encodes_with_quality_or_bpp_and_the_stream_is_a_normal_gcx(tmp_path):
    pixels = astronaut(128)
    im = Image.fromarray(pixels)
    im.save(tmp_path / "low.gcx", quality=2)
    im.save(tmp_path / "high.gcx", quality=7)
    low, high = (tmp_path / "low.gcx").read_bytes(), (tmp_path / "high.gcx").read_bytes()
    assert gancodec.read_header(low).quality == 2.0 and len(low) < len(high)
    assert low == gancodec.compress(pixels, quality=2)  # exactly what compress() writes
    buf = io.BytesIO()
    im.save(buf, format="GCX", bpp=0.5)
    assert abs(len(buf.getvalue()) * 8 / 128**2 - 0.5) < 0.15


def test_format_is_found_by_magic_whatever_the_name_and_grayscale_stays_grayscale(tmp_path):
    gray = camera(80)
    (tmp_path / "stream.bin").write_bytes(gancodec.compress(gray, quality=3))
    with Image.open(tmp_path / "stream.bin") as im:
        assert (im.format, im.mode, im.size) == ("GCX", "L", (80, 80))
        im.load()
        assert im.mode == "L" and psnr(gray, np.asarray(im)) > 25
    assert Image.registered_extensions()[".gcx"] == "GCX"


def test_a_webp_fallback_stream_opens_and_saving_can_turn_the_fallback_off(tmp_path):
    im = Image.fromarray(text_page(grey=True))
    im.save(tmp_path / "page.gcx", quality=5)  # the fallback is on by default
    im.save(tmp_path / "learned.gcx", quality=5, fallback=False)
    assert gancodec.read_header((tmp_path / "learned.gcx").read_bytes()).payload == "learned"
    with Image.open(tmp_path / "page.gcx") as page:
        assert (page.format, page.mode, page.size, page.info["payload"]) == ("GCX", "L", (160, 96), "webp")
        assert "model_id" not in page.info
        assert psnr(text_page(grey=True), np.asarray(page)) > 20


def test_bad_streams_and_bad_options_fail_clearly(tmp_path):
    (tmp_path / "bad.gcx").write_bytes(b"GCX\x89" + b"\x00" * 10)
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(tmp_path / "bad.gcx")
    with pytest.raises(ValueError, match=r"unknown save option\(s\) \['qualty'\]"):
        Image.fromarray(astronaut(32)).save(tmp_path / "typo.gcx", qualty=3)
    with pytest.raises(ValueError, match="quality must be a number from 1 to 8, got 90"):
        Image.fromarray(astronaut(32)).save(tmp_path / "jpeg-scale.gcx", quality=90)
    assert not (tmp_path / "typo.gcx").exists() and not (tmp_path / "jpeg-scale.gcx").exists()


def test_importing_gancodec_registers_the_plugin_without_loading_torch():
    code = ("import sys, gancodec; from PIL import Image; "
            "print('.gcx' in Image.registered_extensions(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "False"], out.stderr

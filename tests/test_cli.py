"""The gancodec command as a user runs it: real processes, real files, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from sample_images import astronaut, camera, text_page


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gancodec", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_compress_info_decompress(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(astronaut(128)).save(src)
    r = run("compress", src, "-o", tmp_path / "a.gcx", "--quality", "5")
    assert r.returncode == 0, r.stderr
    info = run("info", tmp_path / "a.gcx")
    assert info.returncode == 0 and "128x128" in info.stdout and "model id" in info.stdout
    size = (tmp_path / "a.gcx").stat().st_size
    assert f"{size * 8 / 128 / 128:.4f}" in info.stdout
    r = run("decompress", tmp_path / "a.gcx", "-o", tmp_path / "a-out.png")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "a-out.png").size == (128, 128)


def test_folder_in_folder_out_keeps_structure(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(astronaut(64)).save(tmp_path / "in" / "x.png")
    Image.fromarray(camera(64)).save(tmp_path / "in" / "sub" / "y.jpg")
    assert run("compress", tmp_path / "in", "-o", tmp_path / "out", "--bpp", "0.5").returncode == 0
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.gcx")) == ["sub/y.jpg.gcx", "x.png.gcx"]
    assert run("decompress", tmp_path / "out", "-o", tmp_path / "back").returncode == 0
    # the bulk job's rule both ways: x.png -> x.png.gcx -> x.png; y.jpg -> y.jpg.gcx -> y.jpg.png
    assert sorted(p.relative_to(tmp_path / "back").as_posix() for p in (tmp_path / "back").rglob("*")
                  if p.is_file()) == ["sub/y.jpg.png", "x.png"]
    assert Image.open(tmp_path / "back" / "sub" / "y.jpg.png").mode == "L"


def test_bad_input_is_one_line_no_traceback_no_output(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is text")
    r = run("compress", bad, "-o", tmp_path / "notes.gcx")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gancodec: error:") and "notes.png" in lines[0]
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.gcx")) and not list(tmp_path.glob(".*part"))


def test_corrupt_stream_is_one_line(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(astronaut(64)).save(src)
    run("compress", src, "-o", tmp_path / "a.gcx")
    data = bytearray((tmp_path / "a.gcx").read_bytes())
    data[60] ^= 0xFF
    (tmp_path / "bad.gcx").write_bytes(bytes(data))
    for cmd in (["decompress", tmp_path / "bad.gcx", "-o", tmp_path / "bad.png"], ["info", tmp_path / "bad.gcx"]):
        r = run(*cmd)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.count("\n") == 1 and "crc32" in r.stderr
    assert not (tmp_path / "bad.png").exists()
    (tmp_path / "cut.gcx").write_bytes(bytes(data[:30]))
    r = run("decompress", tmp_path / "cut.gcx", "-o", tmp_path / "cut.png")
    assert r.returncode == 1 and "truncated" in r.stderr


def test_unwritable_destination_is_clear(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(astronaut(64)).save(src)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("compress", src, "-o", blocker / "a.gcx")
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.startswith("gancodec: error:")


def test_usage_errors_exit_2(tmp_path):
    r = run("compress", "x.png", "-o", "y.gcx", "--quality", "3", "--bpp", "0.2")
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_refine_makes_a_smaller_stream_the_plain_decoder_reads(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(astronaut(96)).save(src)
    assert run("compress", src, "-o", tmp_path / "plain.gcx", "-q", "3").returncode == 0
    r = run("compress", src, "-o", tmp_path / "refined.gcx", "-q", "3", "--refine", "30")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "refined.gcx").stat().st_size < (tmp_path / "plain.gcx").stat().st_size
    assert run("decompress", tmp_path / "refined.gcx", "-o", tmp_path / "back.png").returncode == 0
    assert Image.open(tmp_path / "back.png").size == (96, 96)
    for bad in ("-1", "2.5", "many"):
        r = run("compress", src, "-o", tmp_path / "bad.gcx", "--refine", bad)
        assert r.returncode == 2 and "refine steps must be a whole number" in r.stderr
    assert not (tmp_path / "bad.gcx").exists()


def test_rgba_warning_is_printed(tmp_path):
    src = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([astronaut(64), np.full((64, 64), 9, np.uint8)])).save(src)
    r = run("compress", src, "-o", tmp_path / "rgba.gcx")
    assert r.returncode == 0 and "warning" in r.stderr and "alpha" in r.stderr


def test_a_text_image_falls_back_to_webp_unless_told_not_to(tmp_path):
    src = tmp_path / "page.png"
    Image.fromarray(text_page()).save(src)
    r = run("compress", src, "-o", tmp_path / "page.gcx", "-q", "5", "-v")
    assert r.returncode == 0 and "(webp fallback)" in r.stdout, r.stderr
    r = run("compress", src, "-o", tmp_path / "learned.gcx", "-q", "5", "--no-fallback")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "page.gcx").stat().st_size <= (tmp_path / "learned.gcx").stat().st_size
    info = run("info", tmp_path / "page.gcx")
    assert info.returncode == 0 and "gcx version 2" in info.stdout and "webp (fallback)" in info.stdout, info.stdout
    assert f"{(tmp_path / 'page.gcx').stat().st_size * 8 / (160 * 96):.4f}" in info.stdout
    assert "learned" in run("info", tmp_path / "learned.gcx").stdout
    r = run("decompress", tmp_path / "page.gcx", "-o", tmp_path / "page-out.png", "--realism")
    assert r.returncode == 0 and r.stderr.count("\n") == 1 and "warning: realism does not apply" in r.stderr, r.stderr
    assert Image.open(tmp_path / "page-out.png").size == (160, 96)

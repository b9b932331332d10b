"""The CLI never clobbers and checks its destinations before any work (issue 21)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from gancodec import compress
from gancodec.cli import main
from sample_images import astronaut, camera


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gancodec", *map(str, args)], capture_output=True, text=True, timeout=300)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gancodec: error:"), lines
    return lines[0]


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("streams") / "a.gcx"
    path.write_bytes(compress(astronaut(64), quality=3))
    return path


def test_decompress_onto_an_existing_file_fails_and_keeps_it_unless_forced(stream, tmp_path):
    out = tmp_path / "existing.png"
    Image.fromarray(camera(32)).save(out)
    before = out.read_bytes()
    r = run("decompress", stream, "-o", out)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    line = one_error_line(r.stderr)
    assert str(out) in line and "exists" in line and "--force" in line
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["existing.png"]  # no temp file left
    r = run("decompress", stream, "-o", out, "--force")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (64, 64)


def test_compress_onto_an_existing_stream_fails_and_keeps_it_unless_forced(tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(astronaut(48)).save(src)
    out = tmp_path / "a.gcx"
    out.write_bytes(b"precious")
    assert main(["compress", str(src), "-o", str(out)]) == 1
    assert "exists" in one_error_line(capsys.readouterr().err) and out.read_bytes() == b"precious"
    assert main(["compress", str(src), "-o", str(out), "-f"]) == 0
    assert out.read_bytes().startswith(b"GCX\x89")


def test_a_folder_with_one_existing_output_fails_before_any_work(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name, size in (("a", 32), ("b", 48), ("c", 40)):
        Image.fromarray(astronaut(size)).save(src / f"{name}.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png.gcx").write_bytes(b"keep me")
    assert main(["compress", str(src), "-o", str(out)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "b.png.gcx: exists" in line
    assert sorted(p.name for p in out.iterdir()) == ["b.png.gcx"]  # a and c were not coded either
    assert (out / "b.png.gcx").read_bytes() == b"keep me"
    assert main(["compress", str(src), "-o", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png.gcx", "b.png.gcx", "c.png.gcx"]
    back = tmp_path / "back"
    assert main(["decompress", str(out), "-o", str(back)]) == 0
    capsys.readouterr()
    assert main(["decompress", str(out), "-o", str(back)]) == 1  # the PNGs exist now
    assert "a.png: exists (and 2 more output(s))" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in back.iterdir()) == ["a.png", "b.png", "c.png"]


def test_an_unwritable_destination_fails_before_any_image_is_coded(tmp_path, capsys, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        Image.fromarray(astronaut(32)).save(src / f"{name}.png")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    import gancodec.codec

    coded = []
    monkeypatch.setattr(gancodec.codec, "compress", lambda *a, **k: coded.append(1) or b"")
    assert main(["compress", str(src), "-o", str(blocker / "out")]) == 1
    line = one_error_line(capsys.readouterr().err)  # one line, not one per image
    assert "cannot create a file in" in line and "writable" in line
    assert coded == []


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_inputs_are_images_to_compress_as_they_are_to_bulk(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(astronaut(48)).save(src / "photo.avif", quality=90)
    assert main(["compress", str(src), "-o", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "photo.avif.gcx").read_bytes().startswith(b"GCX\x89")


def test_the_license_file_is_the_apache_license_pyproject_names():
    root = Path(__file__).resolve().parents[1]
    text = (root / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert 'license = "Apache-2.0"' in (root / "pyproject.toml").read_text()


def test_help_and_info_load_no_torch(stream):
    """`gancodec --help` and `gancodec info` answer without loading torch or the model (fast)."""
    code = ("import sys\nfrom gancodec.cli import main\n"
            f"assert main(['info', {str(stream)!r}]) == 0\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "this install's weights" in r.stdout and r.stdout.splitlines()[-1] == "False"
    code = "import sys\nfrom gancodec.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.splitlines()[-1] == "False" and "compress" in r.stdout

"""A disk that fills mid-write: one clear error naming the file, and no partial or temp file.

No root needed: each command runs in a child process whose file-size limit (RLIMIT_FSIZE) is
smaller than its output, with SIGXFSZ ignored, so the write fails with EFBIG part-way through,
as it would on a full disk (ENOSPC takes the same path: an OSError from write).
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import gancodec

from sample_images import astronaut


def limited(limit: int):
    """A preexec_fn: files this process writes may not grow past ``limit`` bytes."""

    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

    return preexec


def run_limited(args: list[str], limit: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, preexec_fn=limited(limit))


def assert_one_clear_line(r: subprocess.CompletedProcess, dest) -> None:
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gancodec: error:"), lines
    assert str(dest) in lines[0] and "File too large" in lines[0] and "nothing was written" in lines[0], lines[0]


@pytest.fixture
def photo_png(tmp_path):
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    Image.fromarray(astronaut(128)).save(path)
    return path


def test_compress_on_a_full_disk(photo_png, tmp_path):
    out = tmp_path / "out" / "photo.gcx"
    assert len(gancodec.compress(photo_png, quality=8, device="cpu")) > 2000  # the output cannot fit
    r = run_limited(["-m", "gancodec", "compress", str(photo_png), "-o", str(out), "--quality", "8", "--device", "cpu"], 1024)
    assert_one_clear_line(r, out)
    assert list(out.parent.iterdir()) == []  # neither photo.gcx nor .photo.gcx.*.part


def test_decompress_on_a_full_disk(photo_png, tmp_path):
    gcx = tmp_path / "photo.gcx"
    gcx.write_bytes(gancodec.compress(photo_png, quality=8, device="cpu"))
    out = tmp_path / "out" / "photo.png"
    r = run_limited(["-m", "gancodec", "decompress", str(gcx), "-o", str(out), "--device", "cpu"], 4096)
    assert_one_clear_line(r, out)
    assert list(out.parent.iterdir()) == []


def test_an_output_that_fits_is_written_whole(photo_png, tmp_path):
    """The same limit with a small enough output: the write succeeds (the harness is not rigged)."""
    out = tmp_path / "out" / "photo.gcx"
    r = run_limited(["-m", "gancodec", "compress", str(photo_png), "-o", str(out), "--quality", "1", "--device", "cpu"], 1024)
    assert r.returncode == 0, r.stderr
    assert gancodec.decompress(out.read_bytes(), device="cpu").size == (128, 128)


BULK = textwrap.dedent("""
    import json, sys
    from gancodec import bulk
    s = bulk.run_batches(sys.argv[1], sys.argv[2], bulk.Settings(quality=8, device="cpu"))
    print(json.dumps({"ok": s.ok, "failed": s.failed, "failures": s.failures}))
""")


def test_bulk_local_writer_on_a_full_disk(tmp_path):
    """A too-big output fails with a storage error naming it; the small one and the manifests land."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    Image.fromarray(astronaut(512)).save(src / "big.png")  # ~40 KB of .gcx at quality 8
    Image.fromarray(astronaut(64)).save(src / "small.png")  # < 1 KB; the manifests are ~15 KB
    r = run_limited(["-c", BULK, str(src), str(dst)], 20_000)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert (result["ok"], result["failed"]) == (1, 1)
    key, kind, error = result["failures"][0]
    assert (key, kind) == ("big.png", "storage")
    assert str(dst / "big.png.gcx") in error and "File too large" in error
    assert not (dst / "big.png.gcx").exists() and (dst / "small.png.gcx").is_file()
    assert sorted(p.name for p in dst.rglob("*.part")) == []
    assert np.asarray(gancodec.decompress((dst / "small.png.gcx").read_bytes(), device="cpu")).shape == (64, 64, 3)

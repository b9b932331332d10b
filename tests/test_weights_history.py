"""Archives outlive releases: every shipped weights version is listed, found by model id, and can be
given back from git, so a .gcx made by an older release still decodes."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gancodec
from gancodec import BitstreamError, ModelError
from gancodec.weights import SHIPPED_WEIGHTS, export_weights, load_model
from gancodec.weights import history
from gancodec.models.inference import ENV_PRECISION, resolve_precision
from sample_images import astronaut

DATA = Path(__file__).parent / "data"


@pytest.fixture
def no_search_path(tmp_path, monkeypatch):
    """Nothing on the weights search path: an empty cache, no $GANCODEC_WEIGHTS_PATH."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(history.ENV_WEIGHTS_PATH, raising=False)
    monkeypatch.delenv("GANCODEC_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory) -> Path:
    """Weights of another model (the shipped one, slightly changed), alone in a folder."""
    from gancodec.train.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(torch.load(SHIPPED_WEIGHTS, weights_only=True))
    with torch.no_grad():
        model.g_s[0].bias.add_(0.01)
    path = tmp_path_factory.mktemp("older") / "weights.pt"
    export_weights(model, path)
    path.with_suffix(".json").unlink(missing_ok=True)
    return path


def _with_model_id(data: bytes, model_id: str) -> bytes:
    """``data`` claiming another model id, with its CRC made right again."""
    body = bytearray(data[:-4])
    body[5:21] = bytes.fromhex(model_id)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def _in_git(version: dict) -> bool:
    """Whether this checkout holds ``version``'s weights file (not so in a shallow clone or an installed copy)."""
    r = subprocess.run(["git", "-C", str(history.WEIGHTS_DIR), "cat-file", "-e", version["git_blob"]], capture_output=True)
    return r.returncode == 0


def test_history_ends_with_the_shipped_weights():
    data = SHIPPED_WEIGHTS.read_bytes()
    known = history.versions()
    assert known[-1]["sha256"] == hashlib.sha256(data).hexdigest() and known[-1]["git_blob"] == history.git_blob_id(data)
    assert known[-1]["model_id"] == load_model().model_id
    assert len({v["version"] for v in known}) == len({v["model_id"] for v in known}) == len(known)
    assert all(v["model_id"] == v["sha256"][:32] for v in known)


def test_stream_of_weights_on_the_search_path_decodes_without_arguments(other_weights, no_search_path, monkeypatch):
    data = gancodec.compress(astronaut(64), quality=3, weights=other_weights)
    with pytest.raises(BitstreamError, match="not a gancodec release"):
        gancodec.decompress(data)
    monkeypatch.setenv(history.ENV_WEIGHTS_PATH, str(other_weights.parent))
    assert np.array_equal(np.asarray(gancodec.decompress(data)), np.asarray(gancodec.decompress(data, weights=other_weights)))
    with pytest.raises(BitstreamError, match="model_id"):  # weights given by name stay strict
        gancodec.decompress(data, weights=SHIPPED_WEIGHTS)


def test_stream_of_a_retired_release_names_the_version_and_the_fix(tmp_path, no_search_path):
    retired = history.versions()[-2]
    src = tmp_path / "old.gcx"
    src.write_bytes(_with_model_id(gancodec.compress(astronaut(64), quality=3), retired["model_id"]))
    with pytest.raises(BitstreamError, match=f"shipped as {retired['version']} .*gancodec weights get {retired['version']}"):
        gancodec.decompress(src.read_bytes())
    import os

    env = os.environ.copy()  # no_search_path already emptied the search path here
    r = subprocess.run([sys.executable, "-m", "gancodec", "decompress", src, "-o", tmp_path / "old.png"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and f"gancodec weights get {retired['version']}" in r.stderr
    assert not (tmp_path / "old.png").exists()
    info = subprocess.run([sys.executable, "-m", "gancodec", "info", src], capture_output=True, text=True, env=env, timeout=120)
    assert info.returncode == 0 and f"weights version  {retired['version']}" in info.stdout


def test_weights_get_writes_a_version_from_git_and_refuses_a_wrong_one(other_weights, tmp_path, no_search_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    data = other_weights.read_bytes()
    (repo / "w.pt").write_bytes(data)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "w.pt"], check=True)
    subprocess.run([*git, "commit", "-qm", "w"], check=True)
    hist = tmp_path / "HISTORY.json"
    hist.write_text('{"versions": []}')
    entry = history.record("v9-test", data, history_file=hist)
    assert history.record("v9-test", data, history_file=hist) == entry  # shipping the same file twice adds nothing
    with pytest.raises(ModelError, match="already taken"):
        history.record("v9-test", data + b"x", history_file=hist)

    got = history.fetch("v9-test", repo=repo, history_file=hist)
    assert got.parent == tmp_path / "xdg/gancodec/weights" and got.read_bytes() == data
    stream = gancodec.compress(astronaut(64), quality=3, weights=other_weights)
    assert gancodec.decompress(stream).size == (64, 64)  # found in the cache by its model id

    with pytest.raises(ModelError, match="no such shipped version; shipped versions: v9-test"):
        history.fetch("v8", repo=repo, history_file=hist)
    entry["git_blob"] = history.git_blob_id(b"not the weights")
    hist.write_text('{"versions": [%s]}' % __import__("json").dumps(entry))
    got.unlink()
    with pytest.raises(ModelError, match="is not in .*git fetch --unshallow"):
        history.fetch("v9-test", repo=repo, history_file=hist)
    assert not got.exists()


@pytest.mark.skipif(not _in_git(history.versions()[-2]), reason="needs a git checkout of gancodec with its history (not a shallow clone)")
def test_a_retired_release_comes_back_from_this_repository(tmp_path, no_search_path):
    retired = history.versions()[-2]
    r = subprocess.run([sys.executable, "-m", "gancodec", "weights", "get", retired["version"], "--to", tmp_path],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == retired["sha256"]
    img = astronaut(64)
    stream = gancodec.compress(img, quality=3, weights=path)
    assert gancodec.read_header(stream).model_id == retired["model_id"]
    out = np.asarray(gancodec.decompress(stream, weights=path)).astype(float)
    assert 10 * np.log10(255**2 / np.mean((out - img) ** 2)) > 25  # a working model, not just a file


@pytest.mark.parametrize("precision", ["float32", "auto"])
@pytest.mark.parametrize("name", ["golden-v1.5-rgb", "golden-v1.5-gray", "golden-v1.6-rgb", "golden-v1.6-gray",
                                  "golden-v1.7-rgb", "golden-v1.7-gray"])
def test_files_made_by_an_earlier_release_decode_to_the_same_pixels(name, precision, tmp_path, no_search_path, monkeypatch):
    """tests/data holds streams made by v1.5, v1.6 and v1.7 and their decoded pixels (float32); every later
    release must give the same pixels back (fetching their weights from git once newer weights are
    shipped): within 1 level in float32, and within 2 levels at >= 55 dB where the machine's
    default is bfloat16 inference (gancodec.models.inference; docs/speed.md)."""
    monkeypatch.setenv(ENV_PRECISION, precision)
    stream = (DATA / f"{name}.gcx").read_bytes()
    header = gancodec.read_header(stream)
    weights = None
    if header.model_id != load_model().model_id:
        release = history.version_of(header.model_id)
        if not _in_git(release):
            pytest.skip("the stream's weights are retired and this checkout has no git history to fetch them from")
        weights = history.fetch(release["version"], tmp_path)
    out = np.asarray(gancodec.decompress(stream, weights=weights)).astype(int)
    want = np.asarray(Image.open(DATA / f"{name}.png")).astype(int)
    assert out.shape == want.shape
    if resolve_precision(precision, torch.device("cpu")) == "float32":
        assert np.abs(out - want).max() <= 1 and np.mean(out != want) < 0.01  # float convolutions may round differently by CPU
    else:  # a bfloat16 post-filter: every pixel close, the image as a whole far above any codec's error
        assert np.abs(out - want).max() <= 2
        assert 10 * np.log10(255**2 / np.mean((out - want) ** 2)) >= 55

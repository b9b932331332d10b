"""Download: mirror, resumable HTTP (real local server), archives, checksums, manifest."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
import zipfile
from pathlib import Path

import pytest

from gancodec.data.download import (
    download_sources,
    fetch_http,
    parse_sha256sums,
    parse_sources,
    read_manifest,
    select_files,
)
from gancodec.errors import DataError, StorageError
from gancodec.params import resolve_section


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single ``Range: bytes=N-`` support, with a request log."""

    log: list = []
    ranges = True
    drop_first = False  # send half of the first response, then hang up

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        self.log.append((self.path, rng))
        path = Path(self.translate_path(self.path))
        if self.drop_first and path.is_file():
            type(self).drop_first = False
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if not (self.ranges and rng and path.is_file()):
            return super().do_GET()
        data = path.read_bytes()
        start = int(rng.removeprefix("bytes=").split("-")[0])
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = type("H", (RangeHandler,), {"log": [], "ranges": True, "drop_first": False})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_download_verifies_and_renames(server, tmp_path):
    root, base, handler = server
    data = os.urandom(300_000)
    (root / "a.bin").write_bytes(data)
    dest = tmp_path / "out" / "a.bin"
    assert fetch_http(f"{base}/a.bin", dest, sha(data), progress=False) == sha(data)
    assert dest.read_bytes() == data
    assert not dest.with_name("a.bin.part").exists()


def test_http_resumes_from_partial_file(server, tmp_path):
    root, base, handler = server
    data = os.urandom(250_000)
    (root / "b.bin").write_bytes(data)
    dest = tmp_path / "b.bin"
    dest.with_name("b.bin.part").write_bytes(data[:100_000])  # an interrupted earlier try
    fetch_http(f"{base}/b.bin", dest, sha(data), progress=False)
    assert dest.read_bytes() == data
    assert handler.log == [("/b.bin", "bytes=100000-")]


def test_http_dropped_connection_is_retried_with_range(server, tmp_path):
    root, base, handler = server
    handler.drop_first = True
    data = os.urandom(200_000)
    (root / "f.bin").write_bytes(data)
    fetch_http(f"{base}/f.bin", tmp_path / "f.bin", sha(data), progress=False, backoff=0)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert [r for _, r in handler.log] == [None, "bytes=100000-"]


def test_http_server_ignoring_range_restarts_from_zero(server, tmp_path):
    root, base, handler = server
    handler.ranges = False
    data = os.urandom(50_000)
    (root / "c.bin").write_bytes(data)
    dest = tmp_path / "c.bin"
    dest.with_name("c.bin.part").write_bytes(b"junk" * 10)
    fetch_http(f"{base}/c.bin", dest, sha(data), progress=False)
    assert dest.read_bytes() == data


def test_stale_partial_is_discarded_once(server, tmp_path):
    root, base, handler = server
    data = os.urandom(60_000)
    (root / "d.bin").write_bytes(data)
    dest = tmp_path / "d.bin"
    dest.with_name("d.bin.part").write_bytes(os.urandom(20_000))  # partial of an older version
    fetch_http(f"{base}/d.bin", dest, sha(data), progress=False)
    assert dest.read_bytes() == data
    assert [r for _, r in handler.log] == ["bytes=20000-", None]


def test_checksum_mismatch_names_file_and_hashes(server, tmp_path):
    root, base, _ = server
    data = b"not what you pinned"
    (root / "e.bin").write_bytes(data)
    wrong = "0" * 64
    with pytest.raises(DataError) as err:
        fetch_http(f"{base}/e.bin", tmp_path / "e.bin", wrong, progress=False)
    msg = str(err.value)
    assert "e.bin" in msg and wrong in msg and sha(data) in msg
    assert not (tmp_path / "e.bin").exists() and not (tmp_path / "e.bin.part").exists()


def test_http_404_is_a_clear_storage_error(server, tmp_path):
    _, base, _ = server
    with pytest.raises(StorageError, match="404"):
        fetch_http(f"{base}/missing.bin", tmp_path / "m.bin", None, progress=False, retries=0)


def _sources(url=None, archive=None, files=None, role="train", name="set"):
    spec = {"role": role, "license": "test", "files": files}
    if url:
        spec["url"] = url
    if archive:
        spec["archive"] = archive
    return parse_sources({name: spec})


def test_mirror_first_then_url_fallback(server, tmp_path):
    root, base, handler = server
    files = {f"img{i}.png": os.urandom(1000 + i) for i in range(3)}
    mirror = tmp_path / "mirror"
    (mirror / "set").mkdir(parents=True)
    for name in ("img0.png", "img1.png"):  # the mirror lacks img2
        (mirror / "set" / name).write_bytes(files[name])
    (root / "set").mkdir()
    for name, data in files.items():
        (root / "set" / name).write_bytes(data)
    sources = _sources(url=f"{base}/set/", files={k: sha(v) for k, v in files.items()})
    out = tmp_path / "raw"
    rows = download_sources(sources, out, take={"set": "all"}, mirror=str(mirror), cache_dir=tmp_path / "cache", progress=False)
    assert [r["file"] for r in rows] == sorted(files)
    assert [r["origin"].startswith(str(mirror)) for r in rows] == [True, True, False]
    assert [p for p, _ in handler.log] == ["/set/img2.png"]
    for name, data in files.items():
        assert (out / "set" / name).read_bytes() == data
    manifest = read_manifest(out / "manifest.csv")
    assert [(r["file"], r["sha256"], r["role"]) for r in manifest] == [(k, sha(v), "train") for k, v in sorted(files.items())]


def test_corrupt_mirror_file_is_an_error(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "set").mkdir(parents=True)
    (mirror / "set" / "x.png").write_bytes(b"bit rot")
    sources = _sources(files={"x.png": sha(b"original")})
    with pytest.raises(DataError, match=sha(b"original")):
        download_sources(sources, tmp_path / "raw", take={"set": "all"}, mirror=str(mirror), cache_dir=tmp_path / "c", progress=False)


def test_missing_everywhere_is_an_error(tmp_path):
    sources = _sources(files={"x.png": None})
    with pytest.raises(DataError, match="not found in the mirror"):
        download_sources(sources, tmp_path / "raw", take={"set": "all"}, mirror=str(tmp_path), cache_dir=tmp_path / "c", progress=False)


def test_archive_source_pinned_and_unpinned(server, tmp_path):
    root, base, _ = server
    members = {"a.png": b"A" * 500, "b.png": b"B" * 700, "c.png": b"C" * 90}
    with zipfile.ZipFile(root / "set.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(f"Set_HR/{name}", data)
        zf.writestr("Set_HR/readme.txt", b"not an image")
    archive = {"url": f"{base}/set.zip", "sha256": sha((root / "set.zip").read_bytes())}
    # pinned: only the listed members, verified
    pinned = _sources(archive=archive, files={"a.png": sha(members["a.png"]), "c.png": sha(members["c.png"])})
    rows = download_sources(pinned, tmp_path / "raw", take={"set": "all"}, cache_dir=tmp_path / "cache", progress=False)
    assert [r["file"] for r in rows] == ["a.png", "c.png"]
    assert (tmp_path / "raw" / "set" / "c.png").read_bytes() == members["c.png"]
    # unpinned (like DIV2K here): every image member, hashes recorded
    unpinned = _sources(archive={"url": archive["url"], "sha256": None}, files=None)
    rows = download_sources(unpinned, tmp_path / "raw2", take={"set": 2}, cache_dir=tmp_path / "cache", progress=False)
    assert [(r["file"], r["sha256"]) for r in rows] == [("a.png", sha(members["a.png"])), ("b.png", sha(members["b.png"]))]


def test_params_validation_and_take():
    with pytest.raises(DataError, match="role"):
        parse_sources({"x": {"role": "holdout", "files": {}}})
    with pytest.raises(DataError, match="unknown key"):
        parse_sources({"x": {"role": "test", "files": {}, "sha": "x"}})
    with pytest.raises(DataError, match="plain file name"):
        parse_sources({"x": {"role": "test", "files": {"../etc/passwd": None}}})
    src = parse_sources({"x": {"role": "test", "files": {"b": None, "a": None, "c": None}}})["x"]
    assert select_files(src, 2) == ["a", "b"] and select_files(src, "all") == ["a", "b", "c"]
    with pytest.raises(DataError, match="asks for 4"):
        select_files(src, 4)


def test_sha256sums_parsing_matches_shared_manifest_format():
    text = f"{'a' * 64}  kodim01.png\n{'B' * 64} *kodim02.png\n\n"
    assert parse_sha256sums(text) == {"kodim01.png": "a" * 64, "kodim02.png": "b" * 64}
    with pytest.raises(DataError, match="line 1"):
        parse_sha256sums("deadbeef  x.png")


def test_profile_overrides_are_shallow_and_checked():
    params = {"profile": "ci", "download": {"take": {"kodak": "all"}, "mirror": "m"}}
    profiles = {"ci": {"download": {"take": {"kodak": 6}}}}
    assert resolve_section(params, "download", profiles) == {"take": {"kodak": 6}, "mirror": "m", "profile": "ci"}
    with pytest.raises(DataError, match="unknown"):
        resolve_section({**params, "profile": "huge"}, "download", profiles)


def test_repo_params_pin_every_mirror_file():
    """data/sources.yaml lists exactly the files (and hashes) of the shared mirror's SHA256SUMS."""
    import yaml

    repo = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    sources = parse_sources(yaml.safe_load((repo / "data/sources.yaml").read_text()))
    mirror = (repo / params["download"]["mirror"]).resolve()
    if not mirror.is_dir():
        pytest.skip(f"no mirror at {mirror}")
    for name in ("kodak", "cid22_photos", "clic2025_valid"):
        sums = parse_sha256sums((mirror / name / "SHA256SUMS").read_text())
        assert dict(sources[name].files) == sums, name


def test_s3_mirror_through_a_local_moto_server(tmp_path, monkeypatch):
    """An s3:// mirror (real S3 API on loopback via AWS_ENDPOINT_URL); missing keys fall back."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="mirror")
        files = {"a.png": os.urandom(3000), "b.png": os.urandom(4000)}
        s3.put_object(Bucket="mirror", Key="datasets/set/a.png", Body=files["a.png"])
        local = tmp_path / "fallback"
        local.mkdir()
        (local / "b.png").write_bytes(files["b.png"])  # not in the bucket: taken from the source url
        sources = _sources(url=str(local), files={k: sha(v) for k, v in files.items()})
        rows = download_sources(sources, tmp_path / "raw", take={"set": "all"}, mirror="s3://mirror/datasets",
                                cache_dir=tmp_path / "cache", progress=False)
        assert [r["origin"] for r in rows] == ["s3://mirror/datasets/set/a.png", str(local / "b.png")]
        assert (tmp_path / "raw" / "set" / "a.png").read_bytes() == files["a.png"]
    finally:
        server.stop()


def test_s3_downloads_use_the_storage_client_policy_and_ride_out_transient_faults(tmp_path, monkeypatch, s3_client, s3_bucket):
    """The data stage's S3 client is gancodec.storage's: standard retries (8 attempts), the same
    timeouts and fault drills as bulk, so a flaky mirror does not fail a pipeline run."""
    from gancodec.data import download

    body = os.urandom(5000)
    s3_client.put_object(Bucket=s3_bucket, Key="datasets/a.png", Body=body)
    client = download._s3_client()
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 9}  # storage.DEFAULT_MAX_ATTEMPTS, as botocore records it
    monkeypatch.setenv("GANCODEC_FAULT_S3", "0.4")  # 40 % of requests fail transiently
    monkeypatch.setenv("GANCODEC_FAULT_SEED", "download-drill")
    digest = download.fetch_s3(f"s3://{s3_bucket}/datasets/a.png", tmp_path / "a.png", sha(body))
    assert digest == sha(body) and (tmp_path / "a.png").read_bytes() == body

"""`gancodec bulk` when the source or destination cannot be used: one line, no traceback, exit 2.

Real components: the CLI entry point, moto's S3 server (its auth switched on through the
server's own /moto-api/reset-auth endpoint for the bad-credentials case), a closed TCP port
for an unreachable endpoint. A failure inside a real flow run: tests/test_flows.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from gancodec import cli

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once the socket is closed


def _one_error_line(capfd) -> str:
    out, err = capfd.readouterr()
    assert out == "", out
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("gancodec: error: "), lines[0]
    return lines[0]


def _bulk_with_moto_auth(moto_server: str, *args: str) -> int:
    """``gancodec bulk ARGS`` with moto checking signatures, keys and IAM policies (switched on
    through the server's /moto-api/reset-auth for this call only); its exit status."""

    def set_auth(count: str) -> None:  # moto checks from the next request on
        urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset-auth", data=count.encode(), method="POST",
                                                      headers={"Content-Type": "application/octet-stream"}), timeout=10)

    set_auth("0")
    try:
        return cli.main(["bulk", *args])
    finally:
        set_auth("inf")


@pytest.fixture
def src_folder(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not read: the run never starts")
    return folder


def test_unreachable_endpoint_is_one_line(tmp_path, src_folder, moto_server):
    """A closed port as AWS_ENDPOINT_URL, in a child process: stderr is exactly one line."""
    port = _closed_port()
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", PREFECT_HOME=str(tmp_path / "prefect-home"))
    dst = tmp_path / "never-made"
    proc = subprocess.run([sys.executable, "-m", "gancodec.cli", "bulk", "s3://some-bucket/in", str(dst)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    line = lines[0]
    assert line.startswith("gancodec: error: source s3://some-bucket/in/"), line
    assert f"127.0.0.1:{port}" in line and "check the network and AWS_ENDPOINT_URL" in line, line
    assert not dst.exists()  # nothing was started, nothing made
    assert not (tmp_path / "prefect-home").exists()  # Prefect never started


def test_missing_buckets_are_one_line(tmp_path, src_folder, s3_url, capfd):
    missing = f"s3://gancodec-missing-{uuid.uuid4().hex[:8]}/in"
    assert cli.main(["bulk", missing, str(tmp_path / "out")]) == 2
    line = _one_error_line(capfd)
    assert f"source {missing}/" in line and "does not exist; create it or fix the URL" in line, line
    assert not (tmp_path / "out").exists()

    assert cli.main(["bulk", s3_url + "in", missing + "-out"]) == 2
    line = _one_error_line(capfd)
    assert f"destination {missing}-out/" in line and "does not exist; create it or fix the URL" in line, line


def test_rejected_credentials_are_one_line(tmp_path, src_folder, s3_bucket, moto_server, capfd, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAGANCODECBADKEY00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")

    code = _bulk_with_moto_auth(moto_server, str(src_folder), f"s3://{s3_bucket}/out")
    assert code == 2
    line = _one_error_line(capfd)
    assert f"destination s3://{s3_bucket}/out/" in line and "credentials rejected" in line and "fix the AWS credentials" in line, line


def test_read_only_bucket_is_refused_before_any_work(tmp_path, src_folder, s3_bucket, moto_server, capfd, monkeypatch):
    """Credentials that may list and read the destination bucket but not write to it: one line
    naming the destination and the fix, before Prefect starts or any image is coded."""
    import json

    import boto3

    iam = boto3.client("iam", endpoint_url=moto_server, region_name="us-east-1")
    user = f"reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="read-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"}],
    }))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)  # the fixture's token is not this user's
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))

    code = _bulk_with_moto_auth(moto_server, str(src_folder), f"s3://{s3_bucket}/out")
    assert code == 2
    line = _one_error_line(capfd)
    assert f"destination s3://{s3_bucket}/out/_gancodec/write-check: write access denied" in line, line
    assert "bucket policy" in line, line
    assert not (tmp_path / "prefect-home").exists()  # refused before Prefect started


def test_writable_bucket_probe_leaves_one_marker(s3_url, s3_client, s3_bucket):
    from gancodec.storage import WRITE_CHECK_KEY, open_store

    open_store(s3_url + "out").probe(write=True)
    open_store(s3_url + "out").probe(write=True)  # overwritten, not piled up
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert keys == [f"out/{WRITE_CHECK_KEY}"]


def test_unusable_local_paths_are_one_line(tmp_path, src_folder, capfd):
    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    assert cli.main(["bulk", str(src_folder), str(a_file / "sub")]) == 2
    line = _one_error_line(capfd)
    assert f"destination {a_file / 'sub'}: cannot create the destination folder" in line and "choose a writable path" in line, line

    assert cli.main(["bulk", str(src_folder), str(a_file)]) == 2
    line = _one_error_line(capfd)
    assert f"destination {a_file}: exists and is not a folder" in line, line

    assert cli.main(["bulk", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    line = _one_error_line(capfd)
    assert f"source {tmp_path / 'nope'}: no such folder" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_read_only_destination_is_one_line(tmp_path, src_folder, capfd):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert cli.main(["bulk", str(src_folder), str(ro)]) == 2
    finally:
        ro.chmod(0o755)
    line = _one_error_line(capfd)
    assert f"destination {ro}: cannot write to the destination folder" in line, line



def test_cuda_on_a_cpu_only_machine_is_one_line_before_any_work(tmp_path, src_folder, capfd):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["bulk", str(src_folder), str(tmp_path / "out"), "--device", "cuda"]) == 2
    line = _one_error_line(capfd)
    assert "device 'cuda': this machine has no CUDA device" in line and "auto or cpu" in line, line
    assert not (tmp_path / "out").exists()  # refused before the destination was touched


def test_bulk_help_shows_the_defaults(capfd):
    with pytest.raises(SystemExit):
        cli.main(["bulk", "--help"])
    out = " ".join(capfd.readouterr().out.split())
    assert "images per Prefect task (default: 64)" in out and "auto (CUDA when present, else the CPU)" in out, out
    with pytest.raises(SystemExit):
        cli.main(["bulk-decompress", "--help"])
    assert "--realism" in capfd.readouterr().out

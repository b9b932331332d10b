"""The Prefect flows end to end: real flow, real S3 API (moto server), real codec (tiny model)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gancodec import bulk, faults

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[1]
BAD = {
    "bad/empty.png": b"",
    "bad/text.png": b"this is not a png",
    "bad/random.jpg": bytes(np.random.default_rng(0).integers(0, 256, 700, dtype=np.uint8)),
    "bad/truncated.jpg": None,  # filled in below
    "bad/truncated.png": None,
    "../escape.png": None,
}


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture(scope="module")
def source(s3_client, small_images):
    """A bucket prefix with 44 good images (PNG/JPEG, RGB/gray) and 6 bad objects, plus a non-image."""
    bucket = f"src-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=bucket)
    good = {}
    for i in range(44):
        img = small_images[i % len(small_images)]
        img = img if i < len(small_images) else np.ascontiguousarray(img[::-1, ::-1])
        fmt = "PNG" if i % 3 else "JPEG"
        key = f"photos/{i % 4}/img{i:02d}.{'png' if fmt == 'PNG' else 'jpg'}"
        good[key] = _encode(img, fmt)
    bad = dict(BAD)
    bad["bad/truncated.jpg"] = good["photos/0/img00.jpg"][:300]
    bad["bad/truncated.png"] = good["photos/1/img01.png"][:-60]
    bad["../escape.png"] = good["photos/1/img01.png"]
    for key, body in {**good, **bad, "photos/notes.txt": b"ignored"}.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    return {"url": f"s3://{bucket}/", "good": good, "bad": set(bad)}


@pytest.fixture
def env(monkeypatch, tiny_weights, prefect_harness):
    import torch

    monkeypatch.setenv("GANCODEC_WEIGHTS", tiny_weights)
    for name in ("OOM", "S3", "SEED", "KILL_AFTER_PUTS"):
        monkeypatch.delenv(f"GANCODEC_FAULT_{name}", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield prefect_harness
    torch.set_num_threads(threads)


def _dest(s3_client, versioned: bool = True) -> tuple[str, str]:
    bucket = f"dst-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=bucket)
    if versioned:  # every PUT makes a version: "written twice" becomes visible
        s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket, f"s3://{bucket}/out"


def _load_flow(name: str):
    """The module that defines the flows (both live in gancodec.bulk.flows; flows/*.py import it)."""
    from gancodec.bulk import flows

    return flows


def _versions(s3_client, bucket: str, prefix: str = "out/") -> dict[str, int]:
    counts: dict[str, int] = {}
    for page in s3_client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", ()):
            counts[v["Key"]] = counts.get(v["Key"], 0) + 1
    return counts


def _merged(s3_client, bucket: str) -> pd.DataFrame:
    body = s3_client.get_object(Bucket=bucket, Key="out/_gancodec/manifest.parquet")["Body"].read()
    return pd.read_parquet(io.BytesIO(body)).set_index("key")


def _check_complete(s3_client, bucket: str, source) -> pd.DataFrame:
    """Every good image has exactly one .gcx (one version) that decodes; every bad one a reason."""
    from gancodec import decompress

    versions = _versions(s3_client, bucket)
    gcx = {k[len("out/") :] for k in versions if k.endswith(".gcx")}
    assert gcx == {k + ".gcx" for k in source["good"]}
    assert all(versions["out/" + k] == 1 for k in gcx), {k: n for k, n in versions.items() if n > 1}
    for key in sorted(source["good"])[::5]:
        data = s3_client.get_object(Bucket=bucket, Key=f"out/{key}.gcx")["Body"].read()
        ref = np.asarray(Image.open(io.BytesIO(source["good"][key])))
        assert np.asarray(decompress(data)).shape == ref.shape
    merged = _merged(s3_client, bucket)
    assert set(merged.index) == set(source["good"]) | source["bad"]
    assert (merged.loc[list(source["good"]), "status"] == "ok").all()
    bad = merged.loc[sorted(source["bad"])]
    assert (bad["status"] == "failed").all() and (bad["error"].str.len() > 10).all()
    assert bad.loc["../escape.png", "error_kind"] == "key"
    assert set(bad.drop("../escape.png")["error_kind"]) == {"data"}
    return merged


def test_flow_compresses_a_bucket_and_reruns_as_a_no_op(env, s3_client, source):
    from prefect.artifacts import Artifact

    flow_mod = _load_flow("bulk_compress")
    bucket, dst = _dest(s3_client)
    state = flow_mod.bulk_compress(src=source["url"], dst=dst, batch_size=8, psnr_floor=0.0, return_state=True)
    assert state.is_failed()  # some inputs are corrupt
    _check_complete(s3_client, bucket, source)
    artifact = Artifact.get(bulk.ARTIFACT_KEY)
    assert artifact is not None and "| 44 | 6 |" in artifact.data

    lines: list[str] = []
    code = bulk.run_cli(source["url"], dst, batch_size=16, psnr_floor=0.0, echo=lines.append)
    assert code == 0, lines  # everything done or known-bad: nothing failed this time
    assert "| 0 | 0 | 50 | 1 |" in lines[-1]
    assert max(_versions(s3_client, bucket).get(f"out/{k}.gcx", 0) for k in source["good"]) == 1

    png_bucket, png_dst = _dest(s3_client, versioned=False)
    dec = _load_flow("bulk_decompress").bulk_decompress(src=dst, dst=png_dst, batch_size=16, return_state=True)
    assert dec.is_completed()
    key = sorted(source["good"])[3]
    png = s3_client.get_object(Bucket=png_bucket, Key=f"out/{bulk.png_key_for(key + '.gcx')}")["Body"].read()
    assert Image.open(io.BytesIO(png)).size == Image.open(io.BytesIO(source["good"][key])).size


def test_flow_completes_everything_under_injected_faults(env, s3_client, source, monkeypatch):
    hits: dict[str, int] = {}
    real_draw = faults._draw

    def counting_draw(kind: str, rate: float) -> bool:
        hit = real_draw(kind, rate)
        hits[kind] = hits.get(kind, 0) + hit
        return hit

    monkeypatch.setattr(faults, "_draw", counting_draw)
    monkeypatch.setenv("GANCODEC_FAULT_OOM", "0.3")
    monkeypatch.setenv("GANCODEC_FAULT_S3", "0.1")
    monkeypatch.setenv("GANCODEC_FAULT_SEED", "2024")
    bucket, dst = _dest(s3_client)
    state = _load_flow("bulk_compress").bulk_compress(src=source["url"], dst=dst, batch_size=8, psnr_floor=0.0, return_state=True)
    assert state.is_failed()  # only because of the corrupt inputs
    monkeypatch.setenv("GANCODEC_FAULT_S3", "0")
    _check_complete(s3_client, bucket, source)
    assert hits.get("oom", 0) > 5 and hits.get("s3", 0) > 5, hits


def test_killed_run_then_rerun_writes_nothing_twice_and_loses_nothing(env, s3_client, source):
    bucket, dst = _dest(s3_client)
    child_env = dict(os.environ, PREFECT_API_URL=env, GANCODEC_FAULT_KILL_AFTER_PUTS="10", PREFECT_LOGGING_LEVEL="WARNING",
                     OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "flows" / "bulk_compress.py"), source["url"], dst, "--batch-size", "4", "--psnr-floor", "0"],
        env=child_env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-2000:]
    written = {k for k in _versions(s3_client, bucket) if k.endswith(".gcx")}
    assert len(written) == 10  # killed right after its 10th output, before that batch's manifest part

    state = _load_flow("bulk_compress").bulk_compress(src=source["url"], dst=dst, batch_size=8, psnr_floor=0.0, run_id="rerun", return_state=True)
    assert state.is_final()  # Completed here: the corrupt inputs were recorded (and are skipped) by the killed run
    merged = _check_complete(s3_client, bucket, source)  # one version per output: nothing written twice
    ok = merged[merged["status"] == "ok"]
    from_killed_run = ok[ok["run_id"] != "rerun"]
    adopted = ok[ok["note"].str.startswith("adopted")]
    assert 1 <= len(adopted) <= 4  # outputs of the batch that was killed before its manifest part
    assert len(from_killed_run) + len(adopted) == 10


def test_cli_failure_inside_the_flow_is_one_line(tmp_path, env, capfd, monkeypatch):
    """Storage checks pass, then the real flow fails (unusable weights): one line, no Prefect traceback."""
    from gancodec import cli

    src_folder = tmp_path / "src"
    src_folder.mkdir()
    (src_folder / "a.png").write_bytes(b"never read: planning fails first")
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a torch file")
    monkeypatch.setenv("GANCODEC_WEIGHTS", str(bad))
    code = cli.main(["bulk", str(src_folder), str(tmp_path / "out")])
    out, err = capfd.readouterr()
    assert code == 2, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error" in line.lower() or "failed" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("gancodec: error: ") and str(bad) in errors[0], err


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_batch_that_fails_for_good_is_recorded_and_the_rest_goes_on(env, s3_client, source, monkeypatch, concurrency):
    """Batch 1 raises a non-transient error (no retry): its images become failed rows naming
    the error, every other batch is written, and the run ends Failed. concurrency=1 runs the
    batches in the flow's thread, 2 through the task runner: both paths must do this."""
    from gancodec.bulk import jobs

    real = jobs.compress_batch

    def broken_second_batch(*args, batch_index: int = 0, **kw):
        if batch_index == 1:
            raise RuntimeError("worker lost its scratch disk")
        return real(*args, batch_index=batch_index, **kw)

    monkeypatch.setattr(jobs, "compress_batch", broken_second_batch)
    bucket, dst = _dest(s3_client)
    state = _load_flow("bulk_compress").bulk_compress(src=source["url"], dst=dst, batch_size=8, psnr_floor=0.0,
                                                      concurrency=concurrency, return_state=True)
    assert state.is_failed()
    merged = _merged(s3_client, bucket)
    lost = merged[merged["error"].fillna("").str.contains("scratch disk")]
    assert len(lost) == 8 and (lost["status"] == "failed").all()
    written = {k[len("out/"):-len(".gcx")] for k in _versions(s3_client, bucket) if k.endswith(".gcx")}
    assert written == set(source["good"]) - set(lost.index)


def test_bulk_decompress_reads_an_archive_made_by_two_releases(env, s3_client, tiny_weights, tmp_path, monkeypatch, small_images):
    """After an upgrade the bucket holds streams of the old weights and the new; with the old ones on
    $GANCODEC_WEIGHTS_PATH one run decodes both, each with the weights that made it."""
    import torch

    from gancodec import compress
    from gancodec.models import HyperpriorCodec, ModelConfig
    from gancodec.weights import export_weights

    torch.manual_seed(1)
    old = tmp_path / "retired" / "old.pt"
    export_weights(HyperpriorCodec(ModelConfig(N=16, M=24)), old)
    old.with_suffix(".json").unlink(missing_ok=True)
    src_bucket, src = _dest(s3_client, versioned=False)
    made_by = {}
    for i, img in enumerate(small_images[:6]):
        weights = str(old) if i % 2 else tiny_weights
        key = f"out/img{i}.gcx"
        s3_client.put_object(Bucket=src_bucket, Key=key, Body=compress(img, quality=3, weights=weights))
        made_by[key] = weights
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    png_bucket, png_dst = _dest(s3_client, versioned=False)
    flow = _load_flow("bulk_decompress").bulk_decompress
    assert flow(src=src, dst=png_dst, batch_size=4, return_state=True).is_failed()  # old weights nowhere: those fail
    runs = s3_client.list_objects_v2(Bucket=png_bucket, Prefix="out/_gancodec/decompress-")["Contents"]
    rows = pd.read_parquet(io.BytesIO(s3_client.get_object(Bucket=png_bucket, Key=next(
        o["Key"] for o in runs if o["Key"].endswith(".parquet")))["Body"].read()))
    failed = rows[rows.status == "failed"]
    assert set(failed.key) == {k[len("out/"):] for k, w in made_by.items() if w == str(old)}
    assert failed.error.str.contains("not a gancodec release").all()  # the row says what to do

    monkeypatch.setenv("GANCODEC_WEIGHTS_PATH", str(old.parent))
    png_bucket, png_dst = _dest(s3_client, versioned=False)
    assert flow(src=src, dst=png_dst, batch_size=4, return_state=True).is_completed()
    from gancodec import decompress

    for key, weights in made_by.items():
        png = s3_client.get_object(Bucket=png_bucket, Key=f"out/{bulk.png_key_for(key[len('out/'):])}")["Body"].read()
        data = s3_client.get_object(Bucket=src_bucket, Key=key)["Body"].read()
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(decompress(data, weights=weights)))


def _marked_servers(mark: str) -> set[int]:
    """Pids of Prefect API servers (uvicorn) started with GANCODEC_TEST_MARK=<mark> in their environment."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"GANCODEC_TEST_MARK={mark}".encode() in environ and b"uvicorn" in cmdline:
            found.add(int(proc.name))
    return found


def test_a_killed_gancodec_bulk_leaves_no_prefect_server(env, s3_client, source):
    """`gancodec bulk --prefect` without PREFECT_API_URL starts a temporary Prefect server; SIGKILLed (a
    pre-empted worker, the OOM killer) it must not leave that server running."""
    import time

    mark = uuid.uuid4().hex
    child_env = dict(os.environ, GANCODEC_FAULT_KILL_AFTER_PUTS="3", GANCODEC_TEST_MARK=mark, PREFECT_LOGGING_LEVEL="WARNING",
                     OMP_NUM_THREADS="1")
    child_env.pop("PREFECT_API_URL", None)  # ephemeral mode: the command starts its own server
    bucket, dst = _dest(s3_client)
    proc = subprocess.Popen([sys.executable, "-m", "gancodec.cli", "bulk", source["url"], dst, "--batch-size", "4", "--psnr-floor", "0",
                             "--prefect"],
                            env=child_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: set[int] = set()
    while proc.poll() is None:
        seen |= _marked_servers(mark)
        time.sleep(0.2)
    out = proc.stdout.read()
    assert proc.returncode == -9, out[-3000:]
    assert seen, "the run never started a Prefect server: nothing was tested"
    deadline = time.monotonic() + 15
    while _marked_servers(mark) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not _marked_servers(mark), f"Prefect server(s) {sorted(_marked_servers(mark))} outlived the killed run"

"""Throughput of the bulk job with one worker and with two (shards), over a real S3 API.

    python benchmarks/bulk_workers.py [--images 48] [--size 256] [--threads 1] [--weights PATH]

Starts moto's S3 server on 127.0.0.1 (a subprocess), puts ``--images`` crops of the
scikit-image sample pictures into a bucket, then compresses the bucket

* with one worker: ``gancodec bulk s3://src/ s3://dst-1/ --shard 0/1``;
* with two workers at once: ``--shard 0/2`` and ``--shard 1/2`` into one destination,

each worker a separate process with ``--threads`` torch threads (``OMP_NUM_THREADS``) and
``--no-prefect`` (the orchestration cost is measured by benchmarks/bulk_overhead.py; this
measures how the work divides). Prints images/s per worker and in total, and checks that the
two shards together wrote every output exactly once (a versioned bucket counts the PUTs).
A worker per GPU on a GPU host is the same command with ``CUDA_VISIBLE_DEVICES`` per worker.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def crops(n: int, size: int) -> list[bytes]:
    from PIL import Image
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        y = (37 * i) % (src.shape[0] - size)
        x = (53 * i) % (src.shape[1] - size)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(src[y : y + size, x : x + size])).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def run_workers(src: str, dst: str, shards: int, env: dict[str, str], extra: list[str]) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "gancodec.cli", "bulk", src, dst, "--shard", f"{i}/{shards}", "--no-prefect",
                               "--psnr-floor", "0", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(shards)]
    ends = []
    for p in procs:
        out, _ = p.communicate()
        ends.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"worker failed ({p.returncode}):\n{out[-3000:]}")
    return time.perf_counter() - t0, ends


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weights", default=None, help="default: the shipped weights")
    a = ap.parse_args()

    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               OMP_NUM_THREADS=str(a.threads), GANCODEC_SCRATCH=tempfile.gettempdir())
    env.pop("AWS_PROFILE", None)
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
        for _ in range(100):
            try:
                s3.list_buckets()
                break
            except Exception:  # noqa: BLE001 - the server is starting
                time.sleep(0.2)
        for b in ("src", "dst-1", "dst-2"):
            s3.create_bucket(Bucket=b)
        s3.put_bucket_versioning(Bucket="dst-2", VersioningConfiguration={"Status": "Enabled"})
        for i, body in enumerate(crops(a.images, a.size)):
            s3.put_object(Bucket="src", Key=f"img/{i:04d}.png", Body=body)
        extra = ["--weights", a.weights] if a.weights else []
        one, _ = run_workers("s3://src/", "s3://dst-1/", 1, env, extra)
        two, ends = run_workers("s3://src/", "s3://dst-2/", 2, env, extra)
        versions: dict[str, int] = {}
        for page in s3.get_paginator("list_object_versions").paginate(Bucket="dst-2"):
            for v in page.get("Versions", ()):
                versions[v["Key"]] = versions.get(v["Key"], 0) + 1
        outputs = {k: n for k, n in versions.items() if k.endswith(".gcx")}
        assert len(outputs) == a.images and set(outputs.values()) == {1}, outputs
        n = a.images
        result = {
            "images": n, "size": a.size, "threads_per_worker": a.threads, "cpus": os.cpu_count(),
            "one_worker_s": round(one, 1), "one_worker_images_per_s": round(n / one, 3),
            "two_workers_s": round(two, 1), "two_workers_images_per_s_total": round(n / two, 3),
            "two_workers_images_per_s_per_worker": round(n / 2 / two, 3), "speed_up": round(one / two, 2),
            "every_output_written_once": True,
        }
        print(json.dumps(result, indent=1))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

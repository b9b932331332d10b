"""prefect.yaml: every deployment names a real flow, with parameters, schedule, concurrency and
work pool that Prefect accepts; and `prefect deploy --all` + `prefect deployment run` (the
commands in docs/bulk.md) really work against a Prefect API.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "bulk.md").read_text()
#: The parameters of the trigger command in docs/bulk.md, as a run would get them.
DOC_TRIGGER = re.search(r"prefect deployment run '([^']+)'(.*)", DOCS)


def _config() -> dict:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def _trigger_params() -> tuple[str, dict[str, object]]:
    assert DOC_TRIGGER, "docs/bulk.md shows no `prefect deployment run '<flow>/<deployment>' -p ...` command"
    params = {}
    for name, value in re.findall(r"-p (\w+)=(\S+)", DOC_TRIGGER.group(2)):
        params[name] = yaml.safe_load(value)  # Prefect's CLI parses -p values as JSON, falling back to a string
    return DOC_TRIGGER.group(1), params


def test_prefect_yaml_deployments_are_valid():
    from prefect._vendor.croniter import croniter
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint
    from prefect.workers.process import ProcessWorker

    from gancodec import bulk

    config = _config()
    deployments = config["deployments"]
    assert {d["name"] for d in deployments} >= {"nightly", "restore"}
    job_template_vars = ProcessWorker.get_default_base_job_template()["variables"]["properties"]
    flows = {}
    for d in deployments:
        path, _, func = d["entrypoint"].partition(":")
        assert (ROOT / path).is_file(), d["entrypoint"]
        if d["entrypoint"] not in flows:  # imports the file for real: an import error fails here
            flows[d["entrypoint"]] = load_flow_from_entrypoint(str(ROOT / path) + ":" + func, use_placeholder_flow=False)
        flow = flows[d["entrypoint"]]
        # Prefect's own check: names, types and required parameters against the flow's signature
        validated = flow.validate_parameters(dict(d["parameters"]))
        assert set(d["parameters"]) <= set(flow.parameters.properties), (d["name"], set(d["parameters"]) - set(flow.parameters.properties))
        if flow.name == "bulk-compress":  # and ours: the rate setting and the shard must make sense
            bulk.Settings(quality=validated.get("quality"), bpp=validated.get("bpp"), psnr_floor=validated.get("psnr_floor", 15.0))
            bulk.parse_shard(validated.get("shard"))
        for s in d.get("schedules") or []:
            cron = CronSchedule(cron=s["cron"], timezone=s.get("timezone"))
            nxt = croniter(cron.cron, datetime(2026, 1, 1, 12, tzinfo=timezone.utc)).get_next(datetime)
            assert (nxt.hour, nxt.minute) == (2, 0) and s["timezone"] == "UTC", s  # "02:00 UTC" in docs/bulk.md
        limit = ConcurrencyLimitConfig(**d["concurrency_limit"])
        assert limit.limit == 1 and limit.collision_strategy.value == "ENQUEUE"
        pool = d["work_pool"]
        assert set(pool["job_variables"]) <= set(job_template_vars), set(pool["job_variables"]) - set(job_template_vars)
        assert all(isinstance(v, str) for v in pool["job_variables"]["env"].values())
        # the pool the docs tell operators to create and start workers on
        assert f"work-pool create {pool['name']} --type process" in DOCS
        assert f"worker start --pool {pool['name']}" in DOCS
    assert [s["active"] for d in deployments for s in d.get("schedules") or []].count(True) == 1  # shards are off by default

    name, params = _trigger_params()
    flow_name, _, dep_name = name.partition("/")
    dep = next(d for d in deployments if d["name"] == dep_name)
    flow = flows[dep["entrypoint"]]
    assert flow.name == flow_name
    merged = flow.validate_parameters({**dep["parameters"], **params})  # a run gets the deployment's, overridden by -p
    bulk.Settings(quality=merged.get("quality"), bpp=merged.get("bpp"))  # not both quality and bpp


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_prefect_deploy_and_run_against_an_api(prefect_harness, tmp_path):
    """The documented commands, for real, on the test harness's Prefect API."""
    from prefect import get_client

    env = dict(os.environ, PREFECT_API_URL=prefect_harness, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_CLI_PROMPT="false", COLUMNS="200")
    prefect = [sys.executable, "-m", "prefect"]

    def sh(*args: str) -> str:
        proc = subprocess.run([*prefect, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    import anyio
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    config = _config()
    pool_name = config["deployments"][0]["work_pool"]["name"]
    trigger, params = _trigger_params()

    async def create_pool():  # what `prefect work-pool create gpu-pool --type process` does
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=pool_name, type="process",
                                                         base_job_template=ProcessWorker.get_default_base_job_template()), overwrite=True)

    async def read():
        async with get_client() as client:
            deployments = {}
            for d in config["deployments"]:
                flow_name = "bulk-compress" if "bulk_compress" in d["entrypoint"] else "bulk-decompress"
                deployments[d["name"]] = await client.read_deployment_by_name(f"{flow_name}/{d['name']}")
            # what `prefect deployment run '<trigger>' -p ...` does; the server checks the parameter schema
            run = await client.create_flow_run_from_deployment(deployments[trigger.partition("/")[2]].id, parameters=params)
            return deployments, await client.read_flow_run(run.id)

    anyio.run(create_pool)
    sh("--no-prompt", "deploy", "--all")  # the documented command, reading prefect.yaml
    deployments, flow_run = anyio.run(read)
    for d in config["deployments"]:
        stored = deployments[d["name"]]
        assert stored.entrypoint == d["entrypoint"]
        assert stored.parameters == d["parameters"]
        assert stored.work_pool_name == pool_name and stored.work_queue_name == d["work_pool"]["work_queue_name"]
        assert stored.job_variables == d["work_pool"]["job_variables"]
        # Prefect 3 keeps a deployment's concurrency_limit as a global concurrency limit of its own
        assert stored.global_concurrency_limit is not None and stored.global_concurrency_limit.limit == 1, stored.global_concurrency_limit
        assert stored.global_concurrency_limit.active and stored.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert [(s.schedule.cron, s.active) for s in stored.schedules] == [(s["cron"], s["active"]) for s in d.get("schedules") or []]
        assert stored.pull_steps == config["pull"]  # {{ $GANCODEC_HOME }} stays a placeholder: resolved on the worker
    assert flow_run.deployment_id == deployments[trigger.partition("/")[2]].id
    assert flow_run.parameters == {**deployments[trigger.partition("/")[2]].parameters, **params}
    assert flow_run.state.is_scheduled()  # waiting for a worker of the pool

    async def drop():  # its bucket does not exist here: no worker of the next test should take it
        async with get_client() as client:
            await client.delete_flow_run(flow_run.id)

    anyio.run(drop)


def _png(arr) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_workers_run_the_shipped_shards_on_cpu(prefect_harness, s3_client, tiny_weights, small_images, tmp_path):
    """The deployed path as an operator runs it: prefect.yaml deployed, two process workers on
    the pool (CPU only: device auto), the two shard deployments triggered at once over one
    bucket on the moto S3 server. Every image is written once (a versioned bucket counts the
    PUTs), by one shard; the failed images' reasons are in the runs' logs in the API, with a
    failures table and a manifest link; no run ends in an internal traceback."""
    import time
    import uuid

    import anyio
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
    from prefect.workers.process import ProcessWorker

    env = dict(os.environ, PREFECT_API_URL=prefect_harness, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_CLI_PROMPT="false", COLUMNS="200", GANCODEC_HOME=str(ROOT), GANCODEC_WEIGHTS=tiny_weights,
               PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"),
               PREFECT_LOGGING_LEVEL="INFO")
    config = _config()
    pool_name = config["deployments"][0]["work_pool"]["name"]
    src_bucket, dst_bucket = f"shards-in-{uuid.uuid4().hex[:8]}", f"shards-out-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=src_bucket)
    s3_client.create_bucket(Bucket=dst_bucket)
    s3_client.put_bucket_versioning(Bucket=dst_bucket, VersioningConfiguration={"Status": "Enabled"})
    good = {f"p/{i:02d}.png": _png(small_images[i]) for i in range(16)}
    bad = {"p/broken.png": b"\x89PNG broken", "p/empty.jpg": b""}
    for key, body in {**good, **bad}.items():
        s3_client.put_object(Bucket=src_bucket, Key=key, Body=body)
    params = {"src": f"s3://{src_bucket}/p/", "dst": f"s3://{dst_bucket}/out/", "psnr_floor": 0.0, "batch_size": 3}

    async def deploy_and_trigger():
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=pool_name, type="process",
                                                         base_job_template=ProcessWorker.get_default_base_job_template()), overwrite=True)
        proc = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        async with get_client() as client:
            runs = []
            for name in ("nightly-shard-0-of-2", "nightly-shard-1-of-2"):
                dep = await client.read_deployment_by_name(f"bulk-compress/{name}")
                runs.append((await client.create_flow_run_from_deployment(dep.id, parameters=params)).id)
            return runs

    run_ids = anyio.run(deploy_and_trigger)
    workers = [subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool_name, "--limit", "1", "--name", f"w{i}"],
                                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]

    async def wait():
        async with get_client() as client:
            deadline = time.monotonic() + 600
            while True:
                runs = [await client.read_flow_run(r) for r in run_ids]
                if all(r.state.is_final() for r in runs) or time.monotonic() > deadline:
                    break
                await anyio.sleep(1)
            # a flow run's last log lines reach the API in the worker's next batch, which can land
            # after the run's final state: wait (bounded) until every bad key's reason is there
            log_deadline = time.monotonic() + 60
            while True:
                logs = {r.id: await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[r.id])), limit=200)
                        for r in runs}
                text = "\n".join(entry.message for r in runs for entry in logs[r.id])
                if all(f"{key[2:]}: failed (data)" in text for key in bad) or time.monotonic() > log_deadline:
                    break
                await anyio.sleep(1)
            arts = {r.id: await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[r.id])))
                    for r in runs}
            return runs, logs, arts

    try:
        runs, logs, arts = anyio.run(wait)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:  # a worker slow to stop on a loaded machine is killed, not a failed test
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(timeout=60)
    for r in runs:  # Failed because of the two corrupt images, not Crashed
        assert r.state.is_failed() or r.state.is_completed(), (r.name, r.state)
        text = "\n".join(entry.message for entry in logs[r.id])
        assert "Traceback" not in text and "Unexpected result" not in text, text[-3000:]
        assert "codec on cpu (device auto)" in text, text[-3000:]
    failed_runs = [r for r in runs if r.state.is_failed()]
    assert failed_runs and all("images failed" in (r.state.message or "") for r in failed_runs), [r.state for r in runs]
    log_text = "\n".join(entry.message for r in runs for entry in logs[r.id])
    for key in bad:  # each reason is in the run log in the API, not only on the worker's stdout
        assert f"{key[2:]}: failed (data)" in log_text, log_text[-3000:]
    tables = [a for r in runs for a in arts[r.id] if a.type == "table"]
    rows = [row for a in tables for row in (a.data if isinstance(a.data, list) else __import__("json").loads(a.data))]
    assert {row["key"] for row in rows} == {k[2:] for k in bad} and all(row["reason"] for row in rows), rows
    assert any(a.type == "markdown" and "gancodec bulk compress" in str(a.data) for r in runs for a in arts[r.id])
    links = [a for r in runs for a in arts[r.id] if a.key == "gancodec-bulk-compress-manifest"]  # a link artifact (stored as markdown)
    assert len(links) == 2 and all(f"s3://{dst_bucket}/out/_gancodec/manifest-" in str(a.data) for a in links), links
    assert any(a.type == "progress" for r in runs for a in arts[r.id])

    counts: dict[str, int] = {}  # every output written once, by one of the two shards
    for page in s3_client.get_paginator("list_object_versions").paginate(Bucket=dst_bucket, Prefix="out/"):
        for v in page.get("Versions", ()):
            counts[v["Key"]] = counts.get(v["Key"], 0) + 1
    outputs = {k: n for k, n in counts.items() if k.endswith(".gcx")}
    assert set(outputs) == {f"out/{k[2:]}.gcx" for k in good} and set(outputs.values()) == {1}, outputs

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

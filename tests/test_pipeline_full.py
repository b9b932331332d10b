"""`dvc repro` of the whole pipeline on the ci profile in a temp copy of the repo (real DVC, real stages),
then `dvc exp run` on it (the copy is a git repo)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_pipeline_data import REPO, _dvc, ci_repo, git


def _experiments(show: list) -> list[dict]:
    """The `data` of each experiment in `dvc exp show --json`."""
    return [rev["data"] for commit in show for exp in commit.get("experiments") or [] for rev in exp["revs"]]


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the pipeline, then evaluate twice and train twice more: minutes on 2 cores
def test_dvc_repro_ci_profile_end_to_end(tmp_path, s3_bucket, s3_client, monkeypatch):
    repo, params = ci_repo(tmp_path, scm=True)

    out = _dvc(repo, "repro", timeout=900)  # ten stages, the first run: minutes on 2 busy cores
    for stage in ("download", "validate", "synthesize", "split", "train", "train_entropy", "train_post_filter",
                  "train_realism", "evaluate", "evaluate_classes", "report"):
        assert f"Running stage '{stage}'" in out, out
    assert out.index("Running stage 'train'") < out.index("Running stage 'train_entropy'") \
        < out.index("Running stage 'train_post_filter'") < out.index("Running stage 'train_realism'") \
        < out.index("Running stage 'evaluate'")
    assert (repo / "models/transforms.pt").is_file() and (repo / "models/run/last.pt").is_file()
    card = json.loads((repo / "models/transforms.json").read_text())
    assert card["steps"] == 12 and card["profile"] == "ci"
    assert (repo / "models/transforms.sha256").read_text() == f"{card['sha256']}  transforms.pt\n"
    # the entropy model: a fresh channel context, 6 steps over train's model, by rate alone
    entropy = json.loads((repo / "models/entropy.json").read_text())
    assert (entropy["steps"], entropy["base_sha256"]) == (6, card["sha256"]) and entropy["trained_steps"]["entropy"] == 6
    assert (repo / "models/entropy-run/last.pt").is_file() and (repo / "models/entropy-cache/cache.json").is_file()
    # the post-filter: 4 steps over that model, continuing its own filter; that is models/gancodec.pt
    post = json.loads((repo / "models/gancodec.json").read_text())
    assert (post["steps"], post["started_at"], post["continued"], post["base_sha256"]) == (4, 0, True, entropy["sha256"])
    assert post["trained_steps"]["post_filter"] == 4 and (repo / "models/post-filter-run/last.pt").is_file()
    assert json.loads((repo / "dvclive/train_post_filter/metrics.json").read_text())["final"]["steps"] == 4
    live = json.loads((repo / "dvclive/train/metrics.json").read_text())
    assert "train" in live and live["train"]["bpp"] > 0
    rd = pd.read_csv(repo / "reports/eval/rd.csv")
    assert set(rd.codec) == {"gancodec", "jpeg420", "webp"}
    sizes = {"kodim01": 512 * 512, "kodim02": 400 * 600}
    assert (rd.bpp == rd.bytes * 8 / rd.image.map(sizes)).all()  # every bpp is file bytes x 8 / pixels
    assert sorted(rd[rd.codec == "gancodec"].setting.unique()) == [2.0, 6.0]
    scored = rd.dropna(subset=["ssimulacra2"])
    assert len(scored) and (scored.bpp <= 2.0).all() and rd[rd.bpp > 2.0].ssimulacra2.isna().all()
    realism = json.loads((repo / "models/realism.json").read_text())
    base_id = hashlib.sha256((repo / "models/gancodec.pt").read_bytes()).hexdigest()[:32]
    assert realism["arch"] == "detail" and realism["step"] == 4 and realism["base_model_id"] == base_id
    assert json.loads((repo / "dvclive/train_realism/metrics.json").read_text())["train"]["psnr"] > 0
    rr = pd.read_csv(repo / "reports/eval/realism.csv")
    assert {"fidelity", "realism", "fid+noise", "webp"} <= set(rr.decoder) and (rr.swd > 0).all()
    assert "realism" in json.loads((repo / "reports/eval/summary.json").read_text())
    report = (repo / "reports/report/README.md").read_text()
    card = json.loads((repo / "models/gancodec.json").read_text())
    opening = report.splitlines()[2]  # says it is a smoke run, names the model, claims no BD-rate
    assert report.startswith("# gancodec report") and opening.startswith("**Smoke run**: 2 images × 2 gancodec"), opening
    assert f"model {card['sha256'][:32]} (not a shipped release)" in opening and "BD-rate says nothing" in opening
    assert (repo / "models/gancodec.sha256").read_text() == f"{card['sha256']}  gancodec.pt\n"
    metrics = json.loads((repo / "reports/eval/metrics.json").read_text())  # numbers only
    flat = pd.json_normalize(metrics).iloc[0].tolist()
    assert metrics["images"] == 2 and metrics["points"] == 2 and "webp" in metrics["bd_rate_psnr"], metrics
    assert all(v is None or isinstance(v, (int, float)) for v in flat), metrics
    summary = json.loads((repo / "reports/eval/summary.json").read_text())
    assert summary["weights_sha256"] == card["sha256"] and summary["versions"]["pillow"]
    for plot in ("rd_psnr.png", "rd_ms_ssim.png", "rd_ssimulacra2.png"):
        assert (repo / "reports/report" / plot).is_file() and plot in report
    assert "## How this was made" in report and "| pillow |" in report
    assert "crops.png" in report and (repo / "reports/report/crops.png").is_file()
    classes = json.loads((repo / "reports/classes/classes.json").read_text())["classes"]
    assert [c["class"] for c in classes] == ["photos", "screen", "document", "graphics", "studio"]
    assert all(c["images"] == 1 and set(c["bd_rate"]) == {"webp", "jpeg420"} for c in classes)
    assert "## Per content class" in report and "| studio | 1 |" in report

    again = _dvc(repo, "repro")
    assert "Running stage" not in again, again

    params["evaluate"]["perceptual_max_bpp"] = 1.0  # an evaluate key: only evaluate and what follows rerun
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = _dvc(repo, "repro")
    assert "Running stage 'evaluate'" in changed and "Running stage 'report'" in changed
    assert "Running stage 'train'" not in changed and "Running stage 'validate'" not in changed
    assert "Running stage 'train_post_filter'" not in changed

    # An experiment on a train param: train starts afresh (the persisted models/run/last.pt is the
    # old lambda's run; it used to be resumed at step 12 of 12, training nothing), evaluate follows.
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ci run")
    # The team remote (.dvc/config) on a real S3 API: bucket and endpoint from the environment
    # (aiobotocore, under DVC, refuses the /dev/null config files that conftest points boto3 at)
    (tmp_path / "aws_config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws_config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws_config"))
    env = dict(os.environ, GANCODEC_DVC_REMOTE=f"s3://{s3_bucket}/dvc", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    subprocess.run(["bash", str(REPO / "scripts/dvc_remote.sh")], cwd=repo, env=env, check=True, capture_output=True)
    assert "everything is up to date" not in _dvc(repo, "push").lower()
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys and all(k.startswith("dvc/files/md5/") for k in keys)
    exp = _dvc(repo, "exp", "run", "-S", "train.lambda=0.013", timeout=600)
    exp_name = re.search(r"Ran experiment\(s\): (\S+)", exp).group(1)
    for stage in ("train", "train_entropy", "train_post_filter", "evaluate", "report"):  # a new base: both afresh
        assert f"Running stage '{stage}'" in exp, exp
    assert "Stage 'validate' didn't change" in exp and "Running stage 'validate'" not in exp, exp
    assert "not resuming models/run/last.pt" in exp and "lmbda None -> 0.013" in exp, exp
    card = json.loads((repo / "models/transforms.json").read_text())
    assert card["steps"] == 12 and card["train"]["lmbda"] == 0.013
    entropy = json.loads((repo / "models/entropy.json").read_text())
    assert entropy["base_sha256"] == card["sha256"]
    assert json.loads((repo / "models/gancodec.json").read_text())["base_sha256"] == entropy["sha256"]
    logged = pd.read_csv(repo / "dvclive/train/plots/metrics/train/bpp.tsv", sep="\t")
    assert logged.step.tolist() == [10, 12] and (logged.bpp > 0).all()  # trained, from step 0 (log_every 10)
    diff = json.loads(_dvc(repo, "params", "diff", "--json"))
    assert diff["params.yaml"]["train.lambda"] == {"old": None, "new": 0.013}, diff
    (ran,) = [e for e in _experiments(json.loads(_dvc(repo, "exp", "show", "--json")))
              if e["params"]["params.yaml"]["data"]["train"]["lambda"] == 0.013]
    assert ran["metrics"]["dvclive/train/metrics.json"]["data"]["train"]["bpp"] > 0
    assert "bd_rate_psnr" in ran["metrics"]["reports/eval/metrics.json"]["data"]

    # An experiment on a realism param: the realism decoder trains again (afresh), evaluate follows, train does not.
    rexp = _dvc(repo, "exp", "run", "-S", "realism.w_tex=2.0")
    assert "Running stage 'train_realism'" in rexp and "Running stage 'evaluate'" in rexp, rexp
    assert "Running stage 'train'" not in rexp, rexp
    assert json.loads((repo / "models/realism.json").read_text())["config"]["w_tex"] == 2.0

    # A key that only says how to run (untracked in dvc.yaml, not in params.yaml: its default is in
    # gancodec.params) can be added with DVC's `+` and reruns nothing.
    idle = _dvc(repo, "exp", "run", "-S", "+train.checkpoint_every_s=301")
    assert "Running stage" not in idle, idle

    # A setting that only extends the run: train resumes at 12 of 12 and trains nothing, yet logs
    # its final step (the plots folder dvc.yaml declares); the same weights leave evaluate alone.
    more = _dvc(repo, "exp", "run", "-S", "train.max_seconds=5000")
    assert "Running stage 'train'" in more and "resumed models/run/last.pt at step 12" in more, more
    assert "Running stage 'evaluate'" not in more and "Running stage 'train_post_filter'" not in more, more
    assert pd.read_csv(repo / "dvclive/train/plots/metrics/train/bpp.tsv", sep="\t").step.tolist() == [12]

    # Offline plots: the committed template inlines Vega, so the page loads nothing from the network
    _dvc(repo, "plots", "show", "-o", "plots_html")
    page = (repo / "plots_html/index.html").read_text()
    assert "vegaEmbed(" in page and "dvclive/train/plots/metrics" in page and "reports/eval/curves.csv" in page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", page)

    # Sharing: push the experiment, then a fresh clone pulls data, models and the experiment
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "HEAD:refs/heads/main")
    _dvc(repo, "exp", "push", "origin", exp_name)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "-b", "main", str(origin), str(clone))
    fresh = json.loads(_dvc(clone, "status", "--json"))  # before any pull: outs missing, no dependency changed
    assert not [s for s, changes in fresh.items() for c in changes if isinstance(c, dict) and "changed deps" in c], fresh
    subprocess.run(["bash", str(REPO / "scripts/dvc_remote.sh")], cwd=clone, env=env, check=True, capture_output=True)
    _dvc(clone, "pull")
    assert "Data and pipelines are up to date" in _dvc(clone, "status"), _dvc(clone, "status")
    assert (clone / "models/gancodec.pt").is_file() and (clone / "data/raw/kodak/kodim01.png").is_file()
    _dvc(clone, "exp", "pull", "origin", exp_name)
    _dvc(clone, "exp", "apply", exp_name)
    _dvc(clone, "checkout")
    assert json.loads((clone / "models/transforms.json").read_text())["train"]["lmbda"] == 0.013
    card = json.loads((clone / "models/gancodec.json").read_text())
    assert hashlib.sha256((clone / "models/gancodec.pt").read_bytes()).hexdigest() == card["sha256"]

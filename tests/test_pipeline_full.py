"""`dvc repro` of the whole pipeline on the ci profile in a temp copy of the repo (real DVC, real stages),
then `dvc exp run` on it (the copy is a git repo)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from test_pipeline_data import _dvc, ci_repo, git


def _experiments(show: list) -> list[dict]:
    """The `data` of each experiment in `dvc exp show --json`."""
    return [rev["data"] for commit in show for exp in commit.get("experiments") or [] for rev in exp["revs"]]


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the pipeline, then evaluate twice and train twice more: minutes on 2 cores
def test_dvc_repro_ci_profile_end_to_end(tmp_path):
    repo, params = ci_repo(tmp_path, scm=True)

    out = _dvc(repo, "repro", timeout=900)  # eight stages, the first run: minutes on 2 busy cores
    for stage in ("download", "validate", "synthesize", "split", "train", "evaluate", "evaluate_classes", "report"):
        assert f"Running stage '{stage}'" in out, out
    assert (repo / "models/gancodec.pt").is_file() and (repo / "models/run/last.pt").is_file()
    card = json.loads((repo / "models/gancodec.json").read_text())
    assert card["steps"] == 12 and card["profile"] == "ci"
    live = json.loads((repo / "dvclive/train/metrics.json").read_text())
    assert "train" in live and live["train"]["bpp"] > 0
    rd = pd.read_csv(repo / "reports/eval/rd.csv")
    assert set(rd.codec) == {"gancodec", "jpeg420", "webp"}
    sizes = {"kodim01": 512 * 512, "kodim02": 400 * 600}
    assert (rd.bpp == rd.bytes * 8 / rd.image.map(sizes)).all()  # every bpp is file bytes x 8 / pixels
    assert sorted(rd[rd.codec == "gancodec"].setting.unique()) == [2.0, 6.0]
    scored = rd.dropna(subset=["ssimulacra2"])
    assert len(scored) and (scored.bpp <= 2.0).all() and rd[rd.bpp > 2.0].ssimulacra2.isna().all()
    report = (repo / "reports/report/README.md").read_text()
    assert report.startswith("# gancodec report") and "gancodec's BD-rate at equal PSNR is" in report.splitlines()[2]
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

    params["evaluate"]["profiles"]["ci"]["qualities"] = [3, 6]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = _dvc(repo, "repro")
    assert "Running stage 'evaluate'" in changed and "Running stage 'report'" in changed
    assert "Running stage 'train'" not in changed and "Running stage 'validate'" not in changed

    # An experiment on a train param: train starts afresh (the persisted models/run/last.pt is the
    # old lambda's run; it used to be resumed at step 12 of 12, training nothing), evaluate follows.
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ci run")
    exp = _dvc(repo, "exp", "run", "-S", "train.lambda=0.013", timeout=600)
    for stage in ("train", "evaluate", "report"):
        assert f"Running stage '{stage}'" in exp, exp
    assert "Stage 'validate' didn't change" in exp and "Running stage 'validate'" not in exp, exp
    assert "not resuming models/run/last.pt" in exp and "lmbda None -> 0.013" in exp, exp
    card = json.loads((repo / "models/gancodec.json").read_text())
    assert card["steps"] == 12 and card["train"]["lmbda"] == 0.013
    logged = pd.read_csv(repo / "dvclive/train/plots/metrics/train/bpp.tsv", sep="\t")
    assert logged.step.tolist() == [2, 4, 6, 8, 10, 12] and (logged.bpp > 0).all()  # trained, from step 0
    diff = json.loads(_dvc(repo, "params", "diff", "--json"))
    assert diff["params.yaml"]["train.lambda"] == {"old": None, "new": 0.013}, diff
    (ran,) = [e for e in _experiments(json.loads(_dvc(repo, "exp", "show", "--json")))
              if e["params"]["params.yaml"]["data"]["train"]["lambda"] == 0.013]
    assert ran["metrics"]["dvclive/train/metrics.json"]["data"]["train"]["bpp"] > 0
    assert "bd_rate_psnr" in ran["metrics"]["reports/eval/metrics.json"]["data"]

    # A key that only says how to run (untracked in dvc.yaml) reruns nothing.
    idle = _dvc(repo, "exp", "run", "-S", "train.checkpoint_every_s=301")
    assert "Running stage" not in idle, idle

    # A setting that only extends the run: train resumes at 12 of 12 and trains nothing, yet logs
    # its final step (the plots folder dvc.yaml declares); the same weights leave evaluate alone.
    more = _dvc(repo, "exp", "run", "-S", "train.max_seconds=5000")
    assert "Running stage 'train'" in more and "resumed models/run/last.pt at step 12" in more, more
    assert "Running stage 'evaluate'" not in more, more
    assert pd.read_csv(repo / "dvclive/train/plots/metrics/train/bpp.tsv", sep="\t").step.tolist() == [12]

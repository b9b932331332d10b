"""`dvc repro` of the whole pipeline on the ci profile in a temp copy of the repo (real DVC, real stages)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from test_pipeline_data import _dvc, ci_repo


@pytest.mark.slow
def test_dvc_repro_ci_profile_end_to_end(tmp_path):
    repo, params = ci_repo(tmp_path)

    out = _dvc(repo, "repro")
    for stage in ("download", "validate", "split", "train", "evaluate", "report"):
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

    again = _dvc(repo, "repro")
    assert "Running stage" not in again, again

    params["evaluate"]["profiles"]["ci"]["qualities"] = [3, 6]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = _dvc(repo, "repro")
    assert "Running stage 'evaluate'" in changed and "Running stage 'report'" in changed
    assert "Running stage 'train'" not in changed and "Running stage 'validate'" not in changed

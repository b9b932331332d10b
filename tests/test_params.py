"""The typed params (gancodec.params) and dvc.yaml agree: each stage tracks exactly its section's keys."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gancodec.errors import DataError
from gancodec.params import (SECTIONS, EvaluateParams, TrainParams, overridden_sections, read_params,
                             read_profiles, resolve_section)

REPO = Path(__file__).resolve().parents[1]


def _dvc_yaml() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_stage_tracks_its_sections_keys_one_by_one():
    overridden = overridden_sections(REPO / "profiles.yaml")
    stages = _dvc_yaml()
    for name, stage in stages.items():
        cls = SECTIONS.get(name)
        assert cls is not None, f"stage {name}: add its section to gancodec.params.SECTIONS"
        tracked = [p for p in stage.get("params", [])]
        assert all(isinstance(p, str) for p in tracked), f"{name}: list dotted keys, not files"
        expected = cls.tracked_keys(has_profiles=cls.SECTION in overridden)
        assert tracked == expected, f"stage {name}: params {tracked} != {expected}"
        assert ("profiles.yaml" in stage["deps"]) == (cls.SECTION in overridden), \
            f"stage {name}: depends on profiles.yaml exactly when the file overrides {cls.SECTION}"
        cls.load(REPO / "params.yaml")  # every section of the committed file loads, typed


def test_every_stage_script_takes_params_and_nothing_hard_codes_the_file():
    scripts = []
    for name, stage in _dvc_yaml().items():
        cmd = " ".join(stage["cmd"].split())
        assert "--params params.yaml" in cmd, f"stage {name}: pass --params in its cmd"
        script = re.search(r"python (stages/\S+\.py)", cmd).group(1)
        assert script in stage["deps"], f"stage {name}: {script} must be a dependency"
        text = (REPO / script).read_text()
        assert '"params.yaml"' not in text.replace('default="params.yaml"', ""), f"{script} hard-codes params.yaml"
        scripts.append(script)
    # each script's own parser, in one interpreter (the imports are shared): --help lists --params
    probe = ("import contextlib, io, runpy, sys\n"
             "for script in sys.argv[1:]:\n"
             "    sys.argv = [script, '--help']; out = io.StringIO()\n"
             "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
             "        runpy.run_path(script, run_name='__main__')\n"
             "    print(script, '--params' in out.getvalue())\n")
    out = subprocess.run([sys.executable, "-c", probe, *scripts], capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": ""}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [w for s in scripts for w in (s, "True")], out.stdout


def test_params_yaml_holds_parameters_only():
    """No per-file hashes: those live in data/sources.yaml (a file dependency of download)."""
    text = (REPO / "params.yaml").read_text()
    assert not re.search(r"\b[0-9a-f]{64}\b", text)
    assert len(text.splitlines()) < 120
    assert "profiles:" not in text  # the overrides live in profiles.yaml (not exp show columns)
    sources = yaml.safe_load((REPO / "data/sources.yaml").read_text())
    assert {"kodak", "cid22_photos"} <= set(sources) and len(sources["kodak"]["files"]) == 24


def test_profiles_apply_and_types_are_checked():
    params = {"profile": "ci", "train": {"steps": 0, "lambda": None, "max_seconds": 10}}
    profiles = {"ci": {"train": {"steps": 12, "crop": 64}}, "full": {"train": {"steps": 9}}}
    prm = TrainParams.from_mapping(resolve_section(params, "train", profiles))
    assert (prm.steps, prm.crop, prm.lmbda, prm.max_seconds, prm.profile) == (12, 64, None, 10.0, "ci")
    assert isinstance(prm.max_seconds, float)
    cfg = prm.train_config("train.csv", "run", None)
    assert (cfg.steps, cfg.crop, cfg.data_dirs, cfg.lmbda) == (12, 64, ["train.csv"], None)
    with pytest.raises(DataError, match=r"train.steps must be an integer"):
        TrainParams.from_mapping({"steps": "many"})
    with pytest.raises(DataError, match=r"unknown key\(s\) \['stpes'\]; valid keys: .*'steps'"):
        TrainParams.from_mapping({"stpes": 3})
    with pytest.raises(DataError, match="evaluate.qualities must be a list"):
        EvaluateParams.from_mapping({"qualities": 3})
    with pytest.raises(DataError, match="profile 'huge' is unknown"):
        resolve_section({**params, "profile": "huge"}, "train", profiles)
    with pytest.raises(DataError, match=r"unknown section\(s\) \['trian'\]"):
        resolve_section(params, "train", {"ci": {"trian": {"steps": 1}}})
    with pytest.raises(DataError, match="train.profiles: profile overrides live in profiles.yaml"):
        resolve_section({"train": {"profiles": {"ci": {"steps": 1}}}}, "train")


def test_the_profile_file_beside_params_applies_and_rejects_unknown_profiles(tmp_path):
    (tmp_path / "params.yaml").write_text("profile: ci\ntrain: {steps: 0, crop: 128}\n")
    assert TrainParams.load(tmp_path / "params.yaml").steps == 0  # no profiles.yaml: the section as written
    (tmp_path / "profiles.yaml").write_text("ci:\n  train: {steps: 12}\n")
    prm = TrainParams.load(tmp_path / "params.yaml")
    assert (prm.steps, prm.crop, prm.profile) == (12, 128, "ci")
    (tmp_path / "profiles.yaml").write_text("tiny:\n  train: {steps: 1}\n")
    with pytest.raises(DataError, match=r"profiles.yaml: unknown profile\(s\) \['tiny'\]"):
        read_profiles(tmp_path / "profiles.yaml")


def test_missing_params_file_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot read params .*pass --params"):
        TrainParams.load(tmp_path / "nope.yaml")

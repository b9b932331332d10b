"""`dvc repro split` on the ci profile, in a temp copy of the repo, with a tiny mirror (real DVC)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image
from skimage import data as skdata

REPO = Path(__file__).resolve().parents[1]


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _mirror(root: Path) -> dict[str, dict[str, str]]:
    """A mirror with 2 'kodak' files and 4 train files (one of them truncated)."""
    imgs = {
        "kodak": {"kodim01.png": _png(skdata.astronaut()), "kodim02.png": _png(skdata.coffee())},
        "cid22_photos": {"a.png": _png(skdata.rocket()), "b.png": _png(skdata.chelsea()),
                         "c.png": _png(skdata.immunohistochemistry()), "d.png": _png(skdata.camera())[:5000]},
    }
    files = {}
    for source, entries in imgs.items():
        (root / source).mkdir(parents=True)
        files[source] = {}
        for name, blob in entries.items():
            (root / source / name).write_bytes(blob)
            files[source][name] = hashlib.sha256(blob).hexdigest()
    return files


def _dvc(cwd: Path, *args: str, timeout: int = 900) -> str:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONPATH=str(cwd / "src"), GANCODEC_CACHE=str(cwd / ".dlcache"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _repo_dvc_config(repo: Path) -> None:
    """The repository's own .dvc/config (its remote, the offline plots template) in the copy."""
    no_scm = "no_scm" in (repo / ".dvc/config").read_text()
    shutil.copy(REPO / ".dvc/config", repo / ".dvc/config")
    shutil.copytree(REPO / ".dvc/plots", repo / ".dvc/plots")
    if no_scm:
        _dvc(repo, "config", "core.no_scm", "true")


def ci_repo(tmp_path: Path, scm: bool = False) -> tuple[Path, dict]:
    """A temp copy of the pipeline on the ci profile, its mirror a tiny made-up one; (repo, params).
    With ``scm``, a git repo with all of that committed (for `dvc exp`, `dvc params diff`)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for rel in ("dvc.yaml", "params.yaml", "profiles.yaml", ".dvcignore"):
        shutil.copy(REPO / rel, repo / rel)
    for rel in ("stages", "src"):
        shutil.copytree(REPO / rel, repo / rel, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    files = _mirror(tmp_path / "mirror")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profile"] = "ci"
    params["download"]["mirror"] = str(tmp_path / "mirror")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    profiles = yaml.safe_load((REPO / "profiles.yaml").read_text())
    profiles["ci"]["download"]["take"] = ["kodak=2", "cid22_photos=4"]
    (repo / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    sources = yaml.safe_load((REPO / "data/sources.yaml").read_text())
    for source, entries in files.items():
        sources[source]["files"] = entries
    (repo / "data").mkdir()
    (repo / "data/sources.yaml").write_text(yaml.safe_dump(sources, sort_keys=False))
    if not scm:
        _dvc(repo, "init", "--no-scm", "-q")
        _repo_dvc_config(repo)
        return repo, params
    (repo / ".gitignore").write_text("__pycache__/\n*.egg-info/\n.dlcache/\n")
    git(repo, "init", "-q")
    # dvc exp commits too: an identity of the repo's own, so no global git config is needed
    git(repo, "config", "user.name", "t")
    git(repo, "config", "user.email", "t@t")
    _dvc(repo, "init", "-q")
    _repo_dvc_config(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ci pipeline")
    return repo, params


@pytest.mark.slow
def test_dvc_repro_split_on_ci_profile(tmp_path):
    repo, _ = ci_repo(tmp_path)

    out = _dvc(repo, "repro", "split")
    table = pd.read_csv(repo / "data/validation/files.csv").set_index("path")
    assert len(table) == 6
    assert table.loc["cid22_photos/d.png", ["status", "reason"]].tolist() == ["quarantined", "truncated"]
    assert table.loc["cid22_photos/c.png", "status"] == "ok" and table.loc["kodak/kodim01.png", "role"] == "test"
    assert (repo / "data/quarantine/cid22_photos/d.png").is_file()
    lists = {s: pd.read_csv(repo / f"data/splits/{s}.csv") for s in ("train", "val", "test")}
    assert sorted(lists["test"]["path"]) == ["kodak/kodim01.png", "kodak/kodim02.png"]
    both = pd.concat([lists["train"], lists["val"]])
    assert (both.source != "synthetic").sum() == 3
    # the synthesize stage's images are split by content hash with the photos, never into test
    synthetic = pd.read_csv(repo / "data/synthetic/manifest.csv")
    assert len(synthetic) == 4 and set(both[both.source == "synthetic"].sha256) == set(synthetic.sha256)
    for clean in pd.concat(lists.values())["clean_path"]:
        assert (repo / clean).is_file()
    assert (repo / "dvc.lock").is_file()

    again = _dvc(repo, "repro", "split")
    assert "didn't change" in again and "Running stage" not in again, again
    assert "Running stage" in out

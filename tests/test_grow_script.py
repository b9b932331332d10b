"""scripts/grow.sh runs its experiment in its own git worktree, never in the checkout it was started from."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "grow.sh", repo / "scripts" / "grow.sh")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "grow.sh")
    return repo


def test_the_inside_run_refuses_the_main_checkout(tmp_path):
    repo = _repo(tmp_path)
    proc = subprocess.run(["bash", "scripts/grow.sh", "--inside", "grow-x"], cwd=repo, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "refusing to run the experiment here" in proc.stderr, proc.stderr
    assert _git(repo, "status", "--porcelain") == ""  # nothing touched


def test_the_inside_run_works_in_its_own_worktree_whatever_the_callers_folder(tmp_path):
    """Started from the main checkout (as `scripts/grow.sh` starts it), the run goes to the
    worktree the script lives in: the bug was a run that did `cd $(git rev-parse
    --show-toplevel)` from the caller's folder and ran `dvc exp run` in the main checkout."""
    repo = _repo(tmp_path)
    tree = tmp_path / "grow-tree"
    _git(repo, "worktree", "add", "-q", "--detach", str(tree), "HEAD")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no dvc on PATH: the run stops at `dvc exp run`
    proc = subprocess.run(["bash", str(tree / "scripts" / "grow.sh"), "--inside", "grow-x"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "refusing" not in proc.stderr, proc.stderr
    assert f"grow: grow-x at {_git(repo, 'rev-parse', '--short', 'HEAD').strip()} in {tree.resolve()}," in proc.stdout, proc.stdout
    assert proc.returncode != 0  # dvc is not there
    assert _git(repo, "status", "--porcelain") == "" and _git(tree, "status", "--porcelain") == ""

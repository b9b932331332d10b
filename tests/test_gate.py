"""The ship gate (issue 30 part 3): an experiment ships only when its evaluation beats the shipped model's.

Each test builds a small git repository whose HEAD holds the shipped model's reports (rd.csv,
classes.csv, realism.csv in the stages' formats, from simple RD curves) and an experiment, in
the working tree or as a `dvc exp`-style ref under refs/exps; the BD-rates come from the real
bdrate code through the gate.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gancodec import gate
from gancodec.weights import WEIGHTS_DIR

VERSION = "v-test-gate"  # never in HISTORY.json
SHIPPED_SHA = "a" * 64
SHIPPED_REALISM_SHA = "b" * 64
IMAGES = ["kodim01", "kodim02", "kodim03"]


def _rd_rows(codec: str, images: list[str], scale: float, cls: str | None = None) -> list[dict]:
    """An RD curve per image: PSNR rises 1.5 dB per setting; ``scale`` multiplies every rate
    (0.95: the same quality at 5 % fewer bytes)."""
    rows = []
    for i, image in enumerate(images):
        for s in range(1, 9):
            bpp = 0.1 * 1.45 ** (s - 1) * (1 + 0.1 * i) * scale * (1.3 if codec == "webp" else 1.0)
            row = {"image": image, "codec": codec, "setting": float(s), "quality": float(s), "bytes": bpp * 512 * 768 / 8,
                   "bpp": bpp, "psnr": 25 + 1.5 * s - 0.5 * i, "ms_ssim": 0.9 + 0.01 * s, "encode_s": 0.1, "decode_s": 0.1}
            rows.append({"class": cls, **row} if cls else {**row, "ssimulacra2": 10.0 * s})
    return rows


def _realism_table(swd: float) -> pd.DataFrame:
    rows = []
    for q in (1.0, 2.0):
        for decoder, psnr, corr, s in (("fidelity", 27.0, 0.0, 0.09), ("realism", 26.4, 0.05, swd),
                                        ("webp", 25.9, 0.3, 0.14), ("avif", 27.4, 0.45, 0.09)):
            rows.append({"quality": q, "decoder": decoder, "bytes": 6800.0, "bpp": 0.14, "psnr": psnr + q, "corr": corr,
                         "ms_ssim": 0.9, "ssimulacra2": 1.0, "swd": s, "spectrum_db": 2.0, "spectrum_signed_db": -2.0})
    return pd.DataFrame(rows)


def _write(root: Path, files: dict[str, bytes | str]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())


def _reports(kodak: float, classes: dict[str, float], swd: float, weights_sha: str, realism_sha: str) -> dict:
    rd = pd.DataFrame(_rd_rows("gancodec", IMAGES, kodak) + _rd_rows("webp", IMAGES, 1.0))
    cls = pd.DataFrame([r for name, scale in classes.items()
                        for codec in ("gancodec", "webp") for r in _rd_rows(codec, [f"{name}-1", f"{name}-2"],
                                                                           scale if codec == "gancodec" else 1.0, name)])
    summary = {"images": 3, "weights_sha256": weights_sha, "realism": {"sha256": realism_sha}}
    return {gate.RD: rd.to_csv(index=False), gate.CLASSES_CSV: cls.to_csv(index=False),
            gate.CLASSES_JSON: json.dumps({"classes": []}), gate.REALISM_CSV: _realism_table(swd).to_csv(index=False),
            gate.SUMMARY: json.dumps(summary), gate.METRICS: json.dumps({"images": 3, "bd_rate_psnr": {"webp": -7.5 * kodak}})}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _weights_file() -> bytes:
    buf = io.BytesIO()
    torch.save({"model_config": {}, "state_dict": {}, "step": 500, "extends_model_id": None}, buf)
    return buf.getvalue()


def _realism_file() -> bytes:
    buf = io.BytesIO()
    torch.save({"kind": "realism", "base_model_id": "x", "state_dict": {}, "step": 7000}, buf)
    return buf.getvalue()


def make_repo(root: Path, kodak: float = 0.95, classes: dict | None = None, swd: float = 0.05) -> Path:
    """HEAD: the shipped model's card and reports; working tree: an experiment whose Kodak rates are
    ``kodak`` x the shipped ones, each class's ``classes[name]`` x, its realism SWD ``swd``."""
    classes = classes or {"photos": 0.96, "screen": 0.97}
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    shipped_card = {"sha256": SHIPPED_SHA, "model_id": SHIPPED_SHA[:32], "steps": 11799, "post_filter": {"steps": 13739}}
    _write(repo, {**_reports(1.0, {k: 1.0 for k in classes}, 0.05, SHIPPED_SHA, SHIPPED_REALISM_SHA),
                  gate.CARD: json.dumps(shipped_card),
                  gate.REALISM_CARD: json.dumps({"sha256": SHIPPED_REALISM_SHA, "base_model_id": SHIPPED_SHA[:32], "steps": 6106}),
                  "params.yaml": "profile: default\ntrain: {steps: 0, trainable: []}\nrealism: {steps: 0}\n",
                  gate.WEIGHTS_PIN: f"{SHIPPED_SHA}  gancodec.pt\n"})
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "shipped")
    weights, realism = _weights_file(), _realism_file()
    wsha, rsha = hashlib.sha256(weights).hexdigest(), hashlib.sha256(realism).hexdigest()
    _write(repo, {**_reports(kodak, classes, swd, wsha, rsha),
                  "params.yaml": "profile: default\ntrain: {steps: 500, trainable: []}\nrealism: {steps: 900}\n",
                  gate.WEIGHTS_PIN: f"{wsha}  gancodec.pt\n", gate.STAGE_CARD: json.dumps({"steps": 500, "train": {"lr": 1e-4}}),
                  gate.REALISM_STAGE_CARD: json.dumps({"sha256": rsha, "base_model_id": wsha[:32], "steps": 7000}),
                  gate.WEIGHTS: weights, gate.REALISM: realism})
    return repo


def _package_state() -> dict:
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in WEIGHTS_DIR.iterdir() if p.is_file()}


def _by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_a_better_experiment_passes_and_a_dry_run_writes_nothing(tmp_path, capsys):
    repo = make_repo(tmp_path)
    before, tree = _package_state(), {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    checks, card = gate.run_gate("workspace", VERSION, repo=repo, dry_run=True)
    assert card is None and all(c.ok for c in checks), [c for c in checks if not c.ok]
    got = _by_name(checks)
    # rates 0.95x at the same PSNR: BD-rate exactly -5 % from the pchip integral
    assert got["kodak"].status == "pass" and got["kodak"].value == pytest.approx(-5.0, abs=1e-6)
    assert "vs WebP" in got["kodak"].detail
    assert got["class photos"].value == pytest.approx(-4.0, abs=1e-6) and got["class screen"].status == "pass"
    assert got["realism q1"].status == got["realism q2"].status == "pass"
    assert "transforms 12,299 (recorded)" in got["trained steps"].detail  # 11,799 on the card + this run's 500
    assert _package_state() == before
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts} == tree
    assert gate.main(["--exp", "workspace", "--version", VERSION, "--repo", str(repo), "--dry-run"]) == 0
    assert "nothing written" in capsys.readouterr().out
    assert _package_state() == before


def test_an_experiment_worse_on_kodak_is_refused_naming_the_check(tmp_path, capsys):
    repo = make_repo(tmp_path, kodak=1.02)
    checks, card = gate.run_gate("workspace", VERSION, repo=repo, dry_run=False)  # not a dry run: refused, nothing written
    assert card is None
    got = _by_name(checks)
    assert got["kodak"].status == "FAIL" and got["kodak"].value == pytest.approx(2.0, abs=1e-6)
    assert gate.main(["--exp", "workspace", "--version", VERSION, "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "refused: kodak:" in err and "must be below 0" in err


def test_an_experiment_worse_on_one_class_is_refused_and_a_small_loss_is_flagged(tmp_path, capsys):
    repo = make_repo(tmp_path, classes={"photos": 0.96, "screen": 1.03})
    got = _by_name(gate.run_gate("workspace", VERSION, repo=repo, dry_run=True)[0])
    assert got["kodak"].status == "pass" and got["class photos"].status == "pass"
    assert got["class screen"].status == "FAIL" and got["class screen"].value == pytest.approx(3.0, abs=1e-6)
    assert gate.main(["--exp", "workspace", "--version", VERSION, "--repo", str(repo), "--dry-run"]) == 1
    assert "refused: class screen:" in capsys.readouterr().err
    got = _by_name(gate.run_gate("workspace", VERSION, repo=repo, dry_run=True, class_tolerance=5.0)[0])
    assert got["class screen"].status == "flag" and got["class screen"].ok


def test_worse_texture_statistics_are_refused(tmp_path):
    repo = make_repo(tmp_path, swd=0.06)
    got = _by_name(gate.run_gate("workspace", VERSION, repo=repo, dry_run=True)[0])
    assert got["realism q1"].status == "FAIL" and "texture statistics worse" in got["realism q1"].detail


def test_an_experiment_ref_is_read_from_git_and_its_weights_from_the_dvc_cache(tmp_path):
    repo = make_repo(tmp_path)
    weights = (repo / gate.WEIGHTS).read_bytes()
    md5 = hashlib.md5(weights).hexdigest()
    (repo / "dvc.lock").write_text(f"schema: '2.0'\nstages:\n  train:\n    outs:\n    - path: {gate.WEIGHTS}\n      md5: {md5}\n")
    cached = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(weights)
    realism = (repo / gate.REALISM).read_bytes()
    (repo / gate.WEIGHTS).unlink()
    (repo / gate.REALISM).unlink()
    _git(repo, "add", "-A", "--", ".", ":!.dvc")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "exp")
    commit = _git(repo, "rev-parse", "HEAD")
    base = _git(repo, "rev-parse", "HEAD~1")
    _git(repo, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/tiny-exp", commit)
    _git(repo, "reset", "-q", "--hard", base)  # the workspace is the shipped model's again
    (repo / gate.REALISM).parent.mkdir(exist_ok=True)
    (repo / gate.REALISM).write_bytes(realism)  # (a workspace realism file with the pinned sha256 is found too)
    assert gate.resolve_experiment("tiny-exp", repo) == {"name": "tiny-exp", "ref": f"refs/exps/{base[:2]}/{base[2:]}/tiny-exp",
                                                        "commit": commit}
    got = _by_name(gate.run_gate("tiny-exp", VERSION, repo=repo, dry_run=True)[0])
    assert got["evaluated weights"].status == "pass" and str(cached) in got["evaluated weights"].detail
    assert got["kodak"].value == pytest.approx(-5.0, abs=1e-6) and all(c.ok for c in got.values())
    with pytest.raises(gate.ModelError, match="no such ref"):
        gate.resolve_experiment("no-such-exp", repo)


def test_bd_rate_is_the_bdrate_modules():
    from gancodec.eval import bdrate

    a, t = pd.DataFrame(_rd_rows("gancodec", ["x"], 1.0)), pd.DataFrame(_rd_rows("gancodec", ["x"], 0.9))
    assert gate._bd(gate._curve(a), gate._curve(t)) == pytest.approx(bdrate.bd_rate(a.bpp, a.psnr, t.bpp, t.psnr))
    assert np.isclose(gate._bd(gate._curve(a), gate._curve(t)), -10.0)


def test_a_passing_gate_ships_the_evaluated_bytes_with_the_experiments_card(tmp_path, monkeypatch):
    """Real weights (the shipped file with a trained_steps dict added: another sha256, the same
    model) through the real ship code, into a temporary package folder."""
    from gancodec.weights import SHIPPED_WEIGHTS, history
    from gancodec.weights import realism as realism_mod
    from gancodec.weights import ship as ship_mod

    ckpt = torch.load(SHIPPED_WEIGHTS, map_location="cpu", weights_only=True)
    ckpt["trained_steps"] = {"transforms": 12000, "entropy": 12000, "post_filter": 14000}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    weights = buf.getvalue()
    wsha = hashlib.sha256(weights).hexdigest()
    repo = make_repo(tmp_path)
    _write(repo, {**_reports(0.95, {"photos": 0.96, "screen": 0.97}, 0.05, wsha, SHIPPED_REALISM_SHA),
                  gate.WEIGHTS: weights, gate.WEIGHTS_PIN: f"{wsha}  gancodec.pt\n",
                  gate.REALISM_STAGE_CARD: json.dumps({"sha256": SHIPPED_REALISM_SHA, "base_model_id": "x"}),
                  gate.REALISM_CARD: json.dumps({"sha256": SHIPPED_REALISM_SHA, "steps": 6106,
                                                 "base_model_id": ckpt["extends_model_id"]})})
    (repo / gate.REALISM).unlink()
    _git(repo, "add", gate.REALISM_CARD)
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "realism card")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "HISTORY.json").write_bytes(history.HISTORY_FILE.read_bytes())
    earlier = [v["version"] for v in json.loads(history.HISTORY_FILE.read_text())["versions"]]
    monkeypatch.setattr(ship_mod, "SHIPPED_WEIGHTS", pkg / "hyperprior-v1.pt")
    monkeypatch.setattr(ship_mod, "MODEL_CARD", pkg / "MODEL_CARD.json")
    monkeypatch.setattr(history, "HISTORY_FILE", pkg / "HISTORY.json")
    monkeypatch.setattr(realism_mod, "SHIPPED_REALISM", pkg / "realism-v1.pt")
    checks, card = gate.run_gate("workspace", VERSION, repo=repo)
    assert all(c.ok for c in checks) and card is not None
    assert (pkg / "hyperprior-v1.pt").read_bytes() == weights  # the evaluated bytes, verbatim
    saved = json.loads((pkg / "MODEL_CARD.json").read_text())
    assert saved["sha256"] == wsha and saved["experiment"]["name"] == "workspace"
    assert saved["eval_metrics"] == json.loads((repo / gate.METRICS).read_text())  # what dvc exp show shows
    assert saved["trained_steps"] == {"transforms": 12000, "entropy": 12000, "post_filter": 14000, "realism": 6106}
    assert saved["trained_steps_source"]["transforms"].startswith("measured")
    assert saved["trained_steps_source"]["realism"].startswith("recorded")
    assert saved["params"]["train"] == {"steps": 500, "trainable": []} and saved["train_config"] == {"lr": 1e-4}
    assert saved["extends_model_id"] == ckpt["extends_model_id"]
    assert "## Shipped from an experiment" in (pkg / "MODEL_CARD.md").read_text()
    entry = json.loads((pkg / "HISTORY.json").read_text())["versions"][-1]
    assert entry["version"] == VERSION and entry["sha256"] == wsha
    assert [v["version"] for v in json.loads((pkg / "HISTORY.json").read_text())["versions"][:-1]] == earlier


def test_a_new_realism_decoder_over_the_unchanged_model_ships_alone(tmp_path, monkeypatch):
    """The weights are the shipped ones (Kodak and class rows skip, BD-rate 0); the realism decoder
    changed and its table is no worse: only the realism file and its card are written."""
    from gancodec.realism import ship as realism_ship
    from gancodec.weights import SHIPPED_WEIGHTS, history
    from gancodec.weights import realism as realism_mod
    from gancodec.weights import ship as ship_mod
    from gancodec.weights.realism import SHIPPED_REALISM

    shipped_sha = hashlib.sha256(SHIPPED_WEIGHTS.read_bytes()).hexdigest()
    ckpt = torch.load(SHIPPED_REALISM, map_location="cpu", weights_only=True)
    ckpt["step"] = 7000
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    realism = buf.getvalue()
    rsha = hashlib.sha256(realism).hexdigest()
    repo = make_repo(tmp_path, kodak=1.0, classes={"photos": 1.0, "screen": 1.0}, swd=0.045)
    _write(repo, {gate.CARD: json.dumps({"sha256": shipped_sha, "steps": 11799}),
                  gate.REALISM_CARD: json.dumps({"sha256": SHIPPED_REALISM_SHA, "base_model_id": ckpt["base_model_id"]})})
    _write(repo, {k: v.replace(SHIPPED_SHA, shipped_sha) for k, v in _reports(1.0, {"photos": 1.0, "screen": 1.0}, 0.05,
                                                                             SHIPPED_SHA, SHIPPED_REALISM_SHA).items()})
    _git(repo, "add", "-A", "--", ".", ":!models")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "shipped: the real weights' sha256")
    _write(repo, {**_reports(1.0, {"photos": 1.0, "screen": 1.0}, 0.045, shipped_sha, rsha),
                  gate.WEIGHTS_PIN: f"{shipped_sha}  gancodec.pt\n", gate.REALISM: realism,
                  gate.REALISM_STAGE_CARD: json.dumps({"sha256": rsha, "base_model_id": ckpt["base_model_id"]})})
    (repo / gate.WEIGHTS).unlink()  # the package's own file has that sha256
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    monkeypatch.setattr(ship_mod, "SHIPPED_WEIGHTS", SHIPPED_WEIGHTS)  # read only: the realism card names its base
    monkeypatch.setattr(realism_mod, "SHIPPED_REALISM", pkg / "realism-v1.pt")
    monkeypatch.setattr(realism_ship, "SHIPPED_REALISM", pkg / "realism-v1.pt")
    monkeypatch.setattr(realism_ship, "MODEL_CARD", pkg / "MODEL_CARD.json")  # absent: no re-render
    before = _package_state()
    checks, card = gate.run_gate("workspace", VERSION, repo=repo)
    got = _by_name(checks)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert got["kodak"].status == "skip" and got["kodak"].value == pytest.approx(0.0, abs=1e-9)
    assert got["realism q1"].status == "pass" and "0.0500 -> 0.0450" in got["realism q1"].detail
    assert (pkg / "realism-v1.pt").read_bytes() == realism and card["realism"]["sha256"] == rsha
    assert card["realism"]["checks"]["Kodak (evaluate stage)"]["images"] == IMAGES
    assert _package_state() == before and history.version_of(shipped_sha[:32])["version"] != VERSION

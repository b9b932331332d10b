"""More than one GPU, checked on the CPU: `python -m gancodec.train` under torchrun with 2 processes
over gloo trains one model. The run exits 0, rank 0 alone writes (one last.pt, one model.pt), both
ranks end with the same weights (the `done` line lists each rank's sha256 of its parameters, and
the saved model has that digest), the weights moved from where they started, and a second launch
resumes. The DVC stage with `train.nproc: 2` starts torchrun itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancodec.models import HyperpriorCodec, ModelConfig
from gancodec.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from gancodec.train.distributed import params_digest

REPO = Path(__file__).resolve().parents[1]


def _images(folder, n=4, size=128):
    """Small images with something to code: gradients plus noise, a different mix in each."""
    folder.mkdir()
    rng = np.random.default_rng(30)
    ramp = np.linspace(0, 255, size)
    for i in range(n):
        base = np.stack([np.add.outer(ramp * (c + 1) / 3, ramp * i / n) / 2 for c in range(3)], axis=-1)
        img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i}.png")
    return folder


def _torchrun(args: list[str], cwd) -> list[dict]:
    """``python -m gancodec.train ARGS`` on 2 processes over gloo (one thread each: 2 fit 2 cores);
    the JSON records it printed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "gancodec.train", *args, "--device", "cpu", "--threads", "1"]
    run = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def _one(records: list[dict], event: str) -> dict:
    (rec,) = [r for r in records if r.get("event") == event]  # rank 0 alone logs
    return rec


def test_two_processes_over_gloo_train_one_model_and_resume(tmp_path):
    torch.manual_seed(1)
    init = tmp_path / "init.pt"
    save_checkpoint(init, HyperpriorCodec(ModelConfig(N=16, M=24)))  # tiny: the test is the launch, not the model
    out = tmp_path / "run"
    args = ["--data", str(_images(tmp_path / "imgs")), "--out", str(out), "--init-from", str(init),
            "--batch-size", "2", "--crop", "64", "--lr", "1e-3"]
    records = _torchrun([*args, "--steps", "4"], tmp_path)
    start = _one(records, "start")
    assert start["ranks"] == 2 and start["crops_per_step"] == 4
    assert _one(records, "done")["step"] == 4
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "model.pt"]  # one writer, no leftovers

    digests = _one(records, "done")["ranks_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1], digests  # both ranks hold the same weights
    saved = model_from_checkpoint(load_checkpoint(out / "model.pt"))
    assert params_digest(saved) == digests[0]  # ... and they are the saved ones
    assert load_checkpoint(out / "last.pt")["world_size"] == 2

    start_weights = model_from_checkpoint(load_checkpoint(init))
    moved = max((p - q).abs().max().item() for p, q in zip(saved.parameters(), start_weights.parameters()))
    assert moved > 0, "the weights did not move: nothing was trained"

    # rank 0 saved, every rank resumes: more steps continue the run where it stopped
    records = _torchrun([*args, "--steps", "6"], tmp_path)
    assert _one(records, "start")["origin"] == f"resumed {out / 'last.pt'} at step 4"
    done = _one(records, "done")
    assert done["step"] == 6 and done["ranks_sha256"][0] == done["ranks_sha256"][1] != digests[0]
    assert params_digest(model_from_checkpoint(load_checkpoint(out / "model.pt"))) == done["ranks_sha256"][0]
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "model.pt"]


def test_the_stage_trains_on_train_nproc_processes(tmp_path):
    """`train.nproc: 2` makes stages/train.py start itself under torchrun: one run, one export,
    one set of curves (rank 0's), the mix lists written once for both ranks."""
    import pandas as pd

    torch.manual_seed(1)
    save_checkpoint(tmp_path / "init.pt", HyperpriorCodec(ModelConfig(N=16, M=24)))
    images = sorted(str(p) for p in _images(tmp_path / "imgs").glob("*.png"))
    pd.DataFrame({"path": images, "clean_path": images, "source": ["photo", "photo", "synthetic", "synthetic"]}
                 ).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "params.yaml").write_text(
        "train: {init_from: init.pt, steps: 3, batch_size: 2, crop: 64, synthetic_share: 0.5, nproc: 2, threads: 1}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    stage = [sys.executable, str(REPO / "stages/train.py"), "--params", "params.yaml", "--train-list", "train.csv",
             "--run", "run", "--out", "out/m.pt", "--sha256", "out/m.sha256", "--live", "live"]
    run = subprocess.run(stage, env={**env, "OMP_NUM_THREADS": "1"}, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    records = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert _one(records, "start")["ranks"] == 2
    assert len(set(_one(records, "done")["ranks_sha256"])) == 1
    assert json.loads((tmp_path / "out/m.json").read_text())["steps"] == 3
    assert json.loads((tmp_path / "live/metrics.json").read_text())["step"] == 3
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["last.pt", "lists", "model.pt"]
    assert len(pd.read_csv(tmp_path / "run/lists/synthetic.csv")) == 2

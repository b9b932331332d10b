"""DVC stage `train`: stage-1 rate-distortion training on the split's train list.

Reads the `train` section of --params (profile-aware, typed: gancodec.params.TrainParams), logs
loss/bpp/PSNR per step with dvclive, keeps a resumable checkpoint in --run (persisted by DVC),
and exports the weights + model card to --out. With `train.steps: 0` the starting weights are
copied to --out unchanged.

With `train.nproc: N > 1` the script starts itself again under torchrun, N processes (one per
GPU, DistributedDataParallel: gancodec.train.distributed); every rank trains, rank 0 alone logs
and exports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dvclive import Live

from gancodec.data.download import sha256_file
from gancodec.errors import DataError, GancodecError
from gancodec.fsutil import atomic_write_bytes
from gancodec.params import TrainParams
from gancodec.train import train
from gancodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from gancodec.train.distributed import ranks_from_env
from gancodec.weights import SHIPPED_WEIGHTS, export_weights
from gancodec.weights.steps import accumulate


def _repo_relative(path: Path) -> str:
    """The path relative to the working directory when it lies inside it (the card stays portable)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _mix(train_list: str, run: str, share: float | None) -> tuple[list[str], list[float] | None]:
    """With a synthetic share, the train list split by source into RUN/lists/{photos,synthetic}.csv
    and their weights; without one (or with no synthetic rows), the list itself."""
    import pandas as pd

    if share is None:
        return [train_list], None
    if not 0.0 <= share <= 1.0:
        raise DataError(f"params: train.synthetic_share={share} must be in [0, 1] (or null: by pixels)")
    rows = pd.read_csv(train_list)
    synthetic = rows["source"] == "synthetic"
    if not synthetic.any() or synthetic.all():
        print(f"train: synthetic_share={share} but {train_list} holds {'only' if synthetic.all() else 'no'} "
              "synthetic images; training on the list as it is", file=sys.stderr)
        return [train_list], None
    folder = Path(run) / "lists"
    folder.mkdir(parents=True, exist_ok=True)
    # atomically: under torchrun every rank writes the same lists, and none may read a half-written one
    atomic_write_bytes(folder / "photos.csv", rows[~synthetic].to_csv(index=False).encode())
    atomic_write_bytes(folder / "synthetic.csv", rows[synthetic].to_csv(index=False).encode())
    return [str(folder / "photos.csv"), str(folder / "synthetic.csv")], [1.0 - share, share]


def _torchrun(nproc: int, argv: list[str]) -> int:
    """This script again with the same arguments, under torchrun on ``nproc`` processes; their exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "--", str(Path(__file__).resolve()), *argv]  # "--": torchrun would take --run for its --run-path
    return subprocess.run(cmd).returncode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="the params file (section `train`)")
    p.add_argument("--train-list", required=True, help="CSV with a `path` column (from the split stage)")
    p.add_argument("--run", required=True, help="checkpoint folder (resumable)")
    p.add_argument("--out", required=True, help="exported weights file")
    p.add_argument("--sha256", help="write `<sha256>  <weights name>` here: a small committed file that pins "
                   "the (DVC-cached) weights, so evaluate depends on it instead of on the weights")
    p.add_argument("--live", default="dvclive/train")
    a = p.parse_args(argv)
    ranks = ranks_from_env()
    try:
        prm = TrainParams.load(a.params)
        if prm.nproc < 1:
            raise DataError(f"params: train.nproc={prm.nproc} must be at least 1")
        if prm.nproc > 1 and "WORLD_SIZE" not in os.environ:
            return _torchrun(prm.nproc, sys.argv[1:] if argv is None else list(argv))
        if ranks.world_size != prm.nproc:
            raise DataError(f"params: train.nproc={prm.nproc}, but torchrun started {ranks.world_size} processes; "
                            "run the stage without torchrun (it starts train.nproc itself)")
        lists, weights = _mix(a.train_list, a.run, prm.synthetic_share)
    except GancodecError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    init = {"shipped": _repo_relative(SHIPPED_WEIGHTS), "scratch": None}.get(prm.init_from, prm.init_from)
    cfg = prm.train_config(lists, a.run, init, source_weights=weights)
    if not ranks.main:  # the other ranks train beside rank 0; it alone logs and exports
        train(cfg)
        return 0
    with Live(a.live, report=None, dvcyaml=None) as live:
        # train() logs its final step at least (even with nothing left to train), so the plots
        # folder dvc.yaml declares is always written.
        def log(rec: dict) -> None:
            if "step" in rec and "loss" in rec:
                live.step = rec["step"]  # first: dvclive writes each value at the current step
                for key in ("loss", "bpp", "psnr"):  # no psnr when only the entropy model trains
                    if key in rec:
                        live.log_metric(f"train/{key}", rec[key])
                live.next_step()
            else:
                print(json.dumps(rec), flush=True)

        weights = train(cfg, log=log)
        ckpt = load_checkpoint(weights)
        if int(ckpt.get("step", 0)) == 0 and init:
            # Nothing trained: the starting weights are the result, byte for byte (the shipped
            # model keeps its model id, so its streams and reports name the release)
            shutil.copyfile(init, a.out)
            digest = sha256_file(a.out)
        else:
            # the transforms' steps add to the starting file's when it was continued (trained_steps)
            base_meta = load_checkpoint(init) if init else None
            steps = accumulate(base_meta, "transforms", int(ckpt.get("step", 0)), continued=bool(init))
            digest = export_weights(model_from_checkpoint(ckpt, str(weights)), a.out, step=int(ckpt.get("step", 0)),
                                    trained_steps=steps)
        Path(a.out).with_suffix(".json").write_text(json.dumps(
            {"sha256": digest, "steps": int(ckpt.get("step", 0)), "init_from": prm.init_from,
             "init_sha256": sha256_file(init) if init else None,
             "profile": prm.profile, "train": cfg.to_dict()}, indent=2) + "\n")
        if a.sha256:
            Path(a.sha256).write_text(f"{digest}  {Path(a.out).name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m gancodec.train --data DIR [DIR...] --out runs/stage1 [--init-from W] [--steps N] [--max-seconds S]
[--context checkerboard] [--trainable PART ...]``

On several GPUs: ``torchrun --standalone --nproc_per_node N -m gancodec.train ...`` (one process
per GPU; each step sees ``--batch-size`` x N crops; docs/training.md, "More than one GPU")."""

from __future__ import annotations

import argparse

from ..models.hyperprior import CONTEXTS
from .config import TrainConfig
from .loop import train


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m gancodec.train", description="Stage-1 rate-distortion training.")
    p.add_argument("--data", nargs="+", required=True, help="folders or CSV lists of training images")
    p.add_argument("--source-weights", type=float, nargs="+", default=None, metavar="W",
                   help="share of the crops from each --data entry, in order (e.g. 0.65 0.35); default: by pixels")
    p.add_argument("--out", default="runs/stage1")
    p.add_argument("--init-from", default=None, help="weights to start from (e.g. the shipped model)")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--max-seconds", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--checkpoint-every-s", type=float, default=300.0)
    p.add_argument("--rate-min", type=float, default=0.0, help="sample rate points from here (0 = quality 1) ...")
    p.add_argument("--rate-max", type=float, default=-1.0, help="... to here (-1 = the highest)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--context", choices=CONTEXTS, default=None,
                   help="add a context model (with --init-from: a new part, trained from its initialisation)")
    p.add_argument("--trainable", nargs="+", default=[], metavar="PART",
                   help="train only these parts (e.g. context h_a h_s z_prior); without g_a, g_s or gain "
                        "the loss is the rate alone and g_s is skipped")
    a = p.parse_args(argv)
    train(TrainConfig(data_dirs=a.data, source_weights=a.source_weights, out_dir=a.out, init_from=a.init_from, steps=a.steps, max_seconds=a.max_seconds,
                      batch_size=a.batch_size, crop=a.crop, lr=a.lr, device=a.device, threads=a.threads,
                      checkpoint_every_s=a.checkpoint_every_s, compile=a.compile, rate_min=a.rate_min, rate_max=a.rate_max,
                      model={"context": a.context} if a.context else {}, trainable=a.trainable))


if __name__ == "__main__":
    main()

"""``python -m gancodec.realism --data DIR [DIR...] [--base W] --out runs/stage2 [--steps N] [--max-seconds S]``

Trains the realism decoder for a frozen stage-1 model (default: the shipped one). The result,
``<out>/realism.pt`` + ``realism.json``, decodes that model's streams with
``gancodec decompress --realism`` (ship it beside the base weights with
``python -m gancodec.realism.ship <out>/realism.pt --kodak-table T.json``, or point
``$GANCODEC_REALISM_WEIGHTS`` at it).
"""

from __future__ import annotations

import argparse

from .config import RealismConfig
from .loop import train_realism


def main(argv: list[str] | None = None) -> None:
    d = RealismConfig()
    p = argparse.ArgumentParser(prog="python -m gancodec.realism", description="Stage-2 realism decoder training.")
    p.add_argument("--data", nargs="+", required=True, help="folders or CSV lists of training images")
    p.add_argument("--base", default=None, help="stage-1 weights to freeze (default: the shipped ones)")
    p.add_argument("--out", default=d.out_dir)
    p.add_argument("--init-from", default=None, help="a realism.pt to continue from")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--max-seconds", type=float, default=d.max_seconds)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--crop", type=int, default=d.crop)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--checkpoint-every-s", type=float, default=d.checkpoint_every_s)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--rate-max", type=float, default=d.rate_max,
                   help="train on rate points 0..R only (3 = qualities 1-4; default: all)")
    p.add_argument("--d-warmup-steps", type=int, default=d.d_warmup_steps,
                   help="train only the discriminator for this many steps first")
    p.add_argument("--d-lr", type=float, default=d.d_lr, help="discriminator learning rate (default: --lr)")
    for name in ("w_adv", "w_mse", "w_ms_ssim", "w_fm", "w_lpips", "w_artifact"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name),
                       help=f"loss weight (default {getattr(d, name):g})")
    p.add_argument("--compile", action="store_true")
    a = p.parse_args(argv)
    train_realism(RealismConfig(data_dirs=a.data, base=a.base, out_dir=a.out, init_from=a.init_from, steps=a.steps,
                                max_seconds=a.max_seconds, batch_size=a.batch_size, crop=a.crop, lr=a.lr,
                                device=a.device, threads=a.threads, checkpoint_every_s=a.checkpoint_every_s,
                                log_every=a.log_every, compile=a.compile, rate_max=a.rate_max,
                                d_warmup_steps=a.d_warmup_steps, d_lr=a.d_lr, w_adv=a.w_adv, w_mse=a.w_mse,
                                w_ms_ssim=a.w_ms_ssim, w_fm=a.w_fm, w_lpips=a.w_lpips,
                                w_artifact=a.w_artifact))


if __name__ == "__main__":
    main()

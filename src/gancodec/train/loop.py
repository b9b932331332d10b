"""Stage-1 training: the rate-distortion loop (resumable; GPU when present, CPU otherwise).

Run it with ``python -m gancodec.train --data DIR ... --out runs/stage1`` or from the DVC stage.
Every ``checkpoint_every_s`` seconds it writes ``last.pt`` (model + optimiser + step: resumable)
and ``model.pt`` (weights only, with tables filled: usable by the codec).

Under ``torchrun --nproc_per_node N`` it runs on N processes in DistributedDataParallel
(:mod:`gancodec.train.distributed`): each rank draws its own crops, gradients are averaged, only
rank 0 writes. ``steps`` and the learning-rate schedule count optimiser steps, as with one process;
one step then sees ``batch_size x N`` crops.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import torch

from ..data.download import sha256_file
from ..device import bf16_autocast_pays, resolve_device
from ..eval.metrics import psnr_from_mse
from ..models import HyperpriorCodec, ModelConfig
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .config import TrainConfig
from .crops import CropSampler, list_images, list_sources
from .distributed import Ranks, barrier, from_rank0, gather_digests, mean_over_ranks, session, wrap
from .losses import RDLoss, rate_distortion
from .schedule import warmup_cosine


pick_device = resolve_device  # the one device policy (gancodec.device); the name stays for callers


def get_lr(cfg: TrainConfig, step: int) -> float:
    """200 warm-up steps, then cosine decay to lr * lr_final_fraction at cfg.steps (steps alone
    set the progress: a budget-stopped run resumes on the same schedule)."""
    return warmup_cosine(step, cfg.lr, cfg.steps, 200, cfg.lr_final_fraction)


def _build_model(cfg: TrainConfig) -> tuple[HyperpriorCodec, str]:
    if cfg.init_from:
        return model_from_checkpoint(load_checkpoint(cfg.init_from), cfg.init_from, cfg.model), f"weights {cfg.init_from}"
    return HyperpriorCodec(ModelConfig(**cfg.model) if cfg.model else ModelConfig()), "scratch"


#: Parts whose training needs the distortion term; without any of them only the rate is trained.
SHAPES_PIXELS = frozenset({"g_a", "g_s", "gain"})


def _trainable(model: HyperpriorCodec, names: list[str]) -> list[torch.nn.Parameter]:
    """Freeze every part not in ``names`` (all parts when empty); return the parameters to train."""
    parts = dict(model.named_children())
    unknown = set(names) - set(parts)
    if unknown:
        raise ValueError(f"trainable: {sorted(unknown)} are not parts of this model; its parts are {sorted(parts)}")
    for name, part in parts.items():
        part.requires_grad_(not names or name in names)
    return [p for p in model.parameters() if p.requires_grad]


# Settings that only extend or steer a run: a checkpoint made under other values of these is
# still this run and is resumed. Any other setting (lr, lmbda, data, init_from, ...) defines the
# run, and a checkpoint made under another value of it is not resumed.
EXTENDS_RUN = frozenset({"steps", "max_seconds", "out_dir", "device", "threads", "checkpoint_every_s", "log_every",
                         "compile", "amp"})


def _changed_settings(saved: dict | None, cfg: TrainConfig) -> dict[str, tuple]:
    """The run-defining settings where ``cfg`` differs from a checkpoint's ``train_config``:
    {name: (saved, now)}. A checkpoint without one (older format) counts as matching."""
    if saved is None:
        return {}
    return {k: (saved.get(k), v) for k, v in cfg.to_dict().items() if k not in EXTENDS_RUN and saved.get(k) != v}


def train(cfg: TrainConfig, log: Callable[[dict], None] | None = None) -> Path:
    """Train until ``cfg.steps`` or ``cfg.max_seconds``; return the path of the weights file.

    Under torchrun every rank calls this; only rank 0 calls ``log`` and writes files."""
    with session(cfg.device) as (ranks, device):
        return _train(cfg, log or (lambda rec: print(json.dumps(rec), flush=True)), ranks, device)


def _train(cfg: TrainConfig, log: Callable[[dict], None], ranks: Ranks, device: torch.device) -> Path:
    if not ranks.main:
        log = lambda rec: None  # noqa: E731 -- rank 0 speaks for the run
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    # --- model, optimiser, resume ---------------------------------------------------------
    resume = out / "last.pt"
    ckpt = load_checkpoint(resume) if resume.exists() else None
    init_sha256 = sha256_file(cfg.init_from) if cfg.init_from else None  # same path, new weights: a new run
    changed = _changed_settings(ckpt.get("train_config"), cfg) if ckpt is not None else {}
    if ckpt is not None and ckpt.get("init_sha256", init_sha256) != init_sha256:
        changed["init_from sha256"] = (str(ckpt["init_sha256"])[:12], str(init_sha256)[:12])
    if ckpt is not None and ckpt.get("world_size", 1) != ranks.world_size:  # another effective batch
        changed["world_size"] = (ckpt.get("world_size", 1), ranks.world_size)
    if changed:  # another run's checkpoint (e.g. made before lr or lambda changed): start afresh, overwrite it
        ckpt = None
    if ckpt is not None:
        model = model_from_checkpoint(ckpt, str(resume))
        start_step, origin = int(ckpt["step"]), f"resumed {resume} at step {ckpt['step']}"
    else:
        model, origin = _build_model(cfg)
        start_step = 0
    if changed:
        origin += f" (not resuming {resume}: it was made with other settings: " + ", ".join(
            f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items()) + ")"
    model.to(device).train()
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    params = _trainable(model, cfg.trainable)
    rate_only = bool(cfg.trainable) and not SHAPES_PIXELS & set(cfg.trainable)
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    if ckpt is not None and "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
    forward = wrap(model, ranks, device)
    forward = torch.compile(forward) if cfg.compile else forward
    amp = cfg.amp and bf16_autocast_pays(device)
    rate_min, rate_max = cfg.rate_min, (model.num_rates - 1 if cfg.rate_max < 0 else cfg.rate_max)
    if cfg.lmbda is not None:
        rate_min = rate_max = model.gain.rate_of_lambda(cfg.lmbda)
    if ranks.distributed:  # each rank its own rate points (and crops, below); rank 0 those of one process
        torch.manual_seed(ranks.seed(cfg.seed + start_step))
    crop_seed = ranks.seed(cfg.seed + start_step)
    if cfg.source_weights is not None:
        sampler = CropSampler(list_sources(cfg.data_dirs), cfg.crop, seed=crop_seed,
                              source_weights=list(cfg.source_weights))
    else:
        sampler = CropSampler(list_images(cfg.data_dirs), cfg.crop, seed=crop_seed)
    log({"event": "start", "origin": origin, "device": str(device), "bf16": amp, "images": len(sampler.images),
         "params": sum(p.numel() for p in params), "objective": "rate" if rate_only else "rate-distortion",
         **({"ranks": ranks.world_size, "crops_per_step": cfg.batch_size * ranks.world_size}
            if ranks.distributed else {})})

    def checkpoint(step: int) -> None:
        """Rank 0 writes last.pt and model.pt; the other ranks hold the same weights and write nothing."""
        if not ranks.main:
            return
        extra = {"world_size": ranks.world_size} if ranks.distributed else {}
        save_checkpoint(resume, model, step=step, optimizer=optimizer.state_dict(), train_config=cfg.to_dict(),
                        init_sha256=init_sha256, **extra)
        model.update()
        save_checkpoint(out / "model.pt", model, step=step)

    def rd_batch() -> RDLoss:
        x = sampler.batch(cfg.batch_size, uint8=True).to(device, non_blocking=True).float().div_(255.0)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        rate = torch.empty(cfg.batch_size).uniform_(rate_min, rate_max)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out_ = forward(x, rate.to(device), synthesize=not rate_only)
        return rate_distortion(out_, x, model.gain.lmbda(rate))

    seen = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}  # summed on the device: one sync per log line

    def add(rd: RDLoss) -> None:
        for k in ("loss", "bpp", "mse"):
            seen[k] += getattr(rd, k).detach().float()
        seen["n"] += 1

    def log_seen(step: int) -> None:
        """Log the means over the steps since the last log line, and start a new window."""
        n = seen.pop("n")
        rec = mean_over_ranks({k: float(v) / n for k, v in seen.items()}, ranks, device)
        if not math.isnan(rec["mse"]):
            rec["psnr"] = psnr_from_mse(max(rec["mse"], 1e-10), peak=1.0)
        elapsed = time.time() - t0
        log({"step": step, **rec, "lr": get_lr(cfg, step), "elapsed_s": round(elapsed, 1)})
        seen.update(loss=0.0, bpp=0.0, mse=0.0, n=0)

    # --- the loop -------------------------------------------------------------------------
    def clock() -> float:
        """Seconds since the start; with a time budget, rank 0's on every rank, so all take the
        same learning rate and stop after the same step."""
        return from_rank0(time.time() - t0, ranks, device) if cfg.max_seconds else time.time() - t0

    t0 = last_ckpt = time.time()
    step = start_step
    while step < cfg.steps:
        now = clock()
        if cfg.max_seconds and now > cfg.max_seconds:
            break
        for group in optimizer.param_groups:
            group["lr"] = get_lr(cfg, step)
        rd = rd_batch()
        optimizer.zero_grad(set_to_none=True)
        rd.loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        step += 1
        add(rd)
        if step % cfg.log_every == 0:
            log_seen(step)
        if time.time() - last_ckpt > cfg.checkpoint_every_s:
            checkpoint(step)
            last_ckpt = time.time()
    # The final step is always logged (the DVC stage's plots need at least one point): the steps
    # since the last log line, or, when there was nothing left to train, one batch measured.
    if step == start_step:
        with torch.no_grad():
            add(rd_batch())
    if seen["n"]:
        log_seen(step)
    digests = gather_digests(model, ranks, device) if ranks.distributed else []
    if len(set(digests)) > 1:
        raise RuntimeError(f"the ranks ended with different weights (sha256 {[d[:12] for d in digests]}); "
                           "nothing was saved at the end")
    checkpoint(step)
    barrier(ranks, device)  # model.pt is written when train() returns, on every rank
    log({"event": "done", "step": step, "elapsed_s": round(time.time() - t0, 1),
         **({"ranks_sha256": digests} if digests else {})})
    return out / "model.pt"

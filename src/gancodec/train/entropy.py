"""The entropy-model stage: a channel-conditional context trained by rate alone over frozen transforms.

Everything upstream of the entropy parameters is frozen (g_a, the gains, h_a, h_s, the
checkerboard), so it is computed once per base model and cached (:func:`build_cache`): for each
256 x 256 training crop at a random rate point, the gained latent ``y`` and the hyperprior's raw
means and scales of it. A training step then runs only the context model
(:class:`~gancodec.models.channel_context.ChannelContext`) on a batch of 16 x 16 latents: 1/256 of
the pixels, which is why a CPU can afford many steps.

The loss is the coder's rate of y: the bits of ``round(y - mean)`` under the binned Gaussian,
exact in the scales; for the means (where rounding has no gradient) the bits are interpolated
towards the neighbouring integer as the residual moves off its own. Unlike the uniform-noise
proxy of joint training, it does not overweight the many small-scale positions that code in
almost no bits.

``python -m gancodec.train.entropy --base W --images LIST --cache DIR --run DIR --out W2`` (the
DVC stage ``train_entropy`` runs it through stages/train_entropy.py). Resumable: ``RUN/last.pt``
holds the context, the optimiser and the step; a changed base model or run-defining setting
starts afresh.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.download import sha256_file
from ..entropy.gaussian import GaussianConditional
from ..fsutil import atomic_write_bytes
from ..models import HyperpriorCodec
from .checkpoint import load_checkpoint, model_from_checkpoint
from .crops import CropSampler, list_images
from .schedule import warmup_cosine

CONTEXT = "channel-checkerboard"
SHARD = 64  # crops per cache file
_LIKELIHOOD = GaussianConditional()  # no parameters: the binned Gaussian as a function


@dataclass
class EntropyTrainConfig:
    base: str = ""  # the weights whose transforms stay frozen
    images: list[str] = field(default_factory=list)  # image folders or CSV lists (a `path` column)
    cache_dir: str = "runs/entropy-cache"
    run_dir: str = "runs/entropy"
    crops: int = 2048  # cached 256 x 256 crops (each at one random rate point)
    crop: int = 256
    rate_min: float = 0.0
    rate_max: float = 7.0
    steps: int = 20000  # total steps of the run (resumes count); the LR schedule follows steps
    max_seconds: float = 0.0  # stop early after this long (0: no limit); never changes the schedule
    batch_size: int = 16
    lr: float = 5e-4
    lr_final_fraction: float = 0.1
    warmup: int = 100
    seed: int = 0
    fresh: bool = False  # start a new channel context even when the base has one
    #: the parts trained, by rate alone: channel_context, and optionally context (the checkerboard)
    #: and h_s (the hyper-synthesis: then the hyperprior's parameters are recomputed every step)
    parts: tuple[str, ...] = ("channel_context",)
    log_every: int = 50
    compare_every: int = 5  # steps between measurements of the base model's bits (the saving)
    checkpoint_every_s: float = 120.0

    #: settings that extend a run rather than define it (a checkpoint made under other values is resumed)
    EXTENDS = ("steps", "max_seconds", "fresh", "log_every", "compare_every", "checkpoint_every_s", "run_dir", "cache_dir", "images")

    def defining(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if k not in self.EXTENDS and k != "base"}


def lr_at(cfg: EntropyTrainConfig, step: int) -> float:
    """Linear warm-up, then cosine from lr to lr * lr_final_fraction at cfg.steps (steps only)."""
    return warmup_cosine(step, cfg.lr, cfg.steps, cfg.warmup, cfg.lr_final_fraction)


def with_channel_context(base: HyperpriorCodec, fresh: bool = False) -> HyperpriorCodec:
    """The base model with a channel context: its own if it has one (unless ``fresh``), else a
    new one, which codes exactly as the base does."""
    if base.channel_context is not None and not fresh:
        return base
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("channel_context.")}
    config = {**base.config.to_dict(), "context": CONTEXT}
    return model_from_checkpoint({"model_config": config, "state_dict": state}, "base", {"context": CONTEXT})


# --- the cache -----------------------------------------------------------------------------

def build_cache(model: HyperpriorCodec, cfg: EntropyTrainConfig, base_sha256: str,
                log: Callable[[dict], None] = print) -> Path:
    """Cache y, z_hat and the hyperprior's raw (means, scales) of ``cfg.crops`` crops under
    ``cfg.cache_dir``; kept when it was made from the same base, crops and rates."""
    folder = Path(cfg.cache_dir)
    key = {"version": 2, "base_sha256": base_sha256, "crops": cfg.crops, "crop": cfg.crop, "rate_min": cfg.rate_min,
           "rate_max": cfg.rate_max, "seed": cfg.seed}
    meta = folder / "cache.json"
    if meta.exists() and json.loads(meta.read_text()).get("key") == key:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("shard-*.pt"):
        old.unlink()
    meta.unlink(missing_ok=True)
    paths = list_images(cfg.images)
    if not paths:
        raise ValueError(f"no training images in {cfg.images}")
    sampler = CropSampler(paths, cfg.crop, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = model.eval()
    t0 = time.time()
    with torch.no_grad():
        for first in range(0, cfg.crops, SHARD):
            n = min(SHARD, cfg.crops - first)
            x = sampler.batch(n)
            rate = torch.empty(n).uniform_(cfg.rate_min, cfg.rate_max, generator=gen)
            ys, zs, ms, ss = [], [], [], []
            for i in range(0, n, 8):
                y = model.g_a(x[i:i + 8]) * model.gain.gain(rate[i:i + 8])
                z_hat = model.z_prior.quantize(model.h_a(y)).float()
                means, scales = model.h_s(z_hat).chunk(2, 1)
                ys.append(y), zs.append(z_hat), ms.append(means), ss.append(scales)
            shard = {"y": torch.cat(ys), "z_hat": torch.cat(zs), "means": torch.cat(ms), "scales": torch.cat(ss),
                     "rate": rate}
            torch.save(shard, folder / f"shard-{first // SHARD:04d}.pt")
            log({"event": "cache", "crops": first + n, "of": cfg.crops, "elapsed_s": round(time.time() - t0, 1)})
    atomic_write_bytes(meta, json.dumps({"key": key}, indent=2).encode())
    return folder


def load_cache(folder: Path) -> dict[str, torch.Tensor]:
    shards = [torch.load(p, weights_only=True) for p in sorted(Path(folder).glob("shard-*.pt"))]
    return {k: torch.cat([s[k] for s in shards]) for k in shards[0]}


# --- the loss ------------------------------------------------------------------------------

def _bits(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """-log2 P(q) for integer residuals q under a zero-mean Gaussian of ``scales``, binned: the
    likelihood the model trains with (GaussianConditional), evaluated at the coded residual."""
    return -torch.log2(_LIKELIHOOD(q, 0.0, scales))


def smooth_bits(y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The bits of coding ``round(y - means)``, differentiable: in the scales, exactly the coded
    bits; in the means, the coded bits interpolated towards the next integer by the residual's
    distance from its own (the expected bits when the mean is jittered by under half a step)."""
    r = y - means
    k = torch.round(r).detach()
    f = r - k  # in [-0.5, 0.5]
    neighbour = k + torch.sign(f.detach())
    fixed = scales.detach()
    return _bits(k, scales) + f.abs() * (_bits(neighbour, fixed) - _bits(k, fixed))


def rate_bits(model: HyperpriorCodec, y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor,
              baseline: tuple | None = None):
    """The smooth bits (the loss) and the coded bits of a batch of latents under the model's
    entropy parameters (from the hyperprior's ``means``, ``scales``), and with ``baseline`` =
    (checkerboard, means, scales) of the base model the coded bits under those (else None), each
    summed over the batch."""
    final_means, final_scales = model.channel_context(y, means, scales, model.context)
    with torch.no_grad():
        coded = _bits(torch.round(y - final_means), final_scales).sum()
        base = None
        if baseline is not None:
            context, base_means, base_scales = baseline
            cb_means, cb_scales = context(torch.round(y - base_means) + base_means, base_means, base_scales)
            base = _bits(torch.round(y - cb_means), cb_scales).sum()
    return smooth_bits(y, final_means, final_scales).sum(), coded, base


# --- the loop ------------------------------------------------------------------------------

def train_entropy(cfg: EntropyTrainConfig, log: Callable[[dict], None] | None = None) -> tuple[HyperpriorCodec, int]:
    """Train the base's channel context until ``cfg.steps`` (or ``cfg.max_seconds``); return the
    model (the base with the trained context) and the run's total steps."""
    log = log or (lambda rec: print(json.dumps(rec), flush=True))
    torch.manual_seed(cfg.seed)
    base_sha256 = sha256_file(cfg.base)
    model = with_channel_context(model_from_checkpoint(load_checkpoint(cfg.base), cfg.base), cfg.fresh)
    unknown = set(cfg.parts) - {"channel_context", "context", "h_s"}
    if unknown or "channel_context" not in cfg.parts:
        raise ValueError(f"entropy parts {list(cfg.parts)}: train channel_context, and optionally context and h_s")
    model.requires_grad_(False)
    base_context = copy.deepcopy(model.context)  # the base's checkerboard: what the saving is measured against
    trained = {name: getattr(model, name) for name in cfg.parts}
    for part in trained.values():
        part.requires_grad_(True)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    resume = run / "last.pt"
    optimizer = torch.optim.Adam([p for part in trained.values() for p in part.parameters()], lr=cfg.lr)
    step, origin = 0, f"new run from {cfg.base}"
    if resume.exists():
        ckpt = torch.load(resume, weights_only=True)
        saved_config = {"parts": ["channel_context"], **ckpt.get("config", {})}
        if ckpt.get("base_sha256") == base_sha256 and saved_config == cfg.defining():
            saved = ckpt.get("parts") or {"channel_context": ckpt["channel_context"]}  # (first checkpoints: no "parts")
            for name, part in trained.items():
                part.load_state_dict(saved[name])
            optimizer.load_state_dict(ckpt["optimizer"])
            step, origin = int(ckpt["step"]), f"resumed {resume} at step {ckpt['step']}"
        else:
            origin += f" (not resuming {resume}: another base model or other settings)"
    cache = load_cache(build_cache(model, cfg, base_sha256, log))
    n = cache["y"].shape[0]
    pixels = cfg.batch_size * cfg.crop * cfg.crop
    log({"event": "start", "origin": origin, "crops": n, "parts": list(trained),
         "params": sum(p.numel() for part in trained.values() for p in part.parameters())})

    def save() -> None:
        buf = io.BytesIO()
        torch.save({"parts": {name: part.state_dict() for name, part in trained.items()}, "optimizer": optimizer.state_dict(),
                    "step": step, "base_sha256": base_sha256, "config": cfg.defining()}, buf)
        atomic_write_bytes(resume, buf.getvalue())

    gen = torch.Generator().manual_seed(cfg.seed + step)
    t0 = last_save = time.time()
    window = {"bpp": 0.0, "compared_bpp": 0.0, "base_bpp": 0.0, "n": 0}
    while step < cfg.steps and not (cfg.max_seconds and time.time() - t0 > cfg.max_seconds):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        compare = (step + 1) % cfg.compare_every == 0  # the base model's bits cost a third of a step
        if "h_s" in trained:  # the hyperprior's parameters move with h_s
            means, scales = model.h_s(cache["z_hat"][idx]).chunk(2, 1)
        else:
            means, scales = cache["means"][idx], cache["scales"][idx]
        baseline = (base_context, cache["means"][idx], cache["scales"][idx]) if compare else None
        bits, coded_bits, base_bits = rate_bits(model, cache["y"][idx], means, scales, baseline)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, step)
        optimizer.zero_grad(set_to_none=True)
        (bits / pixels).backward()
        optimizer.step()
        step += 1
        window["bpp"] += float(coded_bits) / pixels
        window["n"] += 1
        if compare:
            window["compared_bpp"] += float(coded_bits) / pixels
            window["base_bpp"] += float(base_bits) / pixels
        if step % cfg.log_every == 0 or step == cfg.steps:
            rec = {"step": step, "bpp": round(window["bpp"] / window["n"], 5)}
            if window["base_bpp"]:  # on the compared steps: what the channel context saves
                rec["saving_pct"] = round(100 * (1 - window["compared_bpp"] / window["base_bpp"]), 3)
            log({**rec, "lr": lr_at(cfg, step), "elapsed_s": round(time.time() - t0, 1)})
            window = {"bpp": 0.0, "compared_bpp": 0.0, "base_bpp": 0.0, "n": 0}
        if time.time() - last_save > cfg.checkpoint_every_s:
            save()
            last_save = time.time()
    save()
    log({"event": "done", "step": step, "elapsed_s": round(time.time() - t0, 1)})
    return model.eval(), step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = EntropyTrainConfig()
    p.add_argument("--base", required=True)
    p.add_argument("--images", nargs="+", required=True, help="image folders or CSV lists")
    p.add_argument("--out", required=True, help="the exported weights (base + trained context)")
    for name in ("cache_dir", "run_dir", "crops", "rate_min", "rate_max", "steps", "max_seconds", "batch_size",
                 "lr", "seed", "log_every"):
        p.add_argument("--" + name.replace("_", "-").removesuffix("-dir"), dest=name,
                       type=type(getattr(defaults, name)), default=getattr(defaults, name))
    p.add_argument("--parts", nargs="+", default=list(defaults.parts), help="channel_context [context] [h_s]")
    a = vars(p.parse_args(argv))
    out = a.pop("out")
    a["parts"] = tuple(a["parts"])
    cfg = EntropyTrainConfig(**a)
    from ..weights import export_weights

    model, steps = train_entropy(cfg)
    print(json.dumps({"sha256": export_weights(model, out, step=steps), "out": out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

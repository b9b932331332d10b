"""Stage-2 training: the realism decoder against a conditional patch discriminator.

The stage-1 model (encoder, hyperprior, entropy model, gains) is frozen, so every bitstream
stays bit-identical; only a copy of the synthesis transform g_s (initialised from the fidelity
decoder) and the discriminator learn. The latents are quantised exactly as the coder does
(hard rounding around the predicted means), so the generator trains on what it will decode.
"""

from __future__ import annotations

import copy
import io
import json
import math
import time
from pathlib import Path
from typing import Callable

import torch

from ..fsutil import atomic_write_bytes
from ..train.checkpoint import load_checkpoint, model_from_checkpoint
from ..train.crops import CropSampler, list_images
from ..device import bf16_autocast_pays, resolve_device as pick_device
from ..eval import metrics
from ..weights import SHIPPED_WEIGHTS, model_id_of
from .config import RealismConfig
from .discriminator import ConditionalPatchDiscriminator
from .losses import discriminator_loss, generator_loss
from ..weights.realism import export_realism


def quantised_latents(base, x: torch.Tensor, rate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(y_hat, decoder input) of a batch, as the coder makes them: round(y - mean) + mean."""
    y_hat = base.quantise(base.g_a(x) * base.gain.gain(rate))
    return y_hat, y_hat * base.gain.inverse_gain(rate)


def _lpips_or_none(device: torch.device):
    """LPIPS (AlexNet) as a loss when both its weights are on this machine, else None."""
    found, _ = metrics.lpips_weights()
    if not found:
        return None
    net = metrics._build_lpips_alex(*found).to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def train_realism(cfg: RealismConfig, log: Callable[[dict], None] | None = None) -> Path:
    """Train until ``cfg.steps`` or ``cfg.max_seconds``; return the path of ``realism.pt``."""
    log = log or (lambda rec: print(json.dumps(rec), flush=True))
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)

    base_path = Path(cfg.base) if cfg.base else SHIPPED_WEIGHTS
    base_id = model_id_of(base_path.read_bytes())
    base = model_from_checkpoint(load_checkpoint(base_path), str(base_path)).to(device).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    gen = copy.deepcopy(base.g_s).train()
    for p in gen.parameters():
        p.requires_grad_(True)
    disc = ConditionalPatchDiscriminator(base.config.M).to(device).train()
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr or cfg.lr, betas=(0.5, 0.999))

    resume, step, origin = out / "last.pt", 0, f"fidelity decoder of {base_path}"
    if resume.exists():
        ck = torch.load(resume, map_location="cpu", weights_only=True)
        if ck["base_model_id"] != base_id:
            raise ValueError(f"{resume} was trained on model {ck['base_model_id']}, not {base_id}; use another --out")
        gen.load_state_dict(ck["generator"]); disc.load_state_dict(ck["discriminator"])
        opt_g.load_state_dict(ck["opt_g"]); opt_d.load_state_dict(ck["opt_d"])
        step, origin = int(ck["step"]), f"resumed {resume} at step {ck['step']}"
    elif cfg.init_from:
        ck = torch.load(cfg.init_from, map_location="cpu", weights_only=True)
        gen.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
        origin = f"realism weights {cfg.init_from}"
    lpips = _lpips_or_none(device) if cfg.w_lpips else None
    sampler = CropSampler(list_images(cfg.data_dirs), cfg.crop, seed=cfg.seed + step)
    log({"event": "start", "stage": 2, "origin": origin, "base_model_id": base_id, "device": str(device),
         "images": len(sampler.images), "lpips": lpips is not None,
         "params": {"generator": sum(p.numel() for p in gen.parameters()), "discriminator": sum(p.numel() for p in disc.parameters())}})
    g_step = torch.compile(gen) if cfg.compile else gen
    frozen = [t.detach().clone() for t in base.state_dict().values()]

    rate_max = base.num_rates - 1 if cfg.rate_max < 0 else min(cfg.rate_max, base.num_rates - 1)
    adversarial = bool(cfg.w_adv or cfg.w_fm)  # without both, no discriminator is trained (a perceptual decoder)

    def checkpoint(at: int) -> tuple[Path, str]:
        state = {"base_model_id": base_id, "step": at, "config": cfg.to_dict(), "generator": gen.state_dict(),
                 "discriminator": disc.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(resume, buf.getvalue())
        return out / "realism.pt", export_realism(gen, base_id, out / "realism.pt", step=at, base=str(base_path),
                                                  qualities=f"1-{rate_max + 1:g}", config=cfg.to_dict())

    t0 = last = time.time()
    seen: dict[str, torch.Tensor] = {}  # summed on the device: one sync per log line
    counts: dict[str, int] = {}
    amp = cfg.amp and bf16_autocast_pays(device)
    while step < cfg.steps and not (cfg.max_seconds and time.time() - t0 > cfg.max_seconds):
        x = sampler.batch(cfg.batch_size, uint8=True).to(device, non_blocking=True).float().div_(255.0)
        rate = torch.empty(cfg.batch_size, device=device).uniform_(0, rate_max)
        with torch.no_grad():
            y_hat, y_in = quantised_latents(base, x, rate)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            x_hat = g_step(y_in)
        rec = {}
        if adversarial:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                d_loss = discriminator_loss(disc(x, y_hat), disc(x_hat.detach(), y_hat))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            rec["d_loss"] = d_loss.detach().float()
        if step >= cfg.d_warmup_steps or not adversarial:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                real, fake = (disc(x, y_hat), disc(x_hat, y_hat)) if adversarial else (None, None)
                g = generator_loss(x_hat, x, real, fake, w_adv=cfg.w_adv, w_mse=cfg.w_mse, w_ms_ssim=cfg.w_ms_ssim,
                                   w_fm=cfg.w_fm, lpips=lpips, w_lpips=cfg.w_lpips, w_artifact=cfg.w_artifact)
            opt_g.zero_grad(set_to_none=True)
            g.loss.backward()
            torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
            opt_g.step()
            rec.update(g_loss=g.loss, adv=g.adv, mse=g.mse, ms_ssim_loss=g.ms_ssim, fm=g.fm, artifact=g.artifact)
            rec = {k: v.detach().float() for k, v in rec.items()}
        step += 1
        for k, v in rec.items():
            seen[k] = seen.get(k, 0.0) + v
            counts[k] = counts.get(k, 0) + 1  # generator terms start after the warm-up
        if step % cfg.log_every == 0:
            avg = {k: float(v) / counts[k] for k, v in seen.items()}
            if "mse" in avg:
                avg["psnr"] = metrics.psnr_from_mse(max(avg["mse"], 1e-10), peak=1.0)
            log({"step": step, **avg, "elapsed_s": round(time.time() - t0, 1)})
            seen, counts = {}, {}
        if time.time() - last > cfg.checkpoint_every_s:
            checkpoint(step)
            last = time.time()
    path, digest = checkpoint(step)
    if any(not torch.equal(a, b) for a, b in zip(frozen, base.state_dict().values())):
        raise RuntimeError("stage 2 changed the frozen stage-1 model; the bitstream would no longer match")
    log({"event": "done", "step": step, "realism": str(path), "sha256": digest, "elapsed_s": round(time.time() - t0, 1)})
    return path

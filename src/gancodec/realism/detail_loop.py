"""Stage 2 on a CPU budget: a residual detail generator over cached fidelity decodes.

The stage-1 model is frozen, so everything it computes for a training crop is computed once and
cached (:func:`build_cache`): the quantised decoder input ``y`` (after the inverse gain, as g_s
sees it) and the fidelity decode ``x_fid``, float16, in shards of 32 crops of 256 x 256 at
rate points drawn from ``[rate_min, rate_max]`` (qualities 1-2 by default: ~0.08-0.25 bpp, where
the fidelity decode is smoothest and a discriminator has something to see). Training
(:func:`train_detail`) then runs only the small generator of :mod:`gancodec.models.detail` and
a patch discriminator, on 128 x 128 windows of those crops away from their edges:

    x_real = x_fid + G(x_fid, y, position noise)

Losses: ``w_mse`` x MSE to the original (so the detail lines up with what the fidelity decoder
lost), ``w_tex`` x a sliced-Wasserstein distance between the 7x7 patch distributions of each
Laplacian band of ``x_real`` and of the original, per image, with fresh random directions every
step (a texture loss in the sense of Heitz et al. 2021, on pyramid bands instead of VGG
features), and ``w_adv`` x the non-saturating GAN loss of a conditional patch discriminator
(which trains alone, G frozen, for the first ``d_warmup_steps``: a run continuing a trained G
does not drift towards the MSE optimum while its fresh discriminator catches up).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..device import bf16_autocast_pays
from ..fsutil import atomic_write_bytes
from ..models.detail import DetailConfig, DetailGenerator
from ..models.registry import model_from_checkpoint
from ..weights import SHIPPED_WEIGHTS, load_checkpoint, model_id_of
from ..weights.realism import export_detail
from .discriminator import ConditionalPatchDiscriminator
from .losses import discriminator_loss

SHARD = 32  # crops per cache shard
CACHE_CROP = 256
EDGE = 32  # pixels of a cached crop never used as a training window (g_s border effects)


@dataclass
class DetailTrainConfig:
    data_dirs: list[str] = field(default_factory=list)
    cache_dir: str = "runs/realism-cache"
    out_dir: str = "runs/realism"
    base: str | None = None
    init_from: str | None = None  # a realism file whose generator to start from (any base model)
    crops: int = 768  # cached 256x256 crops
    rate_min: float = 0.0  # rate points (quality - 1) of the cached crops
    rate_max: float = 1.0
    steps: int = 4000
    max_seconds: float = 0.0
    batch_size: int = 4
    window: int = 96  # training window (multiple of 16, <= 256 - 2 * EDGE)
    lr: float = 2e-4
    d_lr: float = 2e-4
    w_mse: float = 100.0
    w_tex: float = 1.0
    w_adv: float = 0.0  # off by default: on 2 shared cores a D pass costs more than G's step
    d_warmup_steps: int = 200  # with w_adv > 0: the discriminator trains alone first (the generator frozen)
    d_width: int = 32
    tex_levels: int = 3
    tex_positions: int = 256  # patch positions per image and band
    tex_directions: int = 32
    width: int = 32
    blocks: int = 3
    noise_channels: int = 4  # 0: a deterministic filter of the fidelity decode (MSE-only runs)
    rate_input: bool = False  # G sees the rate point (for runs over many rates)
    mse_log: bool = False  # the MSE term as the mean of each crop's log MSE (every rate weighs alike, as in dB)
    seed: int = 0
    threads: int = 0
    checkpoint_every_s: float = 240.0
    log_every: int = 25
    amp: bool = True  # bf16 autocast for G and D where it pays (CUDA, a CPU with AMX); losses in float32

    def to_dict(self) -> dict:
        return asdict(self)


def _base(cfg: DetailTrainConfig):
    path = Path(cfg.base) if cfg.base else SHIPPED_WEIGHTS
    base = model_from_checkpoint(load_checkpoint(path), str(path)).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    return path, model_id_of(path.read_bytes()), base


def decoder_digest(model) -> str:
    """sha256 of what a generator over the fidelity decode is trained to follow: g_s and the gains.

    A base model whose entropy model changed (the train_entropy stage, growing every day) keeps
    its decoder, so a run over it resumes; its cache, keyed by the whole model, is remade."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if name.split(".")[0] in ("g_s", "gain"):
            h.update(name.encode() + b"\0" + t.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


def data_digest(paths: list[Path]) -> dict:
    """The training images' sha256, folded into one digest (and their count)."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda q: q.name):
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return {"images": len(paths), "sha256": h.hexdigest()}


def build_cache(cfg: DetailTrainConfig, log: Callable[[dict], None] | None = None, replace_stale: bool = False) -> Path:
    """Fill ``cfg.cache_dir`` with shards up to ``cfg.crops`` crops (resumable: existing shards stay).

    A cache made for another base model, data or rate range is an error, or with
    ``replace_stale`` (the pipeline stage, which owns the folder) emptied first."""
    from ..train.crops import CropSampler, list_images

    log = log or (lambda rec: print(json.dumps(rec), flush=True))
    out = Path(cfg.cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_path, base_id, base = _base(cfg)
    paths = list_images(cfg.data_dirs)
    meta = {"base_model_id": base_id, "rate_min": cfg.rate_min, "rate_max": cfg.rate_max, "crop": CACHE_CROP,
            "data": data_digest(paths)}
    meta_path = out / "cache.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old != meta and not replace_stale:
            raise ValueError(f"{out}: cache made for {old}, not {meta}; use another cache_dir")
        if old != meta:
            for f in out.glob("shard-*.pt"):
                f.unlink()
            log({"event": "cache", "replaced": "made for another base model, data or rate range"})
    atomic_write_bytes(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
    shards, per = -(-cfg.crops // SHARD), min(SHARD, cfg.crops)
    sampler = None
    t0 = time.time()
    for k in range(shards):
        shard = out / f"shard-{k:04d}.pt"
        if shard.exists():
            continue
        if sampler is None:
            sampler = CropSampler(paths, CACHE_CROP, seed=cfg.seed)
        sampler.rng = np.random.default_rng([cfg.seed, k])  # a shard's crops do not depend on the others
        x = sampler.batch(per, uint8=True)
        rate = torch.from_numpy(sampler.rng.uniform(cfg.rate_min, cfg.rate_max, per).astype(np.float32))
        with torch.no_grad():
            xf = x.float() / 255
            y_hat = base.quantise(base.g_a(xf) * base.gain.gain(rate))
            y = y_hat * base.gain.inverse_gain(rate)
            x_fid = torch.cat([base.g_s(y[i:i + 8]) for i in range(0, per, 8)]).clamp(0, 1)
        buf = io.BytesIO()
        torch.save({"x": x, "x_fid": x_fid.half(), "y": y.half(), "rate": rate}, buf)
        atomic_write_bytes(shard, buf.getvalue())
        log({"event": "cache", "shard": k, "of": shards, "elapsed_s": round(time.time() - t0, 1)})
    return out


def load_cache(cache_dir: str | Path, base_id: str) -> dict[str, torch.Tensor]:
    d = Path(cache_dir)
    meta = json.loads((d / "cache.json").read_text())
    if meta["base_model_id"] != base_id:
        raise ValueError(f"{d}: cache made with model {meta['base_model_id']}, not {base_id}")
    shards = [torch.load(p, map_location="cpu", weights_only=True) for p in sorted(d.glob("shard-*.pt"))]
    if not shards:
        raise ValueError(f"{d}: no cache shards; run build_cache first")
    return {k: torch.cat([s[k] for s in shards]) for k in shards[0]}


# ----------------------------------------------------------------------------- texture loss
_K = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = _K.to(x)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def laplacian_bands(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The first ``levels`` Laplacian bands (the same pyramid as :mod:`gancodec.eval.realism_metrics`)."""
    bands = []
    for _ in range(levels):
        low = _blur(x)[:, :, ::2, ::2]
        up = torch.zeros_like(x)
        up[:, :, ::2, ::2] = low
        bands.append(x - _blur(up) * 4)
        x = low
    return bands


def texture_loss(fake: torch.Tensor, real: torch.Tensor, levels: int = 3, positions: int = 256,
                 directions: int = 32, gen: torch.Generator | None = None) -> torch.Tensor:
    """Per image and Laplacian band: sliced W1 between the 7x7x3 patch sets of ``fake`` and
    ``real`` at ``positions`` random places (normalised by the real bands' per-channel
    deviation), with ``directions`` random unit projections; averaged over the bands."""
    total = fake.new_zeros(())
    for bf, br in zip(laplacian_bands(fake, levels), laplacian_bands(real, levels)):
        b, c, h, w = br.shape
        std = br.detach().std(dim=(0, 2, 3), keepdim=True) + 1e-3
        n = (h - 6) * (w - 6)
        pick = torch.randperm(n, generator=gen)[: min(positions, n)]
        top = (pick // (w - 6)) * w + pick % (w - 6)  # top-left corner in the flattened band
        off = (torch.arange(7)[:, None] * w + torch.arange(7)[None, :]).reshape(-1)
        idx = (top[:, None] + off[None, :]).reshape(-1).to(br.device)  # P*49
        pf = (bf / std).flatten(2)[:, :, idx].reshape(b, c, -1, 49).permute(0, 2, 1, 3).reshape(b, -1, c * 49)
        pr = (br / std).flatten(2)[:, :, idx].reshape(b, c, -1, 49).permute(0, 2, 1, 3).reshape(b, -1, c * 49)
        d = torch.randn(c * 49, directions, generator=gen).to(pf)
        d = d / d.norm(dim=0, keepdim=True)
        sf = torch.sort(pf @ d, dim=1).values
        sr = torch.sort(pr @ d, dim=1).values
        total = total + (sf - sr).abs().mean()
    return total / levels


# ----------------------------------------------------------------------------- training
def _float(outs: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    return [[t.float() for t in scale] for scale in outs]


def _windows(cache: dict, idx: torch.Tensor, window: int, rng: np.random.Generator):
    """Crops of the cache at random 16-px-aligned offsets, away from the crop's edge; y with a
    1-latent margin."""
    lo, hi = EDGE // 16, (CACHE_CROP - EDGE - window) // 16
    xs, xfs, ys = [], [], []
    for i in idx.tolist():
        a, b = (int(v) for v in rng.integers(lo, hi + 1, 2))
        p, q, s = a * 16, b * 16, window // 16
        xs.append(cache["x"][i, :, p:p + window, q:q + window])
        xfs.append(cache["x_fid"][i, :, p:p + window, q:q + window])
        ys.append(cache["y"][i, :, a - 1:a + s + 1, b - 1:b + s + 1])
    return torch.stack(xs).float() / 255, torch.stack(xfs).float(), torch.stack(ys).float()


#: settings that do not change what a run makes: a resumed run may change them
_RUN_ONLY = {"steps", "max_seconds", "threads", "checkpoint_every_s", "log_every", "out_dir", "cache_dir", "data_dirs", "crops", "base",
             "amp"}


def train_detail(cfg: DetailTrainConfig, log: Callable[[dict], None] | None = None,
                 on_log: Callable[[dict], None] | None = None, restart_stale: bool = False) -> Path:
    """Train the detail generator on the cache until ``steps`` or ``max_seconds``; return ``realism.pt``.

    ``out_dir/last.pt`` is resumed; with ``restart_stale`` one made for another base model or
    other settings (anything but the step budget and how the run is logged) is started afresh
    instead of being an error."""
    from ..train.crops import list_images

    log = log or (lambda rec: print(json.dumps(rec), flush=True))
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    base_path, base_id, base = _base(cfg)
    cache = load_cache(cfg.cache_dir, base_id)
    data = json.loads((Path(cfg.cache_dir) / "cache.json").read_text())["data"]
    n = len(cache["x"])
    gen = DetailGenerator(DetailConfig(latent_channels=base.config.M, width=cfg.width, blocks=cfg.blocks,
                                       noise_channels=cfg.noise_channels, rate_input=int(cfg.rate_input)))
    disc = ConditionalPatchDiscriminator(base.config.M, width=cfg.d_width, scales=1)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=(0.5, 0.999))
    resume, step = out / "last.pt", 0
    decoder = decoder_digest(base)

    def made_for_this_base(ck: dict) -> bool:  # the same model, or one with the same decoder
        return ck["base_model_id"] == base_id or ck.get("decoder_sha256") == decoder

    if resume.exists() and restart_stale:
        ck = torch.load(resume, map_location="cpu", weights_only=True)
        same = {k: v for k, v in ck.get("config", {}).items() if k not in _RUN_ONLY} == \
            {k: v for k, v in cfg.to_dict().items() if k not in _RUN_ONLY}
        if not made_for_this_base(ck) or not same:
            resume.unlink()
            log({"event": "restart", "why": "last.pt was made for another base model or other settings"})
    if resume.exists():
        ck = torch.load(resume, map_location="cpu", weights_only=True)
        if not made_for_this_base(ck):
            raise ValueError(f"{resume} was trained on model {ck['base_model_id']}, not {base_id}; use another out_dir")
        gen.load_state_dict(ck["generator"]); disc.load_state_dict(ck["discriminator"])
        opt_g.load_state_dict(ck["opt_g"]); opt_d.load_state_dict(ck["opt_d"])
        step = int(ck["step"])
    elif cfg.init_from:
        ck = torch.load(cfg.init_from, map_location="cpu", weights_only=True)
        if ck.get("arch") != "detail" or DetailConfig.from_dict(ck["detail_config"]) != gen.cfg:
            raise ValueError(f"{cfg.init_from}: not a detail generator of this shape ({gen.cfg}); use init_from: scratch")
        gen.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
    rng = np.random.default_rng([cfg.seed, step])
    tgen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    amp = cfg.amp and bf16_autocast_pays(torch.device("cpu"))

    def bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp)

    log({"event": "start", "stage": "train_realism", "base_model_id": base_id, "crops": n, "step": step, "bf16": amp,
         "params": {"generator": sum(p.numel() for p in gen.parameters()),
                    "discriminator": sum(p.numel() for p in disc.parameters())}})

    def checkpoint(at: int) -> str:
        buf = io.BytesIO()
        torch.save({"base_model_id": base_id, "decoder_sha256": decoder, "step": at, "config": cfg.to_dict(),
                    "generator": gen.state_dict(),
                    "discriminator": disc.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}, buf)
        atomic_write_bytes(resume, buf.getvalue())
        return export_detail(gen, base_id, out / "realism.pt", step=at, base=str(base_path),
                             qualities=f"{cfg.rate_min + 1:g}-{cfg.rate_max + 1:g}", config=cfg.to_dict(), data=data)

    t0 = last = time.time()
    seen: dict[str, float] = {}
    count = 0
    s, adversarial = cfg.window // 16, bool(cfg.w_adv)
    while step < cfg.steps and not (cfg.max_seconds and time.time() - t0 > cfg.max_seconds):
        idx = torch.from_numpy(rng.integers(0, n, cfg.batch_size))
        x, x_fid, y = _windows(cache, idx, cfg.window, rng)
        y_core = y[:, :, 1:1 + s, 1:1 + s]
        off = torch.from_numpy(rng.integers(0, 1 << 20, (2, cfg.batch_size)) * 2)
        noise = gen.noise_for(x_fid, off[0], off[1])
        warmup = adversarial and step < cfg.d_warmup_steps  # the discriminator learns alone; G stays as it is
        with bf16(), torch.set_grad_enabled(not warmup):
            x_real = x_fid + gen(x_fid, y, noise, margin=1, rate=cache["rate"][idx]).float()
        rec = {}
        if adversarial:
            with bf16():
                r_out, f_out = disc(x, y_core), disc(x_real.detach().clamp(0, 1), y_core)
            d_loss = discriminator_loss(_float(r_out), _float(f_out))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            rec["d_loss"] = float(d_loss.detach())
            rec["d_acc"] = 0.5 * float((r_out[0][-1] > 0).float().mean() + (f_out[0][-1] < 0).float().mean())
        mse = F.mse_loss(x_real, x)
        tex = mse.new_zeros(())
        if not warmup:  # the generator's loss (during the warm-up only mse is logged)
            mse_term = (x_real - x).pow(2).mean(dim=(1, 2, 3)).add(1e-10).log().mean() if cfg.mse_log else mse
            if cfg.w_tex:
                tex = texture_loss(x_real, x, cfg.tex_levels, cfg.tex_positions, cfg.tex_directions, tgen)
            loss = cfg.w_mse * mse_term + cfg.w_tex * tex
            if adversarial:
                with bf16():
                    logits = disc(x_real.clamp(0, 1), y_core)[0][-1]
                adv = F.softplus(-logits.float()).mean()
                loss = loss + cfg.w_adv * adv
                rec["adv"] = float(adv.detach())
            rec["loss"] = float(loss.detach())
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
            opt_g.step()
        step += 1
        with torch.no_grad():
            rec.update(mse=float(mse), mse_fid=float(F.mse_loss(x_fid, x)), tex=float(tex),
                       detail_rms=float((x_real - x_fid).pow(2).mean().sqrt()))
        for k, v in rec.items():
            seen[k] = seen.get(k, 0.0) + v
        count += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            avg = {k: v / count for k, v in seen.items()}
            avg["psnr"] = -10 * math.log10(max(avg["mse"], 1e-10))
            avg["psnr_fid"] = -10 * math.log10(max(avg["mse_fid"], 1e-10))
            el = time.time() - t0
            rec_out = {"step": step, **{k: round(v, 5) for k, v in avg.items()}, "elapsed_s": round(el, 1)}
            log(rec_out)
            if on_log:
                on_log(rec_out)
            seen, count = {}, 0
        if time.time() - last > cfg.checkpoint_every_s:
            checkpoint(step)
            last = time.time()
    digest = checkpoint(step)
    log({"event": "done", "step": step, "realism": str(out / "realism.pt"), "sha256": digest,
         "elapsed_s": round(time.time() - t0, 1)})
    return out / "realism.pt"


def parse_args(argv: list[str] | None = None) -> tuple[str, DetailTrainConfig]:
    """The command line's action (cache, train or both) and run config: ``--KEY VALUE`` for each
    config field, ``--KEY`` / ``--no-KEY`` for the switches."""
    import argparse

    d = DetailTrainConfig()
    p = argparse.ArgumentParser(prog="python -m gancodec.realism.detail_loop", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["cache", "train", "both"])
    p.add_argument("--data", nargs="+", default=[])
    for k, v in d.to_dict().items():
        if k != "data_dirs":
            if isinstance(v, bool):  # --amp / --no-amp, as the other CLIs' switches
                p.add_argument("--" + k.replace("_", "-"), action=argparse.BooleanOptionalAction, default=v)
            else:
                p.add_argument("--" + k.replace("_", "-"), type=type(v) if v is not None else str, default=v)
    a = vars(p.parse_args(argv))
    what = a.pop("what")
    return what, DetailTrainConfig(data_dirs=a.pop("data"), **a)


def main(argv: list[str] | None = None) -> None:
    """``python -m gancodec.realism.detail_loop {cache,train} --data DIR... [--KEY VALUE ...]``"""
    what, cfg = parse_args(argv)
    if what in ("cache", "both"):
        build_cache(cfg)
    if what in ("train", "both"):
        train_detail(cfg)


if __name__ == "__main__":
    main()

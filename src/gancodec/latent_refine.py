"""Encoder-side latent search: better latents for the same decoder and the same stream format.

The analysis transform g_a *predicts* latents in one pass; gradient steps on y against the real
objective find better ones for the image at hand. Only the encoder changes: the refined y is
coded like any other, so every decoder (fidelity or realism) reads the stream unchanged.

Two searches live here:

- :func:`repair_small` (always on) for images only a latent or two high or wide. The transforms
  were trained on 128-256 px crops, where zero padding touches a thin border; on a 1x1 or 16x16
  thumbnail that padding is most of what g_s sees, and g_a's latents decode badly (v1.3 turned a
  1x1 pixel (238, 206, 198) into (150, 132, 126), 10 dB). 60 distortion-only steps repair that.
- :func:`search_rd` (opt-in: ``compress(..., refine_steps=N)``, ``gancodec compress --refine N``)
  for any tile. It minimises the training objective itself, bits per pixel + lambda * 255^2 * MSE
  at the stream's rate point, by stochastic Gumbel annealing (SGA, Yang et al. 2020): each
  residual is softly rounded to floor or ceil with probabilities that sharpen as the temperature
  falls, so the search can move latents across rounding boundaries, which straight-through
  rounding cannot. It costs N forward/backward passes of the whole model per tile, so it is for
  archives where encode time is cheap and bytes are not.

Both quantise as the coder does: residuals around the hyperprior's means (and, with a
checkerboard context, the non-anchors around the means the context predicts from the anchors).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .models.coder import LatentCoder
from .entropy.factorized import TAIL as Z_TAIL
from .models import HyperpriorCodec
from .models.checkerboard import anchor_mask
from .models.hyperprior import _round_ste

#: Repair when the latent grid is at most this many latents high or wide ...
SMALL_SIDE = 2
#: ... and holds at most this many latents (bounds the cost: 60 steps of a tiny g_s).
MAX_LATENTS = 4096
STEPS = 60
LR = 0.05

#: search_rd: Adam's step on y / gain (one step size suits every rate point) ...
SEARCH_LR = 0.02
#: ... and the SGA temperature, annealed geometrically from the first to the last step.
TAU_START, TAU_END = 0.5, 0.2
#: Seed of the Gumbel noise, so the same image, quality and steps always give the same stream.
SEED = 0


def is_small(latent_h: int, latent_w: int) -> bool:
    return min(latent_h, latent_w) <= SMALL_SIDE and latent_h * latent_w <= MAX_LATENTS


def repair_small(model: HyperpriorCodec, coder: LatentCoder, y: torch.Tensor, x: torch.Tensor, rate: float,
                 height: int, width: int) -> torch.Tensor:
    """Latents that decode closer to ``x[..., :height, :width]`` (the real pixels) than ``y``.

    ``y``: (1, M, h, w) gained latents of the window ``x`` (1, 3, 16h, 16w) in [0, 1]. Each
    step quantises exactly as ``coder`` will (z rounded and clamped, means and tails from its
    float64 tables); the search runs on y / gain, so one step size suits every rate.
    Returns the best latents seen (``y`` itself when nothing beat it).
    """
    target = x[..., :height, :width].float()
    gain = model.gain.gain(torch.tensor([rate], device=y.device)).float()

    def decode(latent: torch.Tensor) -> torch.Tensor:
        _, _, means, tails = coder.quantisation(latent.detach(), model.h_a)
        means = means.to(latent.device, latent.dtype)
        tails = torch.from_numpy(tails).unsqueeze(0).to(latent.device, latent.dtype)
        q = _round_ste(latent - means)
        q = torch.maximum(torch.minimum(q, tails), -tails)
        return model.synthesis(q + means, rate)[..., :height, :width]

    with torch.enable_grad():
        param = (y.detach().float() / gain).requires_grad_(True)
        opt = torch.optim.Adam([param], lr=LR)
        best, best_loss = y, float("inf")
        for _ in range(STEPS):
            loss = F.mse_loss(decode(param * gain), target)
            if (now := loss.item()) < best_loss:  # the loss of param before this step
                best, best_loss = (param.detach() * gain).to(y.dtype), now
            # autograd.grad, not backward(): the shared model's parameters collect no .grad
            (param.grad,) = torch.autograd.grad(loss, param)
            opt.step()
    return best


def _soft_round(v: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """SGA: floor(v) or ceil(v), drawn by Gumbel-softmax with logits -atanh(distance) / tau, as a
    differentiable mixture of the two."""
    lower = torch.floor(v)
    d = (v - lower).clamp(1e-6, 1 - 1e-6)
    logits = torch.stack([-torch.atanh(d), -torch.atanh(1 - d)], dim=-1) / tau
    u = torch.rand(logits.shape, generator=generator, device=v.device, dtype=v.dtype)
    gumbel = -torch.log((-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10))
    return lower + torch.softmax(logits + gumbel, dim=-1)[..., 1]


def rd_objective(model: HyperpriorCodec, y_core: torch.Tensor, y_window: torch.Tensor, core: tuple[int, int, int, int],
                 target: torch.Tensor, box: tuple[int, int, int, int], valid: tuple[int, int], rate: float,
                 rounding) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, bpp, mse) of coding ``y_core`` inside ``y_window``, with ``rounding`` for residuals.

    ``core`` = (y0, y1, x0, x1): where the tile's latents sit in the window; ``box`` = (r0, r1,
    c0, c1): the tile's pixels in window pixel coordinates, ``valid`` = (rows, cols): how much of
    the window lies inside the image; ``target``: the window's pixels. Bits are the tile's own (z
    and y), as its sub-stream codes them; the squared error is summed over every valid pixel of
    the window (the tile's latents also shape its neighbours' border pixels); both are per pixel
    of ``box``, so the loss is the tile's share of the image's bpp + lambda * 255^2 * MSE.
    """
    h, w = y_core.shape[-2:]
    z = model.h_a(F.pad(y_core, (0, (-w) % 4, 0, (-h) % 4)))
    z_hat = _round_ste(z).clamp(-Z_TAIL, Z_TAIL)
    means, scales = (p[..., :h, :w] for p in model.h_s(z_hat).chunk(2, dim=1))
    y_hat = rounding(y_core - means) + means
    if model.context is not None:  # non-anchors are coded around the means the anchors predict
        means_ctx, scales = model.context(y_hat, means, scales)
        y_hat = torch.where(anchor_mask(h, w, device=y_core.device, dtype=torch.bool), y_hat,
                            rounding(y_core - means_ctx) + means_ctx)
        means = means_ctx
    bits = -(torch.log2(model.y_conditional(y_hat, means, scales)).sum()
             + torch.log2(model.z_prior.likelihood(z_hat)).sum())
    y0, y1, x0, x1 = core
    window = torch.cat([y_window[..., :y0, :], torch.cat([y_window[..., y0:y1, :x0], y_hat, y_window[..., y0:y1, x1:]], dim=-1),
                        y_window[..., y1:, :]], dim=-2)
    rows, cols = valid
    x_hat = model.synthesis(window, rate)[..., :rows, :cols]
    r0, r1, c0, c1 = box
    pixels = (r1 - r0) * (c1 - c0)
    mse = F.mse_loss(x_hat.float(), target[..., :rows, :cols].float(), reduction="sum") / (3 * pixels)
    bpp = bits / pixels
    lmbda = float(model.gain.lmbda(torch.tensor([rate])))
    return bpp + lmbda * 255**2 * mse, bpp, mse


def search_rd(model: HyperpriorCodec, y_window: torch.Tensor, x: torch.Tensor, core: tuple[int, int, int, int],
              box: tuple[int, int, int, int], valid: tuple[int, int], rate: float, steps: int,
              on_step: Callable[[int], None] | None = None) -> torch.Tensor:
    """The tile's latents (1, M, y1 - y0, x1 - x0) after ``steps`` of SGA on the RD objective.

    ``y_window``: gained latents of the window ``x`` (1, 3, H, W) in [0, 1], halo included (the
    halo's latents are held fixed: they shape the tile's border pixels); ``core``, ``box`` and
    ``valid`` as in :func:`rd_objective`; ``on_step(1)`` is called after each step.
    Returns g_a's own latents when the search ends no better on the hard-rounded objective.
    """
    y0, y1, x0, x1 = core
    start = y_window[..., y0:y1, x0:x1].detach()
    gain = model.gain.gain(torch.tensor([rate], device=start.device)).float()
    generator = torch.Generator(device=start.device).manual_seed(SEED)

    def hard_loss(y_core: torch.Tensor) -> float:
        with torch.no_grad():
            return rd_objective(model, y_core, y_window, core, x, box, valid, rate, torch.round)[0].item()

    with torch.enable_grad():
        param = (start.float() / gain).requires_grad_(True)
        opt = torch.optim.Adam([param], lr=SEARCH_LR)
        for t in range(steps):
            tau = TAU_START * (TAU_END / TAU_START) ** (t / max(1, steps - 1))
            loss, _, _ = rd_objective(model, param * gain, y_window.detach(), core, x, box, valid, rate,
                                      lambda v: _soft_round(v, tau, generator))
            # autograd.grad, not backward(): the shared model's parameters collect no .grad
            (param.grad,) = torch.autograd.grad(loss, param)
            opt.step()
            if on_step is not None:
                on_step(1)
    found = (param.detach() * gain).to(start.dtype)
    return found if hard_loss(found) < hard_loss(start) else start

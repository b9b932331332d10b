"""Encoder-side latent refinement for images only a latent or two high or wide.

The transforms were trained on crops of 128-256 px, where their zero padding touches a thin
border. On an image a few pixels across (a 1x1 or 16x16 thumbnail, a 1-latent strip) that
padding is most of what g_s sees, and the latents g_a gives decode badly: v1.3 turned a 1x1
pixel (238, 206, 198) into (150, 132, 126), 10 dB. A few gradient steps on y against the
decoded pixels (quantised as the coder will: rounded around the means the hyperprior predicts,
straight-through) repair that. Only the encoder changes: the stream format and the decoder do
not, and the refined y is coded like any other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .entropy.coder import LatentCoder
from .models import HyperpriorCodec
from .models.hyperprior import _round_ste

#: Refine when the latent grid is at most this many latents high or wide ...
SMALL_SIDE = 2
#: ... and holds at most this many latents (bounds the cost: 60 steps of a tiny g_s).
MAX_LATENTS = 4096
STEPS = 60
LR = 0.05


def is_small(latent_h: int, latent_w: int) -> bool:
    return min(latent_h, latent_w) <= SMALL_SIDE and latent_h * latent_w <= MAX_LATENTS


def refine(model: HyperpriorCodec, coder: LatentCoder, y: torch.Tensor, x: torch.Tensor, rate: float,
           height: int, width: int) -> torch.Tensor:
    """Latents that decode closer to ``x[..., :height, :width]`` (the real pixels) than ``y``.

    ``y``: (1, M, h, w) gained latents of the window ``x`` (1, 3, 16h, 16w) in [0, 1]. Each
    step quantises exactly as ``coder`` will (z rounded and clamped, means and tails from its
    float64 tables); the search runs on y / gain, so one step size suits every rate.
    Returns the best latents seen (``y`` itself when nothing beat it).
    """
    target = x[..., :height, :width].float()
    h, w = y.shape[-2:]
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

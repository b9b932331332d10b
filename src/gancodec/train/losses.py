"""Rate-distortion loss: per sample, lambda * 255^2 * MSE + bits per pixel."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..models import RDOutput


class RDLoss(NamedTuple):
    loss: torch.Tensor
    bpp: torch.Tensor  # mean estimated bits per pixel
    mse: torch.Tensor  # mean squared error on [0, 1] pixels


def rate_distortion(out: RDOutput, x: torch.Tensor, lmbda: torch.Tensor) -> RDLoss:
    """``lmbda`` holds one lambda per sample (variable-rate training). Without ``x_hat``
    (the entropy model trained alone) the loss is the rate and ``mse`` is NaN."""
    b, _, h, w = x.shape
    bits = -(torch.log2(out.y_likelihoods).reshape(b, -1).sum(1) + torch.log2(out.z_likelihoods).reshape(b, -1).sum(1))
    bpp = bits / (h * w)
    if out.x_hat is None:
        return RDLoss(bpp.mean(), bpp.mean().detach(), torch.full((), float("nan"), device=x.device))
    mse = ((out.x_hat.float() - x) ** 2).reshape(b, -1).mean(1)
    loss = (lmbda.to(x.device) * 255.0**2 * mse + bpp).mean()
    return RDLoss(loss, bpp.mean().detach(), mse.mean().detach())

"""The Gaussian conditional for the latent y (mean-scale hyperprior, Minnen et al. 2018).

Training: ``likelihood(y, means, scales)`` integrates a Gaussian over each unit bin.
Coding: the scale of every symbol is snapped to :data:`SCALE_TABLE` and the residual
``round(y - mean)`` is coded with that scale's integer table, so decoding needs nothing but the
table index, which the decoder derives exactly from the hyper-latent.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from .tables import quantize_pmf

SCALE_MIN = 0.11
SCALE_MAX = 256.0
#: 64 log-spaced scales (as in CompressAI); a symbol uses the smallest table scale >= its own.
SCALE_TABLE = np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), 64))
#: Means are snapped to this grid before coding so every device reconstructs the same y_hat.
MEAN_GRID = 64.0
LIKELIHOOD_MIN = 1e-9


def tail_for_scale(scale: float) -> int:
    """Half-width of the coded symbol range for a scale; residuals beyond are clamped."""
    return max(8, int(math.ceil(scale * 10)))


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@lru_cache(maxsize=None)
def scale_freqs(index: int) -> np.ndarray:
    """Integer frequency table for SCALE_TABLE[index] over residuals [-tail, tail]."""
    s = float(SCALE_TABLE[index])
    tail = tail_for_scale(s)
    edges = [_normal_cdf((k + 0.5) / s) for k in range(-tail - 1, tail + 1)]
    pmf = np.diff(np.array(edges))
    pmf[0] += edges[0]
    pmf[-1] += 1.0 - edges[-1]
    return quantize_pmf(pmf)


class GaussianConditional(nn.Module):
    """Likelihood of y under N(mean, scale^2) convolved with a unit box."""

    def forward(self, y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        scales = scales.clamp_min(SCALE_MIN)
        v = torch.abs(y - means)
        # use the lower tail (|v| mirrored) for precision: P = Phi((0.5-v)/s) - Phi((-0.5-v)/s)
        upper = 0.5 * torch.erfc(-(0.5 - v) / (scales * math.sqrt(2)))
        lower = 0.5 * torch.erfc(-(-0.5 - v) / (scales * math.sqrt(2)))
        return (upper - lower).clamp_min(LIKELIHOOD_MIN)

    @staticmethod
    def scale_indexes(scales: torch.Tensor) -> torch.Tensor:
        """Index of the smallest table scale >= each scale (float64 input for exactness)."""
        table = torch.from_numpy(SCALE_TABLE).to(scales.dtype)
        return torch.bucketize(scales.clamp(SCALE_MIN, SCALE_MAX).contiguous(), table[:-1]).clamp_(0, len(SCALE_TABLE) - 1)

    @staticmethod
    def snap_means(means: torch.Tensor) -> torch.Tensor:
        return torch.round(means * MEAN_GRID) / MEAN_GRID

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

from . import rangecoder
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

    # --- coding (CompressAI's compress / decompress) ---------------------------------------
    @staticmethod
    def tails(indexes: np.ndarray) -> np.ndarray:
        """The coded half-range of each symbol's table (int64, the shape of ``indexes``)."""
        return TAILS[indexes]

    @staticmethod
    def quantize(y: torch.Tensor, means: torch.Tensor, indexes: np.ndarray) -> np.ndarray:
        """The residuals coded for y (1, M, h, w): clip(round(y - means), -tail, tail), int64 M x h x w,
        computed in float64 on the CPU (``means`` snapped, float64)."""
        q = torch.round(y.to("cpu", torch.float64) - means)[0].numpy().astype(np.int64)
        tails = TAILS[indexes]
        return np.clip(q, -tails, tails)

    @staticmethod
    def dequantize(residuals: np.ndarray, means: torch.Tensor) -> torch.Tensor:
        """y_hat = residuals + means (float32, 1 x M x h x w)."""
        q = torch.from_numpy(residuals).to(torch.float64).unsqueeze(0)
        return (q + means).float()

    @staticmethod
    def compress(residuals: np.ndarray, indexes: np.ndarray, encoder: rangecoder.Encoder | None = None) -> bytes | None:
        """Code integer residuals with the tables ``indexes`` names (same shape; any order, e.g.
        one coding pass's positions), grouped by table in ascending index order, positions ascending
        within a group. Into ``encoder`` when given (returns None), else a stream of its own."""
        enc = encoder if encoder is not None else rangecoder.new_encoder()
        flat_index = np.asarray(indexes).ravel()
        symbols = np.asarray(residuals).ravel() + TAILS[flat_index]
        for k, group in scale_groups(flat_index):
            enc.encode(symbols[group].astype(np.int32), scale_model(k))
        return None if encoder is not None else rangecoder.finish(enc)

    @staticmethod
    def decompress(source: bytes | rangecoder.Decoder, indexes: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`compress`: the residuals (int64, the shape of ``indexes``)."""
        decoder = rangecoder.open_stream(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        flat_index = np.asarray(indexes).ravel()
        out = np.zeros(flat_index.size, dtype=np.int64)
        for k, group in scale_groups(flat_index):
            out[group] = decoder.decode(scale_model(k), group.size).astype(np.int64) - TAILS[k]
        return out.reshape(np.shape(indexes))


#: Half-range of the coded symbols of each table of SCALE_TABLE.
TAILS = np.array([tail_for_scale(float(s)) for s in SCALE_TABLE], dtype=np.int64)


@lru_cache(maxsize=None)
def scale_model(index: int):
    """The coder's model for table ``index`` of SCALE_TABLE (built once)."""
    return rangecoder.categorical(scale_freqs(index))


def scale_groups(indexes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(table index, positions into the flat ``indexes``) in ascending index order, positions
    ascending: the symbol order of a coding pass, for the encoder and the decoder alike."""
    flat = np.asarray(indexes).ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.flatnonzero(np.diff(flat[order])) + 1
    return [(int(flat[g[0]]), g) for g in np.split(order, bounds) if g.size]

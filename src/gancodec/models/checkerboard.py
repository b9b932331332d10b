"""Checkerboard context model (He et al. 2021): two passes over the latent, no serial loop.

The latent grid is split like a chess board. *Anchors* (row + column even) are coded first with
the hyperprior's means and scales alone. The other half is then coded with parameters refined
from the decoded anchors around it: the residuals ``y_hat - mean`` of the 12 anchors of a 5x5
window (every neighbour at an odd city-block distance) across all channels, mixed with the
hyperprior's parameters by a small 1x1 network. Both passes are whole-tensor operations, so
coding stays parallel.

The refinement is a residual on the hyperprior's parameters (zero at initialisation), so a
context model added to trained weights starts out coding exactly as they did.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..entropy.gaussian import SCALE_MIN

RADIUS = 2
#: Offsets (dy, dx) of the anchors a non-anchor position sees: odd city-block distance, within 5x5.
TAPS = tuple((dy, dx) for dy in range(-RADIUS, RADIUS + 1) for dx in range(-RADIUS, RADIUS + 1) if (dy + dx) % 2)


def anchor_mask(h: int, w: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """(1, 1, h, w): 1 at anchors ((row + column) even), 0 elsewhere."""
    rows = torch.arange(h, device=device).unsqueeze(1)
    cols = torch.arange(w, device=device).unsqueeze(0)
    return ((rows + cols) % 2 == 0).to(dtype).reshape(1, 1, h, w)


class CheckerboardContext(nn.Module):
    """Refines the hyperprior's (means, scales) of y at non-anchor positions from anchor latents.

    ``forward(y_hat, means, scales)`` takes the quantised latent (only its anchors are read) and
    the hyperprior's parameters, all (B, M, h, w), and returns new (means, scales): equal to the
    inputs at anchors, refined elsewhere.
    """

    def __init__(self, M: int, context_channels: int | None = None, hidden: int | None = None) -> None:
        super().__init__()
        C = context_channels or M
        H = hidden or 2 * M
        # only the 12 anchor taps of a 5x5 kernel carry weights (the others would see zeros)
        self.weight = nn.Parameter(torch.randn(C, M, len(TAPS)) / math.sqrt(M * len(TAPS)))
        self.bias = nn.Parameter(torch.zeros(C))
        self.mix = nn.Sequential(
            nn.Conv2d(2 * M + C, H, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(H, H, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(H, 2 * M, 1),
        )
        nn.init.zeros_(self.mix[-1].weight)
        nn.init.zeros_(self.mix[-1].bias)
        index = torch.tensor([(dy + RADIUS) * (2 * RADIUS + 1) + dx + RADIUS for dy, dx in TAPS])
        self.register_buffer("_tap_index", index, persistent=False)

    def kernel(self) -> torch.Tensor:
        """The (C, M, 5, 5) convolution kernel, zero outside the anchor taps."""
        C, M, _ = self.weight.shape
        k = self.weight.new_zeros(C, M, (2 * RADIUS + 1) ** 2)
        k = k.index_copy(2, self._tap_index, self.weight)
        return k.reshape(C, M, 2 * RADIUS + 1, 2 * RADIUS + 1)

    def forward(self, y_hat: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = y_hat.shape[-2:]
        anchors = anchor_mask(h, w, device=y_hat.device, dtype=torch.bool)
        kernel = self.kernel().to(y_hat.dtype)
        # the anchors' residuals (integers, as coded), not their values: what is left to predict
        ctx = F.conv2d((y_hat - means) * anchors, kernel, self.bias.to(y_hat.dtype), padding=RADIUS)
        log_scales = torch.log(scales.clamp_min(SCALE_MIN))
        delta_means, delta_log_scales = self.mix(torch.cat([means, log_scales, ctx], dim=1)).chunk(2, dim=1)
        return (torch.where(anchors, means, means + delta_means),
                torch.where(anchors, scales, torch.exp(log_scales + delta_log_scales)))

    def at_non_anchors(self, y_hat: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` for one latent (batch 1), computed at the non-anchor positions only.

        The coder's path (float64 on the CPU): it gathers the 12 anchor taps of each non-anchor
        position into one matrix product instead of convolving every position with a mostly-zero
        5x5 kernel, and runs the 1x1 network on half the positions. Same result up to float
        rounding (``tests/test_context.py``).
        """
        _, M, h, w = y_hat.shape
        C = self.weight.shape[0]
        rows, cols = torch.nonzero(anchor_mask(h, w, dtype=torch.bool)[0, 0].logical_not(), as_tuple=True)
        if rows.numel() == 0:  # a 1x1 latent is all anchor
            return means, scales
        dtype = y_hat.dtype
        # Everything below is (features, positions), so each layer is one matrix product.
        # Taps at odd distance from a non-anchor are anchors: one gather from the padded residuals.
        padded = F.pad((y_hat - means)[0], (RADIUS,) * 4).reshape(M, -1)
        index = torch.cat([(rows + RADIUS + dy) * (w + 2 * RADIUS) + cols + RADIUS + dx for dy, dx in TAPS])
        taps = padded.index_select(1, index).reshape(M * len(TAPS), -1)  # (M, 12) x P
        ctx = torch.addmm(self.bias.to(dtype).unsqueeze(1), self.weight.to(dtype).reshape(C, -1), taps)  # C x P
        flat = rows * w + cols
        m = means.reshape(M, -1).index_select(1, flat)
        log_s = torch.log(scales.reshape(M, -1).index_select(1, flat).clamp_min(SCALE_MIN))
        x = torch.cat([m, log_s, ctx], dim=0)
        for layer in self.mix:  # the 1x1 convolutions
            x = torch.addmm(layer.bias.unsqueeze(1), layer.weight[:, :, 0, 0], x) if isinstance(layer, nn.Conv2d) else layer(x)
        delta_means, delta_log_scales = x.chunk(2, dim=0)
        new_means, new_scales = means.clone(), scales.clone()
        new_means.view(M, -1).index_copy_(1, flat, m + delta_means)
        new_scales.view(M, -1).index_copy_(1, flat, torch.exp(log_s + delta_log_scales))
        return new_means, new_scales

"""Channel-conditional context over the checkerboard (after Minnen & Singh 2020, He et al. 2022).

The latent's M channels are cut into S equal slices. Coding takes 2S passes:

1. the anchors of slice 0, 1, ..., S-1: slice s's anchors see, besides the hyperprior, the anchors
   of slices 0..s-1 already decoded (a 3x3 window: the same position and its four diagonal
   anchors);
2. the non-anchors of slice 0, 1, ..., S-1: slice s's non-anchors see the checkerboard's
   refinement (the anchors of every slice, :mod:`~gancodec.models.checkerboard`), and every
   position of slices 0..s-1 (a 3x3 window).

Each refinement is a residual on the parameters it is given, with its last layer zero at
initialisation, so a channel context added to trained weights codes exactly as they did, and
training it (on cached latents of frozen transforms, by rate alone: ``gancodec.train.entropy``)
can only start from there. Slice 0 is coded as without it.

:meth:`ChannelContext.forward` is the training path (a batch, float32); the coder runs the same
modules pass by pass in float64 on the CPU (:class:`~gancodec.models.coder.LatentCoder`) through
:meth:`refine_anchors` and :meth:`refine_non_anchors`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..entropy.gaussian import SCALE_MIN
from .checkerboard import CheckerboardContext, anchor_mask


class SliceRefiner(nn.Module):
    """(means, scales) of one slice refined from the residuals of the slices before it."""

    def __init__(self, in_channels: int, slice_channels: int, hidden: int) -> None:
        super().__init__()
        self.context = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.mix = nn.Sequential(
            nn.Conv2d(2 * slice_channels + hidden, hidden, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, 2 * slice_channels, 1),
        )
        nn.init.zeros_(self.mix[-1].weight)
        nn.init.zeros_(self.mix[-1].bias)

    def forward(self, residuals: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_scales = torch.log(scales.clamp_min(SCALE_MIN))
        delta_means, delta_log_scales = self.mix(torch.cat([means, log_scales, self.context(residuals)], 1)).chunk(2, 1)
        return means + delta_means, torch.exp(log_scales + delta_log_scales)

    def at(self, residuals: torch.Tensor, means: torch.Tensor, scales: torch.Tensor, rows: torch.Tensor,
           cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` for one latent at some positions only, as matrix products (the coder's
        float64 path): ``residuals`` (C, h, w), ``means``/``scales`` (G, P) at the P positions
        (``rows``, ``cols``); returns the refined (G, P)."""
        C, h, w = residuals.shape
        padded = F.pad(residuals, (1, 1, 1, 1)).reshape(C, -1)
        index = torch.stack([(rows + 1 + dy) * (w + 2) + cols + 1 + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 1)
        taps = padded[:, index.reshape(-1)].reshape(C, -1, 9).permute(0, 2, 1).reshape(C * 9, -1)  # (C*9, P)
        weight = self.context.weight  # (H, C, 3, 3): its (C, ky, kx) order is the taps' order
        x = torch.addmm(self.context.bias.unsqueeze(1), weight.reshape(weight.shape[0], -1), taps)
        log_scales = torch.log(scales.clamp_min(SCALE_MIN))
        x = torch.cat([means, log_scales, x], 0)
        for layer in self.mix:  # the 1x1 convolutions
            x = torch.addmm(layer.bias.unsqueeze(1), layer.weight[:, :, 0, 0], x) if isinstance(layer, nn.Conv2d) else layer(x)
        delta_means, delta_log_scales = x.chunk(2, 0)
        return means + delta_means, torch.exp(log_scales + delta_log_scales)


class ChannelContext(nn.Module):
    """Slice-by-slice refinement of y's (means, scales), for the anchor and the non-anchor passes."""

    def __init__(self, M: int, slices: int = 4, hidden: int = 96) -> None:
        super().__init__()
        if M % slices:
            raise ValueError(f"{M} latent channels do not split into {slices} equal slices")
        self.slices = slices
        self.slice_channels = G = M // slices
        self.anchor_refiners = nn.ModuleList(SliceRefiner(s * G, G, hidden) for s in range(1, slices))
        self.non_anchor_refiners = nn.ModuleList(SliceRefiner(s * G, G, hidden) for s in range(1, slices))

    def slice(self, s: int) -> slice:
        """The channels of slice ``s``."""
        return slice(s * self.slice_channels, (s + 1) * self.slice_channels)

    def refine_anchors(self, s: int, residuals: torch.Tensor, means: torch.Tensor, scales: torch.Tensor):
        """Slice s's anchor parameters from the hyperprior's (``means``, ``scales``: the slice's
        channels) and ``residuals`` = y_hat - hyperprior means of every channel, zero where not
        decoded yet (only slices < s, at anchors, are read)."""
        if s == 0:
            return means, scales
        return self.anchor_refiners[s - 1](residuals[:, : s * self.slice_channels], means, scales)

    def refine_non_anchors(self, s: int, residuals: torch.Tensor, means: torch.Tensor, scales: torch.Tensor):
        """Slice s's non-anchor parameters from the checkerboard's (the slice's channels) and the
        residuals of slices < s at every position."""
        if s == 0:
            return means, scales
        return self.non_anchor_refiners[s - 1](residuals[:, : s * self.slice_channels], means, scales)

    def refiner(self, s: int, anchors: bool) -> SliceRefiner | None:
        """Slice s's refiner for its anchor or non-anchor pass (None for slice 0: no refinement)."""
        return None if s == 0 else (self.anchor_refiners if anchors else self.non_anchor_refiners)[s - 1]

    def forward(self, y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor,
                checkerboard: CheckerboardContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (means, scales) of every position of y (B, M, h, w), given the hyperprior's, with
        y quantised pass by pass as the coder does (without its float64 snapping). The decoded
        values that later passes read are constants here (rounding has no gradient)."""
        h, w = y.shape[-2:]
        anchors = anchor_mask(h, w, device=y.device, dtype=torch.bool)
        residuals = torch.zeros_like(y)
        anchor_params = []
        for s in range(self.slices):  # anchors, slice by slice
            c = self.slice(s)
            m, sc = self.refine_anchors(s, residuals.clone(), means[:, c], scales[:, c])
            anchor_params.append((m, sc))
            with torch.no_grad():
                residuals[:, c] = torch.where(anchors, torch.round(y[:, c] - m) + m - means[:, c], 0.0)
        cb_means, cb_scales = checkerboard(means + residuals, means, scales)
        out_means, out_scales = [], []
        for s in range(self.slices):  # the other half, slice by slice
            c = self.slice(s)
            m, sc = self.refine_non_anchors(s, residuals.clone(), cb_means[:, c], cb_scales[:, c])
            out_means.append(torch.where(anchors, anchor_params[s][0], m))
            out_scales.append(torch.where(anchors, anchor_params[s][1], sc))
            with torch.no_grad():
                residuals[:, c] = torch.where(anchors, residuals[:, c], torch.round(y[:, c] - m) + m - means[:, c])
        return torch.cat(out_means, 1), torch.cat(out_scales, 1)

"""A multi-scale patch discriminator conditioned on the quantised latent (HiFiC-style).

The latent ``y_hat`` (M x h x w) is squeezed to a few channels by a 1x1 conv and upsampled
(nearest, x16) to the image size, then concatenated with the image: the discriminator judges
"is this a plausible image *for this bitstream*", which keeps the generator from inventing
content the latent does not support. Two scales (full and half resolution) see fine texture
and larger structure. Spectral norm keeps it Lipschitz-ish and training stable on small batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..models.transforms import LATENT_STRIDE


class PatchNet(nn.Module):
    """Four strided convs -> one logit per ~46-px patch; returns every activation (for feature matching)."""

    def __init__(self, in_ch: int, width: int = 64, spectral: bool = True) -> None:
        super().__init__()
        norm = spectral_norm if spectral else (lambda conv: conv)
        chans = [in_ch, width, width * 2, width * 4, width * 8]
        self.blocks = nn.ModuleList(
            norm(nn.Conv2d(a, b, 4, stride=2 if i < 3 else 1, padding=1)) for i, (a, b) in enumerate(zip(chans, chans[1:]))
        )
        self.head = norm(nn.Conv2d(chans[-1], 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = F.leaky_relu(block(x), 0.2)
            feats.append(x)
        return feats + [self.head(x)]


class ConditionalPatchDiscriminator(nn.Module):
    """D(x, y_hat) -> per scale, [features..., logits]."""

    def __init__(self, latent_channels: int, cond_channels: int = 12, width: int = 64, scales: int = 2,
                 spectral: bool = True) -> None:
        super().__init__()
        self.cond = nn.Conv2d(latent_channels, cond_channels, 1)
        self.nets = nn.ModuleList(PatchNet(3 + cond_channels, width, spectral) for _ in range(scales))

    def forward(self, x: torch.Tensor, y_hat: torch.Tensor) -> list[list[torch.Tensor]]:
        c = F.interpolate(self.cond(y_hat), scale_factor=LATENT_STRIDE, mode="nearest")
        inp = torch.cat([x * 2 - 1, c[:, :, : x.shape[2], : x.shape[3]]], dim=1)
        outs = []
        for i, net in enumerate(self.nets):
            if i:
                inp = F.avg_pool2d(inp, 2)
            outs.append(net(inp))
        return outs

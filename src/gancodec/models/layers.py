"""Building blocks: GDN / inverse GDN (Ballé 2016) and the strided convolutions the transforms use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _NonNegative(nn.Module):
    """Reparametrise a non-negative parameter as ``max(p, bound)**2 - pedestal`` (as in Ballé's GDN)."""

    def __init__(self, minimum: float = 0.0, pedestal: float = 2.0**-18) -> None:
        super().__init__()
        self.pedestal = pedestal
        self.bound = (minimum + pedestal) ** 0.5

    def init(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.clamp(value + self.pedestal, min=self.pedestal))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.clamp(p, min=self.bound) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalised divisive normalisation: ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``.

    ``inverse=True`` gives IGDN (multiplies instead of divides), used in the synthesis transform.
    Pointwise across space, so it adds nothing to the receptive field.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self._beta_param = _NonNegative(minimum=1e-6)
        self._gamma_param = _NonNegative()
        self.beta = nn.Parameter(self._beta_param.init(torch.ones(channels)))
        self.gamma = nn.Parameter(self._gamma_param.init(0.1 * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = self._beta_param(self.beta)
        gamma = self._gamma_param(self.gamma).reshape(c, c, 1, 1)
        norm = F.conv2d(x * x, gamma, beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same'-padded convolution that downsamples by ``stride``."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that upsamples by exactly ``stride``."""
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)

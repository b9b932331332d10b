"""Gain units (Cui et al. 2021): one model, a continuous range of rates.

Each of K rate points has a learned per-channel gain (applied to y before quantisation) and an
inverse gain (applied to y_hat before synthesis). A fractional rate point interpolates both
geometrically, which is what gives the codec its continuous ``quality`` knob.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class GainUnits(nn.Module):
    def __init__(self, channels: int, lambdas: list[float]) -> None:
        super().__init__()
        self.lambdas = list(lambdas)
        mid = math.log(lambdas[len(lambdas) // 2])
        # high-rate theory: quantiser step ~ lambda^-1/2, so start gains at (lambda/lambda_mid)^1/2
        init = torch.tensor([0.5 * (math.log(l) - mid) for l in lambdas]).unsqueeze(1).repeat(1, channels)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())

    @property
    def num_rates(self) -> int:
        return len(self.lambdas)

    def _interp(self, table: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        """rate: (B,) floats in [0, K-1] -> (B, C, 1, 1) gains."""
        rate = rate.clamp(0, self.num_rates - 1).to(table.device, table.dtype)
        lo = rate.floor().long().clamp(max=self.num_rates - 2)
        t = (rate - lo.to(rate.dtype)).unsqueeze(1)
        log_g = (1 - t) * table[lo] + t * table[lo + 1]
        return torch.exp(log_g)[:, :, None, None]

    def gain(self, rate: torch.Tensor) -> torch.Tensor:
        return self._interp(self.log_gain, rate)

    def inverse_gain(self, rate: torch.Tensor) -> torch.Tensor:
        return self._interp(self.log_inv_gain, rate)

    def lmbda(self, rate: torch.Tensor) -> torch.Tensor:
        """The training lambda of a (fractional) rate point, interpolated in log space."""
        logs = torch.log(torch.tensor(self.lambdas, dtype=torch.float64))
        rate = rate.detach().double().cpu().clamp(0, self.num_rates - 1)
        lo = rate.floor().long().clamp(max=self.num_rates - 2)
        t = rate - lo.double()
        return torch.exp((1 - t) * logs[lo] + t * logs[lo + 1]).float()

    def rate_of_lambda(self, lmbda: float) -> float:
        """The fractional rate point whose interpolated lambda is ``lmbda`` (log-linear)."""
        logs = [math.log(l) for l in self.lambdas]
        x = math.log(lmbda)
        if not logs[0] <= x <= logs[-1]:
            raise ValueError(f"lambda {lmbda} is outside this model's range {self.lambdas[0]}..{self.lambdas[-1]}")
        for i in range(len(logs) - 1):
            if x <= logs[i + 1]:
                return i + (x - logs[i]) / (logs[i + 1] - logs[i])
        return float(len(logs) - 1)

"""The factorized prior for the hyper-latent z (Ballé et al. 2018, appendix 6.1).

Each channel has its own learned, monotone cumulative density ``c(v)``, built from small
per-channel dense layers. Training uses ``likelihood(z + noise)``; coding uses integer tables over
``[-TAIL, TAIL]`` computed once by :meth:`update_tables` and stored with the weights, so the
encoder and every decoder use the very same numbers.
"""

from __future__ import annotations

import copy
import weakref

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import rangecoder
from .tables import quantize_pmf

#: z is clamped to [-TAIL, TAIL] for coding (values beyond are vanishingly rare).
TAIL = 32
#: prior -> (tables version, coder models); weak, so a dropped model takes its entry with it.
_CODING_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class FactorizedPrior(nn.Module):
    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / dims[i + 1])))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        # Integer coding tables, one row per channel; filled by update_tables().
        self.register_buffer("freqs", torch.zeros(channels, 2 * TAIL + 1, dtype=torch.int32))

    def _logits_cumulative(self, v: torch.Tensor) -> torch.Tensor:
        """v: (C, 1, n) -> logit of the CDF at v, per channel."""
        for i, matrix in enumerate(self.matrices):
            v = torch.matmul(F.softplus(matrix), v) + self.biases[i]
            if i < len(self.factors):
                v = v + torch.tanh(self.factors[i]) * torch.tanh(v)
        return v

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(round(z) = z) under the model for noisy or integer z of shape (B, C, H, W)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the tail where sigmoid is precise
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.clamp_min(1e-9).reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def update_tables(self) -> None:
        """Recompute the integer coding tables from the current parameters (float64, CPU).

        Works on a float64 CPU copy: this module keeps its device and dtype, so a training run
        on a GPU can checkpoint (which fills the tables) and go on."""
        model = copy.deepcopy(self).to("cpu", torch.float64)
        values = torch.arange(-TAIL, TAIL + 1, dtype=torch.float64)
        edges = torch.cat([values - 0.5, values[-1:] + 0.5]).reshape(1, 1, -1).expand(self.channels, 1, -1)
        cdf = torch.sigmoid(model._logits_cumulative(edges.contiguous())).reshape(self.channels, -1)
        pmf = (cdf[:, 1:] - cdf[:, :-1]).numpy()
        # fold the tails into the edge symbols, which is where clamped values land
        pmf[:, 0] += cdf[:, 0].numpy()
        pmf[:, -1] += 1 - cdf[:, -1].numpy()
        tables = np.stack([quantize_pmf(row) for row in pmf])
        self.freqs.copy_(torch.from_numpy(tables.astype(np.int32)))

    def tables_ready(self) -> bool:
        return bool(self.freqs.sum() > 0)

    # --- coding (CompressAI's compress / decompress) ---------------------------------------
    def _coding_models(self) -> list:
        """One coder model per channel from the integer tables (rebuilt when the tables change;
        kept outside the module, so copies and pickles of it carry no coder objects)."""
        if not self.tables_ready():
            raise RuntimeError("entropy tables are empty: call model.update() before coding")
        key = (self.freqs.data_ptr(), self.freqs._version)
        cached = _CODING_MODELS.get(self)
        if cached is None or cached[0] != key:
            cached = _CODING_MODELS[self] = (key, [rangecoder.categorical(f) for f in self.freqs.cpu().numpy()])
        return cached[1]

    @staticmethod
    def quantize(z: torch.Tensor) -> torch.Tensor:
        """z_hat as coded: rounded, clamped to [-TAIL, TAIL], float64 on the CPU."""
        return torch.round(z).clamp_(-TAIL, TAIL).to("cpu", torch.float64)

    @torch.no_grad()
    def compress(self, z_hat: torch.Tensor, encoder: rangecoder.Encoder | None = None) -> bytes | None:
        """Code an integer z_hat (1, C, h, w) in [-TAIL, TAIL], channel by channel, each in raster
        order. Into ``encoder`` when given (returns None), else into a stream of its own (bytes)."""
        models = self._coding_models()
        enc = encoder if encoder is not None else rangecoder.new_encoder()
        symbols = z_hat[0].to("cpu").numpy().astype(np.int32) + TAIL
        for c, model in enumerate(models):
            enc.encode(np.ascontiguousarray(symbols[c].ravel()), model)
        return None if encoder is not None else rangecoder.finish(enc)

    @torch.no_grad()
    def decompress(self, source: bytes | rangecoder.Decoder, h: int, w: int) -> torch.Tensor:
        """Inverse of :meth:`compress`: z_hat (1, C, h, w), float64, from bytes or a shared decoder."""
        models = self._coding_models()
        decoder = rangecoder.open_stream(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        z = np.stack([decoder.decode(model, h * w) for model in models]).reshape(1, self.channels, h, w)
        return torch.from_numpy(z.astype(np.int64) - TAIL).to(torch.float64)

"""Glue between a model and its entropy models: one tile's latent ``y`` to bytes and back.

A tile's sub-stream is: the hyper-latent ``z_hat`` (:meth:`FactorizedPrior.compress
<gancodec.entropy.FactorizedPrior.compress>`), then the residuals ``round(y - mean)``
(:meth:`GaussianConditional.compress <gancodec.entropy.GaussianConditional.compress>`); for a
model with a checkerboard context, in two passes (anchors, then the rest with parameters refined
from the anchors), all in one range-coder stream. What is left here is deriving the coding
parameters: everything the decoder needs comes from ``z_hat`` (and the decoded anchors) through
float64 copies of ``h_s`` and the context network on the CPU and two snapping steps (scale ->
table index, mean -> 1/64 grid), so a stream encoded on a GPU decodes bit-exactly on any CPU.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..entropy import rangecoder
from ..entropy.gaussian import GaussianConditional
from ..errors import BitstreamError
from .checkerboard import anchor_mask

if TYPE_CHECKING:
    from .hyperprior import HyperpriorCodec


class LatentCoder:
    """Turns a tile's gained latent ``y`` (1, M, h, w) into bytes and back.

    ``model`` is a :class:`~gancodec.models.HyperpriorCodec` whose tables are filled
    (``model.update()``). The hyper-analysis runs on the model's device; the hyper-synthesis
    always runs in float64 on the CPU.
    """

    def __init__(self, model: HyperpriorCodec) -> None:
        if not model.z_prior.tables_ready():
            raise RuntimeError("entropy tables are empty: call model.update() before coding")
        self.model = model
        self.M = model.config.M
        self.z_prior = model.z_prior
        self.h_s64 = copy.deepcopy(model.h_s).to(device="cpu", dtype=torch.float64).eval()
        context = getattr(model, "context", None)
        self.context64 = None if context is None else copy.deepcopy(context).to(device="cpu", dtype=torch.float64).eval()
        self.z_prior._coding_models()  # build the z tables' coder models once, now

    @torch.no_grad()
    def _hyper_params(self, z_hat: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The hyperprior's raw means and scales of y (float64, 1 x M x h x w) from z_hat."""
        params = self.h_s64(z_hat.to(torch.float64))[:, :, :h, :w]
        means, scales = params.chunk(2, dim=1)
        return means, scales

    @staticmethod
    def _tables(means: torch.Tensor, scales: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """Scale-table indexes (int64 numpy, M x h x w) and snapped means (float64)."""
        return GaussianConditional.scale_indexes(scales)[0].numpy(), GaussianConditional.snap_means(means)

    @torch.no_grad()
    def _context_tables(self, anchor_q: np.ndarray, anchor_means: torch.Tensor, means: torch.Tensor,
                        scales: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """Second pass of a checkerboard model: tables of every position once the anchors'
        residuals ``anchor_q`` (int64, M x h x w; read at anchors only) are known."""
        y_hat = torch.from_numpy(anchor_q).to(torch.float64).unsqueeze(0) + anchor_means
        return self._tables(*self.context64.at_non_anchors(y_hat, means, scales))

    @torch.no_grad()
    def quantisation(self, y: torch.Tensor, hyper_analysis=None) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray]:
        """What :meth:`encode` quantises ``y`` (1, M, h, w) against: z_hat (float64, CPU), the
        scale-table indexes, the snapped means (float64) and the symbol tails (int64, M x h x w).
        y is coded as ``clip(round(y - means), -tails, tails)``.

        ``hyper_analysis`` is h_a on y's device (default: the model's own h_a).
        """
        _, _, h, w = y.shape
        h_a = hyper_analysis or self.model.h_a
        z_hat = self.z_prior.quantize(h_a(F.pad(y, (0, (-w) % 4, 0, (-h) % 4))))
        raw_means, raw_scales = self._hyper_params(z_hat, h, w)
        indexes, means = self._tables(raw_means, raw_scales)
        if self.context64 is not None:  # the anchors as coded, then every position's tables from them
            anchor_q = GaussianConditional.quantize(y, means, indexes)
            indexes, means = self._context_tables(anchor_q, means, raw_means, raw_scales)
        return z_hat, indexes, means, GaussianConditional.tails(indexes)

    def _passes(self, h: int, w: int) -> list[np.ndarray]:
        """Flat positions (channel, row, column raster) of each coding pass: all of them, or the
        checkerboard's anchors then the rest."""
        if self.context64 is None:
            return [np.arange(self.M * h * w)]
        anchors = np.broadcast_to(anchor_mask(h, w, dtype=torch.bool)[0].numpy(), (self.M, h, w)).ravel()
        return [np.flatnonzero(anchors), np.flatnonzero(~anchors)]

    @torch.no_grad()
    def encode(self, y: torch.Tensor, hyper_analysis=None) -> bytes:
        """Code ``y`` (1, M, h, w) into a tile sub-stream.

        ``hyper_analysis`` is h_a on y's device (default: the model's own h_a).
        """
        return self.encode_with_latent(y, hyper_analysis)[0]

    @torch.no_grad()
    def encode_with_latent(self, y: torch.Tensor, hyper_analysis=None) -> tuple[bytes, torch.Tensor]:
        """:meth:`encode`, also returning the y_hat that :meth:`decode` will give back for these
        bytes (1, M, h, w, float32 on the CPU): the same residuals and snapped means, so an
        encoder that needs the decode (the WebP fallback) skips the entropy decode."""
        z_hat, indexes, means, _ = self.quantisation(y, hyper_analysis)
        q = GaussianConditional.quantize(y, means, indexes)
        flat_q = q.ravel()
        flat_index = indexes.ravel()
        encoder = rangecoder.new_encoder()
        self.z_prior.compress(z_hat, encoder)
        for positions in self._passes(*y.shape[-2:]):
            GaussianConditional.compress(flat_q[positions], flat_index[positions], encoder)
        return rangecoder.finish(encoder), GaussianConditional.dequantize(q.reshape(indexes.shape), means)

    @torch.no_grad()
    def decode(self, data: bytes, h: int, w: int, channels_z: int) -> torch.Tensor:
        """Inverse of :meth:`encode` for a tile whose latent is h x w; returns y_hat (1, M, h, w)."""
        decoder = rangecoder.open_stream(data)
        if channels_z != self.z_prior.channels:
            raise BitstreamError(f"tile payload: {channels_z} hyper-latent channels, the model has {self.z_prior.channels}")
        try:
            z_hat = self.z_prior.decompress(decoder, (h + 3) // 4, (w + 3) // 4)
            raw_means, raw_scales = self._hyper_params(z_hat, h, w)
            indexes, means = self._tables(raw_means, raw_scales)
            passes = self._passes(h, w)
            flat_q = np.zeros(indexes.size, dtype=np.int64)
            flat_q[passes[0]] = GaussianConditional.decompress(decoder, indexes.ravel()[passes[0]])
            if len(passes) == 2:
                indexes, means = self._context_tables(flat_q.reshape(indexes.shape), means, raw_means, raw_scales)
                flat_q[passes[1]] = GaussianConditional.decompress(decoder, indexes.ravel()[passes[1]])
        except rangecoder.DECODE_ERRORS as exc:
            raise BitstreamError(f"tile payload cannot be entropy-decoded ({exc})") from None
        return GaussianConditional.dequantize(flat_q.reshape(indexes.shape), means)

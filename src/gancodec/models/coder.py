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
        channel = getattr(model, "channel_context", None)
        self.channel64 = None if channel is None else copy.deepcopy(channel).to(device="cpu", dtype=torch.float64).eval()
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

    def _schedule(self, raw_means: torch.Tensor, raw_scales: torch.Tensor, code_pass) -> tuple[np.ndarray, torch.Tensor]:
        """Run the coding passes of this model's context in order: the one place where the
        encoder and the decoder derive the tables, so they cannot disagree.

        ``code_pass(positions, indexes, means)`` codes one pass: the flat positions (channel, row,
        column raster, ascending) with their scale-table indexes (int64) and snapped means
        (float64), and returns their residuals (int64). Returns every position's indexes
        (M x h x w) and snapped means (1 x M x h x w) as coded."""
        indexes, means = self._tables(raw_means, raw_scales)
        if self.context64 is None:
            code_pass(np.arange(indexes.size), indexes.ravel(), means.ravel())
            return indexes, means
        h, w = indexes.shape[-2:]
        if self.channel64 is not None:
            return self._channel_schedule(raw_means, raw_scales, code_pass)
        q = np.zeros(indexes.size, dtype=np.int64)
        first, second = self._checkerboard_passes(h, w)
        q[first] = code_pass(first, indexes.ravel()[first], means.ravel()[first])
        # the anchors as coded, then every position's tables from them
        y_hat = torch.from_numpy(q.reshape(indexes.shape)).to(torch.float64).unsqueeze(0) + means
        indexes, means = self._tables(*self.context64.at_non_anchors(y_hat, raw_means, raw_scales))
        code_pass(second, indexes.ravel()[second], means.ravel()[second])
        return indexes, means

    def _checkerboard_passes(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        anchors = np.broadcast_to(anchor_mask(h, w, dtype=torch.bool)[0].numpy(), (self.M, h, w)).ravel()
        return np.flatnonzero(anchors), np.flatnonzero(~anchors)

    def _channel_schedule(self, raw_means: torch.Tensor, raw_scales: torch.Tensor, code_pass):
        """2S passes (gancodec.models.channel_context): each slice's anchors, then each slice's
        non-anchors, every pass's tables from what the passes before it decoded. Works on
        (channels, positions) matrices: each pass computes its own positions only."""
        cc, M, (h, w) = self.channel64, self.M, raw_means.shape[-2:]
        raw_m, raw_s = raw_means[0].reshape(M, -1), raw_scales[0].reshape(M, -1)
        residuals = torch.zeros_like(raw_m)  # y_hat - raw means where decoded, 0 elsewhere
        all_indexes = np.zeros((M, h * w), dtype=np.int64)
        all_means = torch.zeros_like(raw_m)
        anchors = anchor_mask(h, w, dtype=torch.bool)[0, 0].reshape(-1)
        cells = {True: torch.nonzero(anchors)[:, 0], False: torch.nonzero(~anchors)[:, 0]}

        def run(s: int, anchor_pass: bool, means: torch.Tensor, scales: torch.Tensor) -> None:
            c, p = cc.slice(s), cells[anchor_pass]
            refiner = cc.refiner(s, anchor_pass)
            if refiner is not None:
                means, scales = refiner.at(residuals[: c.start].reshape(-1, h, w), means, scales, p // w, p % w)
            indexes, snapped = self._tables(means.unsqueeze(0), scales.unsqueeze(0))
            indexes, snapped = indexes.reshape(len(range(c.start, c.stop)), -1), snapped[0]
            positions = (np.arange(c.start, c.stop)[:, None] * (h * w) + p.numpy()[None, :]).ravel()
            q = code_pass(positions, indexes.ravel(), snapped.reshape(-1))
            residuals[c, p] = torch.from_numpy(q.reshape(indexes.shape)).to(torch.float64) + snapped - raw_m[c][:, p]
            all_indexes[c, p.numpy()] = indexes
            all_means[c, p] = snapped

        for s in range(cc.slices):
            run(s, True, raw_m[cc.slice(s)][:, cells[True]], raw_s[cc.slice(s)][:, cells[True]])
        cb_means, cb_scales = self.context64.at_non_anchors((raw_m + residuals).reshape(1, M, h, w), raw_means, raw_scales)
        cb_m, cb_s = cb_means[0].reshape(M, -1), cb_scales[0].reshape(M, -1)
        for s in range(cc.slices):
            run(s, False, cb_m[cc.slice(s)][:, cells[False]], cb_s[cc.slice(s)][:, cells[False]])
        return all_indexes.reshape(M, h, w), all_means.reshape(1, M, h, w)

    @torch.no_grad()
    def quantisation(self, y: torch.Tensor, hyper_analysis=None) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray]:
        """What :meth:`encode` quantises ``y`` (1, M, h, w) against: z_hat (float64, CPU), the
        scale-table indexes, the snapped means (float64) and the symbol tails (int64, M x h x w).
        y is coded as ``clip(round(y - means), -tails, tails)``.

        ``hyper_analysis`` is h_a on y's device (default: the model's own h_a).
        """
        z_hat, indexes, means, _ = self._quantise(y, hyper_analysis)
        return z_hat, indexes, means, GaussianConditional.tails(indexes)

    def _quantise(self, y: torch.Tensor, hyper_analysis=None, encoder=None):
        """z_hat, indexes, snapped means and the residuals (int64, M x h x w) of y, coding each
        pass into ``encoder`` (a range coder) when one is given."""
        _, _, h, w = y.shape
        h_a = hyper_analysis or self.model.h_a
        z_hat = self.z_prior.quantize(h_a(F.pad(y, (0, (-w) % 4, 0, (-h) % 4))))
        raw_means, raw_scales = self._hyper_params(z_hat, h, w)
        if encoder is not None:
            self.z_prior.compress(z_hat, encoder)
        y64 = y.to("cpu", torch.float64)
        flat_q = np.zeros(self.M * h * w, dtype=np.int64)

        def code_pass(positions: np.ndarray, indexes: np.ndarray, means: torch.Tensor) -> np.ndarray:
            q = torch.round(y64.ravel()[positions] - means).numpy().astype(np.int64)
            tails = GaussianConditional.tails(indexes)
            flat_q[positions] = q = np.clip(q, -tails, tails)
            if encoder is not None:
                GaussianConditional.compress(q, indexes, encoder)
            return q

        indexes, means = self._schedule(raw_means, raw_scales, code_pass)
        return z_hat, indexes, means, flat_q.reshape(indexes.shape)

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
        encoder = rangecoder.new_encoder()
        _, _, means, q = self._quantise(y, hyper_analysis, encoder)
        return rangecoder.finish(encoder), GaussianConditional.dequantize(q, means)

    @torch.no_grad()
    def decode(self, data: bytes, h: int, w: int, channels_z: int) -> torch.Tensor:
        """Inverse of :meth:`encode` for a tile whose latent is h x w; returns y_hat (1, M, h, w)."""
        decoder = rangecoder.open_stream(data)
        if channels_z != self.z_prior.channels:
            raise BitstreamError(f"tile payload: {channels_z} hyper-latent channels, the model has {self.z_prior.channels}")
        flat_q = np.zeros(self.M * h * w, dtype=np.int64)

        def code_pass(positions: np.ndarray, indexes: np.ndarray, means: torch.Tensor) -> np.ndarray:
            flat_q[positions] = q = GaussianConditional.decompress(decoder, indexes)
            return q

        try:
            z_hat = self.z_prior.decompress(decoder, (h + 3) // 4, (w + 3) // 4)
            indexes, means = self._schedule(*self._hyper_params(z_hat, h, w), code_pass)
        except rangecoder.DECODE_ERRORS as exc:
            raise BitstreamError(f"tile payload cannot be entropy-decoded ({exc})") from None
        return GaussianConditional.dequantize(flat_q.reshape(indexes.shape), means)

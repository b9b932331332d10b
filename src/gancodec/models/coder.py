"""Entropy coding of one tile's latent with constriction's range coder.

A tile's sub-stream is: the hyper-latent ``z_hat`` (one integer table per channel), then the
residuals ``round(y - mean)`` grouped by scale-table index; for a model with a checkerboard
context, in two passes (anchors, then the rest with parameters refined from the anchors).
Everything the decoder needs to rebuild the coding models comes from ``z_hat`` (and the decoded
anchors) through float64 copies of ``h_s`` and the context network on the CPU and two snapping
steps (scale -> table index, mean -> 1/64 grid), so a stream encoded on a GPU decodes
bit-exactly on any CPU.

constriction is used instead of a hand-written coder: it is maintained, fast, and exact.
"""

from __future__ import annotations

import copy

import constriction
import numpy as np
import torch
import torch.nn.functional as F

from ..entropy.factorized import TAIL as Z_TAIL
from ..entropy.gaussian import SCALE_TABLE, GaussianConditional, scale_freqs, tail_for_scale
from ..entropy.tables import probabilities
from ..errors import BitstreamError
from .checkerboard import anchor_mask

_Categorical = constriction.stream.model.Categorical
_Y_TAILS = np.array([tail_for_scale(float(s)) for s in SCALE_TABLE], dtype=np.int64)


def _scale_groups(indexes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(scale index, positions into ``indexes``) in ascending index order, positions ascending.

    This is the symbol order of one coding pass of a tile's y sub-stream; the encoder and the
    decoder both use it.
    """
    flat = indexes.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.flatnonzero(np.diff(flat[order])) + 1
    return [(int(flat[g[0]]), g) for g in np.split(order, bounds) if g.size]


class LatentCoder:
    """Turns a tile's gained latent ``y`` (1, M, h, w) into bytes and back.

    ``model`` is a :class:`~gancodec.models.HyperpriorCodec` whose tables are filled
    (``model.update()``). The hyper-analysis runs on the model's device; the hyper-synthesis
    always runs in float64 on the CPU.
    """

    def __init__(self, model) -> None:
        if not model.z_prior.tables_ready():
            raise RuntimeError("entropy tables are empty: call model.update() before coding")
        self.model = model
        self.h_s64 = copy.deepcopy(model.h_s).to(device="cpu", dtype=torch.float64).eval()
        context = getattr(model, "context", None)
        self.context64 = None if context is None else copy.deepcopy(context).to(device="cpu", dtype=torch.float64).eval()
        freqs = model.z_prior.freqs.cpu().numpy()
        self._z_models = [_Categorical(probabilities(f), perfect=False) for f in freqs]
        self._y_models: dict[int, object] = {}

    def _y_model(self, index: int):
        if index not in self._y_models:
            self._y_models[index] = _Categorical(probabilities(scale_freqs(index)), perfect=False)
        return self._y_models[index]

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
        z = h_a(F.pad(y, (0, (-w) % 4, 0, (-h) % 4)))
        z_hat = torch.round(z).clamp_(-Z_TAIL, Z_TAIL).to("cpu", torch.float64)
        raw_means, raw_scales = self._hyper_params(z_hat, h, w)
        indexes, means = self._tables(raw_means, raw_scales)
        if self.context64 is not None:  # the anchors as coded, then every position's tables from them
            anchor_q = self._residuals(y, means, _Y_TAILS[indexes])
            indexes, means = self._context_tables(anchor_q, means, raw_means, raw_scales)
        return z_hat, indexes, means, _Y_TAILS[indexes]

    @staticmethod
    def _residuals(y: torch.Tensor, means: torch.Tensor, tails: np.ndarray) -> np.ndarray:
        q = torch.round(y.to("cpu", torch.float64) - means)[0].numpy().astype(np.int64)
        return np.clip(q, -tails, tails)

    def _passes(self, h: int, w: int) -> list[np.ndarray]:
        """Flat positions (channel, row, column raster) of each coding pass: all of them, or the
        checkerboard's anchors then the rest."""
        if self.context64 is None:
            return [np.arange(self.model.config.M * h * w)]
        anchors = np.broadcast_to(anchor_mask(h, w, dtype=torch.bool)[0].numpy(), (self.model.config.M, h, w)).ravel()
        return [np.flatnonzero(anchors), np.flatnonzero(~anchors)]

    @torch.no_grad()
    def encode(self, y: torch.Tensor, hyper_analysis=None) -> bytes:
        """Code ``y`` (1, M, h, w) into a tile sub-stream.

        ``hyper_analysis`` is h_a on y's device (default: the model's own h_a).
        """
        z_hat, indexes, means, tails = self.quantisation(y, hyper_analysis)
        flat_q = (self._residuals(y, means, tails) + tails).ravel()
        flat_index = indexes.ravel()

        encoder = constriction.stream.queue.RangeEncoder()
        z_sym = z_hat[0].numpy().astype(np.int32) + Z_TAIL
        for c, model in enumerate(self._z_models):
            encoder.encode(np.ascontiguousarray(z_sym[c].ravel()), model)
        for positions in self._passes(*y.shape[-2:]):
            for k, group in _scale_groups(flat_index[positions]):
                encoder.encode(flat_q[positions[group]].astype(np.int32), self._y_model(k))
        return encoder.get_compressed().astype("<u4").tobytes()

    def _decode_pass(self, decoder, flat_q: np.ndarray, indexes: np.ndarray, positions: np.ndarray) -> None:
        flat_index = indexes.ravel()[positions]
        for k, group in _scale_groups(flat_index):
            flat_q[positions[group]] = decoder.decode(self._y_model(k), group.size).astype(np.int64) - _Y_TAILS[k]

    @torch.no_grad()
    def decode(self, data: bytes, h: int, w: int, channels_z: int) -> torch.Tensor:
        """Inverse of :meth:`encode` for a tile whose latent is h x w; returns y_hat (1, M, h, w)."""
        if len(data) % 4:
            raise BitstreamError(f"tile sub-stream length {len(data)} is not a multiple of 4 bytes")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        decoder = constriction.stream.queue.RangeDecoder(words)
        hz, wz = (h + 3) // 4, (w + 3) // 4
        try:
            z = np.stack([decoder.decode(model, hz * wz) for model in self._z_models]).reshape(1, channels_z, hz, wz)
            z_hat = torch.from_numpy(z.astype(np.int64) - Z_TAIL).to(torch.float64)
            raw_means, raw_scales = self._hyper_params(z_hat, h, w)
            indexes, means = self._tables(raw_means, raw_scales)
            passes = self._passes(h, w)
            flat_q = np.zeros(indexes.size, dtype=np.int64)
            self._decode_pass(decoder, flat_q, indexes, passes[0])
            if len(passes) == 2:
                indexes, means = self._context_tables(flat_q.reshape(indexes.shape), means, raw_means, raw_scales)
                self._decode_pass(decoder, flat_q, indexes, passes[1])
        except (ValueError, RuntimeError, OverflowError, AssertionError) as exc:  # constriction asserts on invalid data
            raise BitstreamError(f"tile payload cannot be entropy-decoded ({exc})") from None
        q = torch.from_numpy(flat_q.reshape(indexes.shape)).to(torch.float64).unsqueeze(0)
        return (q + means).float()

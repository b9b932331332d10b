"""The variable-rate mean-scale hyperprior codec model (stage 1, rate-distortion).

    x ──g_a──► y ·gain ──h_a──► z ──Q──► z_hat ──h_s──► (means, scales)
                 │                                          │
                 │                  (context: anchors of y_hat refine the
                 │                   parameters of the other half, optional)
                 │                                          │
                 └──────────────Q(y - means)+means ◄────────┘
                                   │
                               y_hat ·inv_gain ──g_s──► x_fid ──(+ post_filter, optional)──► x_hat

``forward`` is the training path (noise for rates, straight-through rounding for the decoder,
as Minnen & Singh 2020) and returns :class:`RDOutput`. ``compress`` / ``decompress`` code one
image window into strings and back, as CompressAI's models do (the entropy models' own
``compress``/``decompress`` through :class:`~gancodec.models.coder.LatentCoder`); a ``.gcx``
file is that per tile, with halos (``gancodec.tiling``, ``gancodec.codec``), from the parts below:
``analysis``, ``hyper_analysis``, ``synthesis``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from ..entropy import FactorizedPrior, GaussianConditional
from .channel_context import ChannelContext
from .checkerboard import CheckerboardContext
from .detail import DetailConfig, DetailGenerator
from .gain import GainUnits
from .transforms import HYPER_STRIDE, AnalysisTransform, HyperAnalysis, HyperSynthesis, SynthesisTransform

__all__ = ["CONTEXTS", "Compressed", "DEFAULT_LAMBDAS", "HyperpriorCodec", "ModelConfig", "RDOutput"]

#: Rate points of the gain units, low to high (lambda for 255^2 * MSE + bpp).
DEFAULT_LAMBDAS = [0.0009, 0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932]


#: none: the hyperprior alone; checkerboard: + gancodec.models.checkerboard; channel-checkerboard:
#: + gancodec.models.channel_context over the checkerboard (v1.7 on)
CONTEXTS = ("none", "checkerboard", "channel-checkerboard")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`HyperpriorCodec`; saved inside every checkpoint."""

    N: int = 128
    M: int = 192
    lambdas: tuple[float, ...] = field(default_factory=lambda: tuple(DEFAULT_LAMBDAS))
    context: str = "none"  # one of CONTEXTS
    #: a noise-free, rate-aware detail generator (DetailConfig fields) whose output is added to
    #: g_s's decode (v1.6 on); None: x_hat is g_s's output
    post_filter: tuple[tuple[str, int], ...] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        if self.context == "none":  # keeps plain models' files readable by gancodec before 1.4
            del d["context"]
        if self.post_filter is None:  # ... and models without one readable before 1.6
            del d["post_filter"]
        else:
            d["post_filter"] = dict(self.post_filter)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {"N", "M", "lambdas", "context", "post_filter"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; valid keys are {sorted(known)}")
        context = str(d.get("context", "none"))
        if context not in CONTEXTS:
            raise ValueError(f"context {context!r} is not one of {list(CONTEXTS)}")
        post = d.get("post_filter")
        if post is not None:
            post = tuple(sorted(DetailConfig.from_dict(dict(post)).to_dict().items()))
            if dict(post)["noise_channels"] or not dict(post)["rate_input"] or dict(post)["latent_channels"] != int(d["M"]):
                raise ValueError(f"post_filter {dict(post)} must be noise-free (noise_channels 0), take the rate "
                                 f"(rate_input 1) and read the model's {int(d['M'])} latent channels")
        return cls(N=int(d["N"]), M=int(d["M"]), lambdas=tuple(float(v) for v in d["lambdas"]), context=context,
                   post_filter=post)


class RDOutput(NamedTuple):
    x_hat: torch.Tensor | None  # None when forward(..., synthesize=False)
    y_likelihoods: torch.Tensor
    z_likelihoods: torch.Tensor


class Compressed(NamedTuple):
    """What :meth:`HyperpriorCodec.compress` returns: the coded strings and the latent's size."""

    strings: list[bytes]  # one range-coder stream: z_hat, then y's residuals
    shape: tuple[int, int]  # (h, w) of the latent y: the image window is 16h x 16w pixels


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class HyperpriorCodec(nn.Module):
    config_class = ModelConfig  # gancodec.models.registry builds it from a saved model_config

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        N, M = config.N, config.M
        self.g_a = AnalysisTransform(N, M)
        self.g_s = SynthesisTransform(N, M)
        self.h_a = HyperAnalysis(N, M)
        self.h_s = HyperSynthesis(N, M)
        self.z_prior = FactorizedPrior(N)
        self.y_conditional = GaussianConditional()
        self.gain = GainUnits(M, list(config.lambdas))
        self.context = CheckerboardContext(M) if config.context != "none" else None
        self.channel_context = ChannelContext(M) if config.context == "channel-checkerboard" else None
        self.post_filter = DetailGenerator(DetailConfig(**dict(config.post_filter))) if config.post_filter else None

    @property
    def num_rates(self) -> int:
        return self.gain.num_rates

    # --- training path -------------------------------------------------------------------
    def forward(self, x: torch.Tensor, rate: torch.Tensor, synthesize: bool = True) -> RDOutput:
        """x: (B, 3, H, W) in [0, 1], H and W multiples of 64; rate: (B,) in [0, K-1].

        ``synthesize=False`` skips g_s (x_hat is None): for training the entropy model alone.
        """
        y = self.g_a(x) * self.gain.gain(rate)
        z = self.h_a(y)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_likelihoods = self.z_prior.likelihood(z_noisy)
        means, scales = self.entropy_parameters(y, _round_ste(z))
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_likelihoods = self.y_conditional(y_noisy, means, scales)
        if not synthesize:
            return RDOutput(None, y_likelihoods, z_likelihoods)
        y_hat = _round_ste(y - means) + means
        x_hat = self.decode(y_hat * self.gain.inverse_gain(rate), rate)
        return RDOutput(x_hat, y_likelihoods, z_likelihoods)

    def decode(self, y: torch.Tensor, rate: torch.Tensor | float) -> torch.Tensor:
        """x_hat (unclamped) from the decoder's input y (after the inverse gain): g_s, then the post-filter if any."""
        x_fid = self.g_s(y)
        if self.post_filter is None:
            return x_fid
        return x_fid + self.post_filter(x_fid.clamp(0, 1), y, self.post_filter.noise_for(x_fid), rate=rate)

    def entropy_parameters(self, y: torch.Tensor, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and scales of y: the hyperprior's from z_hat, refined at non-anchor positions by
        the context model (if any) from y's anchors, quantised around the hyperprior's means
        (with a channel context: slice by slice, as the coder does)."""
        means, scales = self.h_s(z_hat).chunk(2, dim=1)
        if self.channel_context is not None:
            return self.channel_context(y, means, scales, self.context)
        if self.context is not None:
            means, scales = self.context(_round_ste(y - means) + means, means, scales)
        return means, scales

    def quantise(self, y: torch.Tensor) -> torch.Tensor:
        """y_hat = round(y - mean) + mean with hard rounding, as the coder quantises (training-side,
        without the coder's float64 snapping and tail clamps)."""
        means, _ = self.entropy_parameters(y, torch.round(self.h_a(y)))
        return torch.round(y - means) + means

    # --- coding path (used by gancodec.tiling) --------------------------------------------
    def analysis(self, x: torch.Tensor, rate: float) -> torch.Tensor:
        """Gained latent y of an image window x (1, 3, H, W)."""
        r = torch.tensor([rate], device=x.device)
        return self.g_a(x) * self.gain.gain(r).to(x.dtype)

    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        return self.h_a(y)

    def synthesis(self, y_hat: torch.Tensor, rate: float) -> torch.Tensor:
        """Image window (1, 3, 16h, 16w), unclamped, from a latent window y_hat (1, M, h, w)."""
        r = torch.tensor([rate], device=y_hat.device)
        return self.decode(y_hat * self.gain.inverse_gain(r).to(y_hat.dtype), rate)

    def update(self) -> None:
        """Fill the integer coding tables; call after training, before compressing."""
        self.z_prior.update_tables()

    @torch.no_grad()
    def compress(self, x: torch.Tensor, rate: float) -> Compressed:
        """Code an image window x (1, 3, H, W) in [0, 1], H and W multiples of 16, at ``rate``
        (0..num_rates-1). The bytes are those a one-tile ``.gcx`` of the same pixels holds.
        RuntimeError when :meth:`update` has not filled the tables."""
        from .coder import LatentCoder

        y = self.analysis(x, rate)
        return Compressed([LatentCoder(self).encode(y)], tuple(y.shape[-2:]))

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: tuple[int, int], rate: float) -> torch.Tensor:
        """Inverse of :meth:`compress`: x_hat (1, 3, 16h, 16w) clamped to [0, 1], on the CPU."""
        from .coder import LatentCoder

        y_hat = LatentCoder(self).decode(strings[0], shape[0], shape[1], self.config.N)
        device = next(self.parameters()).device
        return self.synthesis(y_hat.to(device), rate).clamp_(0, 1).cpu()



HYPER_MULTIPLE = HYPER_STRIDE

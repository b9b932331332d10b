"""Entropy models, CompressAI-style: learned likelihoods for training (``forward`` /
``likelihood``), integer tables for coding, and ``compress``/``decompress`` on each model
(:class:`FactorizedPrior` for z, :class:`GaussianConditional` for y) through one range coder
(:mod:`.rangecoder`). Nothing here knows a codec model: the glue that derives y's tables from
z_hat is :class:`gancodec.models.coder.LatentCoder`."""

from .factorized import FactorizedPrior
from .gaussian import SCALE_TABLE, GaussianConditional

__all__ = ["FactorizedPrior", "GaussianConditional", "SCALE_TABLE"]

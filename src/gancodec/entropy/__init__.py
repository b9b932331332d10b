"""Entropy models (learned likelihoods for training, integer tables for coding) and coder glue."""

from .factorized import FactorizedPrior
from .gaussian import GaussianConditional, SCALE_TABLE

__all__ = ["FactorizedPrior", "GaussianConditional", "SCALE_TABLE"]

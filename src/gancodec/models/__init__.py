"""Codec networks: transforms, gain units, the hyperprior model (and later the realism decoder)."""

from .hyperprior import DEFAULT_LAMBDAS, HyperpriorCodec, ModelConfig, RDOutput

__all__ = ["DEFAULT_LAMBDAS", "HyperpriorCodec", "ModelConfig", "RDOutput"]

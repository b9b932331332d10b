"""Codec networks: transforms, gain units, the hyperprior model, the coder glue, and the registry
of architectures (:mod:`gancodec.models.registry`) that loading builds models from."""

from .hyperprior import DEFAULT_LAMBDAS, Compressed, HyperpriorCodec, ModelConfig, RDOutput
from .registry import architecture, architectures, build_model, model_from_checkpoint, register_architecture

__all__ = ["Compressed", "DEFAULT_LAMBDAS", "HyperpriorCodec", "ModelConfig", "RDOutput", "architecture", "architectures",
           "build_model", "model_from_checkpoint", "register_architecture"]

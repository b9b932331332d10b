"""The model registry: architecture name -> model class, and building a model from saved weights.

Every weights file and checkpoint stores its model's config (``model_config``); its
``"architecture"`` key names the class (absent: ``"hyperprior"``, as in every file written so
far). Loading (:mod:`gancodec.weights`), training and shipping build models through
:func:`model_from_checkpoint`, so the codec needs no training module and a new architecture is
added in one place::

    @register_architecture("my-arch")
    class MyCodec(nn.Module):
        config_class = MyConfig   # with from_dict / to_dict; to_dict() includes "architecture"
        ...

A registered class takes its config object in ``__init__`` and offers the coding interface of
:class:`~gancodec.models.HyperpriorCodec` (``analysis``, ``synthesis``, ``h_a``, ``h_s``,
``z_prior``, ``update``, ``num_rates``; see docs/architecture.md).
"""

from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

from ..errors import ModelError
from .hyperprior import HyperpriorCodec

DEFAULT_ARCHITECTURE = "hyperprior"
_ARCHITECTURES: dict[str, type[nn.Module]] = {DEFAULT_ARCHITECTURE: HyperpriorCodec}

M = TypeVar("M", bound=type)


def register_architecture(name: str) -> Callable[[M], M]:
    """Class decorator: make ``cls`` loadable from files whose ``model_config["architecture"]`` is ``name``."""

    def add(cls: M) -> M:
        if name in _ARCHITECTURES and _ARCHITECTURES[name] is not cls:
            raise ValueError(f"architecture {name!r} is already registered to {_ARCHITECTURES[name].__qualname__}")
        if not hasattr(cls, "config_class"):
            raise TypeError(f"{cls.__qualname__}: a registered architecture needs a config_class with from_dict()")
        _ARCHITECTURES[name] = cls
        return cls

    return add


def architectures() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(_ARCHITECTURES)


def architecture(name: str) -> type[nn.Module]:
    """The model class registered as ``name``; ValueError listing the valid names otherwise."""
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; valid architectures are {architectures()}") from None


def build_model(model_config: dict) -> nn.Module:
    """A freshly initialised model for a saved ``model_config`` dict (ValueError when it does not fit)."""
    if not isinstance(model_config, dict):
        raise ValueError(f"model_config must be a dict, got {type(model_config).__name__}")
    config = dict(model_config)
    cls = architecture(str(config.pop("architecture", DEFAULT_ARCHITECTURE)))
    return cls(cls.config_class.from_dict(config))


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint", overrides: dict | None = None) -> nn.Module:
    """The model a checkpoint or weights file holds. ``overrides`` change its config to add parts
    (e.g. ``{"context": "checkerboard"}``, or a ``post_filter``): the parts the checkpoint lacks keep their
    initialisation, every part it has must fit. ModelError names ``source`` when it does not fit."""
    try:
        model = build_model({**ckpt["model_config"], **(overrides or {})})
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
        missing, unexpected = model.load_state_dict(state, strict=not overrides)
        added = {k.split(".")[0] for k in missing}
        if unexpected or not added <= {"context", "channel_context", "post_filter"}:
            raise RuntimeError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"{source}: weights do not fit the model ({exc})") from None
    return model

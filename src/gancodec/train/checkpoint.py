"""Self-describing checkpoints: model config + weights (+ optimiser and step when resumable).

Loaded with ``torch.load(weights_only=True)`` only: a checkpoint is data, never code.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from ..errors import ModelError
from ..fsutil import atomic_write_bytes
from ..models import HyperpriorCodec, ModelConfig


def save_checkpoint(path: str | os.PathLike, model: HyperpriorCodec, **extra) -> None:
    """Write ``{"model_config", "state_dict", **extra}`` atomically."""
    buf = io.BytesIO()
    torch.save({"model_config": model.config.to_dict(), "state_dict": model.state_dict(), **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict:
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # pickle errors, zip errors, refused globals
        raise ModelError(f"{path}: not a readable gancodec checkpoint ({exc})") from None


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint", overrides: dict | None = None) -> HyperpriorCodec:
    """The model a checkpoint holds. ``overrides`` change its config to add parts (e.g.
    ``{"context": "checkerboard"}``): the parts the checkpoint lacks keep their initialisation,
    every part it has must fit."""
    try:
        config = ModelConfig.from_dict({**ckpt["model_config"], **(overrides or {})})
        model = HyperpriorCodec(config)
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
        missing, unexpected = model.load_state_dict(state, strict=not overrides)
        added = {k.split(".")[0] for k in missing}
        if unexpected or not added <= {"context"}:
            raise RuntimeError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{source}: weights do not fit the model ({exc})") from None
    return model

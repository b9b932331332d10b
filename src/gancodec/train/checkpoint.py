"""Self-describing checkpoints: model config + weights (+ optimiser and step when resumable).

Loaded with ``torch.load(weights_only=True)`` only: a checkpoint is data, never code. Reading
one and building its model live below training (:func:`gancodec.weights.load_checkpoint`,
:func:`gancodec.models.model_from_checkpoint`), so loading weights needs no training module;
they are re-exported here for training code.
"""

from __future__ import annotations

import io
import os

import torch

from ..fsutil import atomic_write_bytes
from ..models import HyperpriorCodec, model_from_checkpoint
from ..weights import load_checkpoint

__all__ = ["load_checkpoint", "model_from_checkpoint", "save_checkpoint"]


def save_checkpoint(path: str | os.PathLike, model: HyperpriorCodec, **extra) -> None:
    """Write ``{"model_config", "state_dict", **extra}`` atomically."""
    buf = io.BytesIO()
    torch.save({"model_config": model.config.to_dict(), "state_dict": model.state_dict(), **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())

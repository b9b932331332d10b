"""Stage 2: the realism decoder (a GAN-trained synthesis transform over a frozen stage-1 model).

Importing this package loads no training code: the training loop, losses and discriminator
(:mod:`.loop`, :mod:`.losses`, :mod:`.discriminator`) load on first use of their names, and
loading a realism decoder lives below training in :mod:`gancodec.weights.realism`.
"""

from __future__ import annotations

import importlib

from .config import RealismConfig

_LAZY = {
    "ConditionalPatchDiscriminator": ".discriminator",
    "quantised_latents": ".loop",
    "train_realism": ".loop",
    "ENV_REALISM": "..weights.realism",
    "SHIPPED_REALISM": "..weights.realism",
    "export_realism": "..weights.realism",
    "load_realism_state": "..weights.realism",
    "realism_model": "..weights.realism",
}

__all__ = ["ConditionalPatchDiscriminator", "ENV_REALISM", "RealismConfig", "SHIPPED_REALISM", "export_realism",
           "load_realism_state", "quantised_latents", "realism_model", "train_realism"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

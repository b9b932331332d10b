"""Realism decoder weights: moved to :mod:`gancodec.weights.realism` (loading sits below training).

Kept so ``from gancodec.realism.weights import ...`` goes on working; new code imports
:mod:`gancodec.weights.realism`.
"""

from ..weights import realism as _realism
from ..weights.realism import *  # noqa: F401,F403
from ..weights.realism import ENV_REALISM, MIXES_KEPT, SHIPPED_REALISM, export_realism, load_realism_state, parse_realism, realism_model  # noqa: F401


def __getattr__(name: str):  # the module's private state (_cache, _realism_path) lives over there
    return getattr(_realism, name)

"""The learning-rate schedule every training loop here uses: it follows steps, never wall time."""

from __future__ import annotations

import math


def warmup_cosine(step: int, lr: float, steps: int, warmup: int, final_fraction: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from ``lr`` to ``lr * final_fraction``
    at ``steps``. A run stopped by a time budget and resumed later continues on the same curve."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    floor = lr * final_fraction
    return floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * progress))

"""How many optimiser steps each trained part of a model has had: the ``trained_steps`` dict.

A model is built by a chain of stages (``train`` → ... → ``train_post_filter``), each training
one part over the previous stage's file. Each stage copies its base file's dict into the file it
exports (metadata) and its card, and accounts for its own part with :func:`accumulate`::

    meta = load_checkpoint(base)                       # the base file's dict
    steps = accumulate(meta, "post_filter", 4000, continued=True)
    export_weights(model, out, trained_steps=steps)
"""

from __future__ import annotations

from typing import Any, Mapping

#: The parts a stage trains (the keys of ``trained_steps``).
PARTS = ("transforms", "entropy", "post_filter", "realism")


def trained_steps(meta: Mapping[str, Any] | None) -> dict[str, int]:
    """The ``trained_steps`` of a weights file's dict (or card); ``{}`` when it has none."""
    return {str(k): int(v) for k, v in dict((meta or {}).get("trained_steps") or {}).items()}


def accumulate(base_meta: Mapping[str, Any] | None, part: str, steps: int, continued: bool) -> dict[str, int]:
    """The base's ``trained_steps`` with ``part`` increased by ``steps`` when this run continued
    the base's own ``part`` (``continued``), or set to ``steps`` when it started elsewhere
    (from scratch, from another file)."""
    if part not in PARTS:
        raise ValueError(f"trained_steps: unknown part {part!r}; parts: {', '.join(PARTS)}")
    if steps < 0:
        raise ValueError(f"trained_steps: {part} steps {steps} < 0")
    out = trained_steps(base_meta)
    out[part] = (out.get(part, 0) if continued else 0) + int(steps)
    return out

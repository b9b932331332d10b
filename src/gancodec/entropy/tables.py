"""Turning float probabilities into integer frequency tables that every machine reads alike.

The coder (constriction) is fed probabilities ``freq / 2**PRECISION``: exact binary fractions, so
the encoder and any decoder build identical models whatever the hardware.
"""

from __future__ import annotations

import numpy as np

#: Frequencies of one table sum to 2**PRECISION; every symbol gets at least 1.
PRECISION = 16


def quantize_pmf(pmf: np.ndarray) -> np.ndarray:
    """Integer frequencies (int64, each >= 1, summing to 2**PRECISION) approximating ``pmf``.

    Deterministic: largest-remainder rounding with ties broken by index.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    n = pmf.size
    total = 1 << PRECISION
    if n > total // 2:
        raise ValueError(f"table of {n} symbols is too long for {PRECISION}-bit frequencies")
    pmf = np.clip(pmf, 0.0, None)
    pmf = pmf / pmf.sum()
    budget = total - n  # one count reserved for every symbol
    scaled = pmf * budget
    freq = np.floor(scaled).astype(np.int64)
    short = budget - int(freq.sum())
    if short > 0:
        order = np.lexsort((np.arange(n), -(scaled - freq)))
        freq[order[:short]] += 1
    return freq + 1


def probabilities(freq: np.ndarray) -> np.ndarray:
    """The exact float64 probabilities the coder uses for an integer table."""
    return np.asarray(freq, dtype=np.float64) / float(1 << PRECISION)

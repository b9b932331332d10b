"""The range coder every entropy model codes with: constriction's queue coder on 32-bit words.

constriction is used instead of a hand-written coder: it is maintained, fast, and exact. A
stream is a sequence of little-endian 32-bit words; several entropy models may code into one
stream in turn (a tile's sub-stream holds z, then y), so their ``compress``/``decompress`` take an
optional :class:`Encoder` / :class:`Decoder` to share.
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import BitstreamError
from .tables import probabilities

Encoder = constriction.stream.queue.RangeEncoder
Decoder = constriction.stream.queue.RangeDecoder
#: What constriction raises on data it cannot decode (it asserts on some invalid input).
DECODE_ERRORS = (ValueError, RuntimeError, OverflowError, AssertionError)


def categorical(freqs: np.ndarray):
    """The coder's model for an integer frequency table (symbols 0..len-1)."""
    return constriction.stream.model.Categorical(probabilities(freqs), perfect=False)


def new_encoder() -> Encoder:
    return Encoder()


def finish(encoder: Encoder) -> bytes:
    """The bytes of everything coded into ``encoder``."""
    return encoder.get_compressed().astype("<u4").tobytes()


def open_stream(data: bytes) -> Decoder:
    """A decoder over ``data``; BitstreamError when it is not whole 32-bit words."""
    if len(data) % 4:
        raise BitstreamError(f"tile sub-stream length {len(data)} is not a multiple of 4 bytes")
    return Decoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))

"""gancodec: a learned image codec (CNN hyperprior + GAN realism decoder).

Public API::

    from gancodec import compress, decompress, read_header, BitstreamError

Importing gancodec is light: the codec (and torch) load on first use of ``compress``,
``decompress`` or ``read_header``. It also registers the ``.gcx`` format with Pillow
(:mod:`gancodec.pillow`), so ``Image.open("x.gcx")`` and ``im.save("x.gcx", quality=3)`` work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import pillow  # noqa: F401 - registers the GCX format with Pillow
from .errors import BitstreamError, DataError, GancodecError, ModelError, StorageError

if TYPE_CHECKING:
    from .codec import compress, decompress, read_header

__all__ = ["compress", "decompress", "read_header", "BitstreamError", "DataError", "GancodecError",
           "ModelError", "StorageError"]
__version__ = "0.1.0"

_CODEC_NAMES = frozenset({"compress", "decompress", "read_header"})


def __getattr__(name: str) -> Any:
    if name in _CODEC_NAMES:
        from . import codec

        value = getattr(codec, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'gancodec' has no attribute {name!r}")

"""gancodec: a learned image codec (CNN hyperprior + GAN realism decoder).

Public API::

    from gancodec import compress, decompress, read_header, BitstreamError
"""

from .codec import compress, decompress, read_header
from .errors import BitstreamError, DataError, GancodecError, ModelError, StorageError

__all__ = ["compress", "decompress", "read_header", "BitstreamError", "DataError", "GancodecError",
           "ModelError", "StorageError"]
__version__ = "0.1.0"

"""The exception types of gancodec: one per domain.

Every message names the file (or object), the field at fault and, where there is one, the fix.
The CLI prints ``str(error)`` on one line and exits non-zero; it never shows a traceback.
"""

from __future__ import annotations


class GancodecError(Exception):
    """Base class of every error gancodec raises on purpose."""


class BitstreamError(GancodecError, ValueError):
    """A ``.gcx`` stream is malformed, truncated, foreign, or made by another model."""


class DataError(GancodecError, ValueError):
    """An input image or dataset file cannot be used (corrupt, unsupported, too large...)."""


class StorageError(GancodecError, OSError):
    """Reading or writing a local file or an S3 object failed (permissions, full disk, bad key)."""


class ModelError(GancodecError, RuntimeError):
    """Weights are missing, do not match their model card, or do not fit the model."""

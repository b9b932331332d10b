"""Image input/output and the pipeline's data stages (download, validate, split).

:data:`IMAGE_SUFFIXES` lives here, import-light, because the CLI, bulk planning and training
all filter file names with it before any image library loads.
"""

from __future__ import annotations

import os

#: File name endings of the images gancodec reads (compress, bulk, training crops): one set,
#: formats the installed Pillow opens (AVIF included: built into Pillow >= 11.2).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".avif"}
)


def is_image_name(name: str | os.PathLike) -> bool:
    """Whether a file or object name ends in one of :data:`IMAGE_SUFFIXES` (any case)."""
    return os.path.splitext(os.fspath(name))[1].lower() in IMAGE_SUFFIXES

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


#: What gancodec adds to a source's name: ``a/b.png`` is stored as ``a/b.png.gcx``.
COMPRESSED_SUFFIX = ".gcx"


def compressed_name(name: str) -> str:
    """The one naming rule for folder and bucket outputs: the source's full name plus ``.gcx``.

    ``a/b.png`` -> ``a/b.png.gcx``. Keeping the source's extension means ``x.png`` and ``x.jpg``
    never share an output, an output names its source without a manifest, and a rerun or a new
    folder member never renames what was written before (docs/formats.md, "File names").
    """
    return name + COMPRESSED_SUFFIX


def decompressed_name(name: str) -> str:
    """``a/b.png.gcx`` -> ``a/b.png``; ``a/b.jpg.gcx`` -> ``a/b.jpg.png``; ``a/b.gcx`` -> ``a/b.png``.

    Decoded images are PNG; a source that was a PNG gets its own name back, any other keeps its
    full name plus ``.png``, so two sources never decode onto one file.
    """
    stem = name[: -len(COMPRESSED_SUFFIX)] if name.lower().endswith(COMPRESSED_SUFFIX) else name
    return stem if stem.lower().endswith(".png") else stem + ".png"

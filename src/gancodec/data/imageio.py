"""Reading images into the codec's canonical form: a ``uint8`` array, HxWxC, C in {1, 3}.

Conversions follow one documented policy (docs/formats.md):

* RGB and grayscale are kept as they are (grayscale is coded as one channel).
* RGBA / LA / palette-with-transparency: alpha is dropped (composited on nothing, i.e. the
  colour channels are kept) with a warning; gancodec is a lossy codec for photographs.
* Palette, CMYK, YCbCr, LAB...: converted to RGB with a warning.
* 16-bit and float images: scaled to 8 bits with a warning.
* EXIF orientation is applied, so the coded image is the one a viewer shows.

A pixel-count cap (``max_pixels``) is checked from the header *before* decoding, like Pillow's
decompression-bomb guard, so a hostile file cannot make us allocate gigabytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from pathlib import Path
from typing import Iterator, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError
from . import IMAGE_SUFFIXES, is_image_name  # noqa: F401 - re-exported

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]

#: Default cap on pixels per image (256 MP); override per call or with GANCODEC_MAX_PIXELS.
DEFAULT_MAX_PIXELS = 256 * 1024 * 1024


class ConversionWarning(UserWarning):
    """An input was converted (alpha dropped, 16-bit reduced, palette expanded...)."""


def max_pixels_default() -> int:
    from .. import settings

    try:
        return settings.integer("GANCODEC_MAX_PIXELS", DEFAULT_MAX_PIXELS, "give a pixel count")
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _warn(name: str, what: str) -> None:
    warnings.warn(f"{name}: {what}", ConversionWarning, stacklevel=3)


def _from_array(arr: np.ndarray, name: str, max_pixels: int) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise DataError(f"{name}: array shape {arr.shape} is not HxW or HxWxC with C in 1..4")
    h, w, c = arr.shape
    if h < 1 or w < 1:
        raise DataError(f"{name}: image is empty ({w}x{h})")
    if h * w > max_pixels:
        raise DataError(f"{name}: {w}x{h} = {h * w} pixels exceeds max_pixels={max_pixels}; raise the limit to allow it")
    if c in (2, 4):
        _warn(name, "alpha channel dropped (gancodec codes colour only)")
        arr = arr[:, :, : c - 1]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        _warn(name, "16-bit image reduced to 8 bits")
        return np.ascontiguousarray(((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8))
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{name}: float image holds NaN or infinity")
        _warn(name, "float image scaled from [0, 1] to 8 bits")
        return np.ascontiguousarray(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8))
    raise DataError(f"{name}: pixel type {arr.dtype} is not supported; give uint8, uint16 or float")


def _from_pil(img: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    w, h = img.size
    if w * h > max_pixels:
        raise DataError(f"{name}: {w}x{h} = {w * h} pixels exceeds max_pixels={max_pixels}; raise the limit to allow it")
    if getattr(img, "n_frames", 1) > 1:
        _warn(name, f"animated image: only the first of {img.n_frames} frames is coded")
        img.seek(0)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF must not stop an otherwise good image
        _warn(name, "unreadable EXIF orientation ignored")
    mode = img.mode
    if mode in ("RGB", "L"):
        pass
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        _warn(name, f"{mode} image reduced to 8-bit grayscale")
        arr = np.asarray(img, dtype=np.int64)
        top = 65535 if mode != "I" or arr.max(initial=0) > 255 else 255
        arr = np.clip(arr, 0, top)
        return _from_array(((arr * 255 + top // 2) // top).astype(np.uint8), name, max_pixels)
    elif mode == "F":
        return _from_array(np.asarray(img, dtype=np.float32), name, max_pixels)
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        _warn(name, f"{mode} image: alpha channel dropped (gancodec codes colour only)")
        img = img.convert("L" if mode in ("LA", "La") else "RGB")
    elif mode == "1":
        img = img.convert("L")
    else:
        _warn(name, f"{mode} image converted to RGB")
        img = img.convert("RGB")
    return _from_array(np.asarray(img), name, max_pixels)


_GRAY_WIDE = ("I;16", "I;16B", "I;16L", "I", "F")  # modes _from_pil reduces (and warns about) itself


_limit_lock = threading.Lock()
_limit_users = 0
_limit_saved: int | None = None


@contextlib.contextmanager
def _max_pixels_only() -> Iterator[None]:
    """Pillow's own decompression-bomb limit off in this block: ``max_pixels`` is the one limit.

    Otherwise Pillow refuses files above ~89 MP with a misleading error, below our 256 MP cap.
    Pillow's limit is a module global, so concurrent readers (the bulk flow's threads) share one
    switch: the first in turns it off, the last out restores the caller's value.
    """
    global _limit_users, _limit_saved
    with _limit_lock:
        if _limit_users == 0:
            _limit_saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        _limit_users += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _limit_saved


def _reads_16_bit(img: Image.Image) -> bool:
    """True when the file stores 16 bits per sample (call before ``load``: e.g. a 16-bit RGB PNG,
    which Pillow silently reads as 8-bit RGB)."""
    for tile in img.tile or ():
        args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
        if args and isinstance(args[0], str) and ";16" in args[0]:
            return True
    return False


def load_image(image: ImageInput, *, max_pixels: int | None = None) -> np.ndarray:
    """Return ``image`` (a path, PIL image or array) as a uint8 HxWxC array with C in {1, 3}.

    Raises :class:`DataError` naming the file for anything that is not a decodable image
    within ``max_pixels``.
    """
    max_pixels = max_pixels_default() if max_pixels is None else max_pixels
    if isinstance(image, np.ndarray):
        return _from_array(image, "array", max_pixels)
    if isinstance(image, Image.Image):
        return _from_pil(image, "image", max_pixels)
    if not isinstance(image, (str, os.PathLike)):
        raise DataError(f"cannot read an image from a {type(image).__name__}; give a path, PIL image or numpy array")
    path = Path(image)
    name = str(path)
    if not path.is_file():
        raise DataError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{name}: file is empty (0 bytes)")
    return _decode_file(path, name, max_pixels)


def load_image_bytes(data: bytes, name: str, *, max_pixels: int | None = None) -> np.ndarray:
    """:func:`load_image` for an encoded file already in memory (an object from a bucket);
    ``name`` (its key or URL) is what error messages and warnings name."""
    max_pixels = max_pixels_default() if max_pixels is None else max_pixels
    if not data:
        raise DataError(f"{name}: file is empty (0 bytes)")
    return _decode_file(io.BytesIO(data), name, max_pixels)


def _decode_file(source: Path | io.BytesIO, name: str, max_pixels: int) -> np.ndarray:
    """The one decoder of encoded files: header size check, 16-bit note, the conversion policy."""
    try:
        with _max_pixels_only(), Image.open(source) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise DataError(f"{name}: {w}x{h} = {w * h} pixels exceeds max_pixels={max_pixels}; "
                                "raise the limit (GANCODEC_MAX_PIXELS) to allow it")
            deep = _reads_16_bit(img)
            img.load()
            if deep and img.mode not in _GRAY_WIDE:
                _warn(name, f"16-bit {img.mode} image reduced to 8 bits")
            return _from_pil(img, name, max_pixels)
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{name}: not an image Pillow can read (check the file type)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{name}: cannot decode image ({exc}); the file is probably truncated or corrupt") from None


def save_image(array: np.ndarray, path: str | os.PathLike, *, overwrite: bool = True) -> None:
    """Write a uint8 HxWxC array (C in {1, 3}) with Pillow, atomically (temp file + rename);
    ``overwrite=False`` refuses (StorageError) when ``path`` exists."""
    from ..fsutil import atomic_write_path

    arr = array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array
    img = Image.fromarray(arr)
    suffix = Path(path).suffix or ".png"
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        img.save(tmp, format=Image.registered_extensions().get(suffix.lower(), "PNG"))

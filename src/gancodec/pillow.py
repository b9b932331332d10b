"""A Pillow plugin for ``.gcx`` files, as pillow-avif-plugin does for AVIF.

``import gancodec`` (or ``import gancodec.pillow``) registers it::

    from PIL import Image
    import gancodec

    Image.open("photo.gcx").save("photo.png")          # decodes (the fidelity decoder)
    Image.open("photo.png").save("photo.gcx", quality=3)  # encodes; or bpp=0.3

The format is registered by extension (``.gcx``) and by magic (``GCX\\x89``), so
``Image.open`` recognises a stream under any name. Save options: ``quality`` (1..8, gancodec's
scale, not JPEG's 0..100) or ``bpp``, plus ``device``, ``tile_size``, ``refine_steps``,
``weights`` and ``fallback`` (the WebP safety net, on by default; ``fallback=False`` turns it
off). A WebP fallback stream (format version 2) opens like any other: ``im.info["payload"]``
says ``"webp"`` (``"learned"`` otherwise), and it decodes without weights. Open with ``Image.open(...)`` then ``im.load()`` decodes on the default device
(:func:`gancodec.decompress`). The codec itself loads on first use, so registering costs little.
"""

from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile

from .bitstream import DEFAULT_MAX_PIXELS, MAGIC, read_header
from .errors import BitstreamError

FORMAT = "GCX"
EXTENSION = ".gcx"
MIME = "image/x-gcx"
#: Options ``im.save(..., **options)`` passes on to :func:`gancodec.compress`.
SAVE_OPTIONS = ("quality", "bpp", "device", "tile_size", "refine_steps", "weights", "fallback")


def _accept(prefix: bytes) -> bool:
    return prefix[: len(MAGIC)] == MAGIC


class GcxImageFile(ImageFile.ImageFile):
    """A ``.gcx`` stream opened by Pillow: size and mode from the header; pixels decoded on load."""

    format = FORMAT
    format_description = "gancodec learned image codec"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            header = read_header(data, max_pixels=Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS)
        except BitstreamError as exc:
            raise SyntaxError(f"not a valid gcx stream ({exc})") from None
        self._size = (header.width, header.height)
        self._mode = "L" if header.channels == 1 else "RGB"
        self.info["payload"] = header.payload
        if header.version == 1:
            self.info["quality"] = header.quality
            self.info["model_id"] = header.model_id
        self._gcx = data
        self.tile = [ImageFile._Tile("gcx", (0, 0) + self.size, 0, None)]

    def load(self):  # decode the whole stream at once: the codec has no row-by-row decoder
        if self.tile and getattr(self, "_gcx", None) is not None:
            from .codec import decompress

            decoded = decompress(self._gcx)
            self.im = decoded.im
            self._mode = decoded.mode
            self._size = decoded.size
            self.tile = []
            self._gcx = None
            self.readonly = 0
        return Image.Image.load(self)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from .codec import compress

    options = {k: im.encoderinfo[k] for k in SAVE_OPTIONS if im.encoderinfo.get(k) is not None}
    unknown = sorted(set(im.encoderinfo) - set(SAVE_OPTIONS) - {"format"})
    if unknown:  # Pillow would drop them silently: say so instead
        raise ValueError(f"gcx: unknown save option(s) {unknown}; valid options are {list(SAVE_OPTIONS)}")
    fp.write(compress(im, **options))


def register() -> None:
    """Register the ``GCX`` format with Pillow (idempotent; done by ``import gancodec``)."""
    Image.register_open(FORMAT, GcxImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register()

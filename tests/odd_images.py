"""A corpus of malformed and odd image files, made on the fly (nothing is downloaded).

:func:`make_corpus` returns one :class:`OddImage` per case: the file's name and bytes and the
outcome docs/formats.md promises for it, as each entry point reports it:

* ``compress`` / the CLI: a :class:`~gancodec.DataError` whose message contains ``error``, or
  a decoded image in ``mode`` that looks like ``intent`` (the pixels a viewer sees: same size,
  close values), with a ``ConversionWarning`` containing ``warning`` (none when it is None);
* the validate stage (run with :data:`VALIDATE_MIN_SIDE`): ``status`` and either the
  quarantine ``reason`` or a note that must be listed;
* the bulk job: failed with kind ``data`` when ``error`` is set, else ok.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: The validate stage's min_side for this corpus: 1x1 and the 1- or 2-pixel strips are too small.
VALIDATE_MIN_SIDE = 32


@dataclass(frozen=True, eq=False)
class OddImage:
    """One corpus file and what each entry point must do with it."""

    name: str
    data: bytes
    intent: np.ndarray | None = None  # the pixels a viewer sees (HxW or HxWx3 uint8); None: refused
    error: str | None = None  # substring of the DataError message; None: the image is usable
    mode: str = "RGB"  # decoded PIL mode
    warning: str | None = None  # substring of the ConversionWarning; None: no warning
    status: str = "ok"  # validate: ok | converted | quarantined
    why: str = ""  # validate: the quarantine reason, or a note that must be present

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def size(self) -> tuple[int, int]:
        """The decoded (width, height)."""
        return self.intent.shape[1], self.intent.shape[0]


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like uint8 RGB array (scikit-image's astronaut, resized and shifted)."""
    from skimage import data

    src = Image.fromarray(data.astronaut()).resize((max(width, 2), max(height, 2)), Image.Resampling.BILINEAR)
    arr = np.asarray(src)[:height, :width].astype(np.int16)
    return np.clip(arr + seed * 7, 0, 255).astype(np.uint8)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    """``img`` saved with Pillow in ``fmt``, as bytes."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A ~60-byte PNG whose header declares ``width`` x ``height`` RGB pixels (valid CRCs)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def png16_rgb(arr8: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one; OpenCV can)."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(arr8, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    assert ok
    return buf.tobytes()


def _frames(width: int, height: int, n: int = 3) -> list[Image.Image]:
    return [Image.fromarray(photo(width, height, seed=3 * i)) for i in range(n)]


def _animated(fmt: str, width: int, height: int) -> bytes:
    first, *rest = _frames(width, height)
    return encode(first, fmt, save_all=True, append_images=rest, duration=100, loop=0)


def _exif_rotated(stored: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    return encode(Image.fromarray(stored), "JPEG", quality=90, exif=exif.tobytes())


def _palette(width: int, height: int, transparent: bool) -> bytes:
    img = Image.fromarray(photo(width, height, 5)).quantize(64)
    return encode(img, "PNG", transparency=0) if transparent else encode(img, "PNG")


def _with_alpha(arr: np.ndarray, opaque: bool) -> np.ndarray:
    h, w = arr.shape[:2]
    alpha = np.full((h, w), 255, np.uint8) if opaque else np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))
    return np.dstack([arr, alpha])


def _truncated_cases() -> list[OddImage]:
    img = Image.fromarray(photo(64, 64, 1))
    cut = {"png": encode(img, "PNG"), "jpg": encode(img, "JPEG", quality=90), "webp": encode(img, "WEBP", quality=80)}
    return [OddImage(f"truncated.{ext}", data[: len(data) // 2], error="truncated", status="quarantined", why="truncated")
            for ext, data in cut.items()]


def _refused_cases() -> list[OddImage]:
    return [
        OddImage("zero.png", b"", error="empty", status="quarantined", why="zero_byte"),
        OddImage("bomb.png", png_bomb(100_000, 100_000), error="max_pixels", status="quarantined", why="too_large"),
        OddImage("bomb_medium.png", png_bomb(20_000, 20_000), error="max_pixels", status="quarantined", why="too_large"),
        OddImage("notes.png", b"these are my notes, not a picture\n" * 8, error="not an image", status="quarantined",
                 why="not_an_image"),
    ]


def _converted_cases() -> list[OddImage]:
    rgb, gray = photo(64, 48, 2), np.asarray(Image.fromarray(photo(64, 48, 6)).convert("L"))
    deep, rgba = photo(64, 48, 7), _with_alpha(photo(64, 48, 8), opaque=False)
    pal, pal_t = _palette(64, 48, transparent=False), _palette(64, 48, transparent=True)
    as_rgb = lambda data: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # noqa: E731
    turned, named = photo(64, 40, 4), photo(64, 48, 9)
    return [
        OddImage("cmyk.jpg", encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=90), rgb, warning="CMYK",
                 status="converted", why="cmyk"),
        OddImage("deep16_gray.png", encode(Image.fromarray(gray.astype(np.uint16) * 257), "PNG"), gray, mode="L",
                 warning="8-bit", status="converted", why="16bit"),
        OddImage("deep16_rgb.png", png16_rgb(deep), deep, warning="16-bit", status="converted", why="16bit"),
        OddImage("palette.png", pal, as_rgb(pal), warning="P image", status="converted", why="palette"),
        OddImage("palette_alpha.png", pal_t, as_rgb(pal_t), warning="alpha", status="quarantined", why="transparent_alpha"),
        OddImage("rgba.png", encode(Image.fromarray(rgba), "PNG"), rgba[..., :3], warning="alpha", status="quarantined",
                 why="transparent_alpha"),
        OddImage("la_opaque.png", encode(Image.fromarray(np.dstack([gray, np.full_like(gray, 255)]), "LA"), "PNG"), gray,
                 mode="L", warning="alpha", status="converted", why="alpha_opaque"),
        OddImage("animated.gif", _animated("GIF", 64, 48), photo(64, 48, 0), warning="animated", status="converted",
                 why="animated"),
        OddImage("animated.webp", _animated("WEBP", 64, 48), photo(64, 48, 0), warning="animated", status="converted",
                 why="animated"),
        OddImage("rotated.jpg", _exif_rotated(turned), np.rot90(turned, k=-1), status="converted", why="exif_rotated"),
        OddImage("png_named.jpg", encode(Image.fromarray(named), "PNG"), named, status="converted", why="wrong_extension"),
    ]


def _plain_cases() -> list[OddImage]:
    good, gray = photo(64, 48, 10), np.asarray(Image.fromarray(photo(64, 48, 11)).convert("L"))
    strips = {"one.png": photo(1, 1, 12), "tall.png": photo(1, 3000, 13), "wide.png": photo(3000, 2, 14)}
    return [
        OddImage("good.png", encode(Image.fromarray(good), "PNG"), good, status="ok"),
        OddImage("gray.png", encode(Image.fromarray(gray), "PNG"), gray, mode="L", status="converted", why="grayscale"),
        *(OddImage(name, encode(Image.fromarray(arr), "PNG"), arr, status="quarantined", why="too_small")
          for name, arr in strips.items()),
    ]


def make_corpus() -> list[OddImage]:
    """Every case, in a stable order (names are unique)."""
    cases = _truncated_cases() + _refused_cases() + _converted_cases() + _plain_cases()
    assert len({c.name for c in cases}) == len(cases)
    return cases


def write_corpus(folder: Path, cases: list[OddImage] | None = None) -> dict[str, OddImage]:
    """Write the corpus into ``folder``; returns name -> case."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = make_corpus() if cases is None else cases
    for case in cases:
        (folder / case.name).write_bytes(case.data)
    return {c.name: c for c in cases}

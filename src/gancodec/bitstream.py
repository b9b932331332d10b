"""The ``.gcx`` container (specified in docs/bitstream.md): format version 1 carries the learned
codec's stream, version 2 a classical payload (the WebP safety net, :mod:`gancodec.fallback`).

Layout (all integers little-endian)::

    offset size  field
    0      4     magic        b"GCX\\x89"
    4      1     version      1
    5      16    model_id     first 16 bytes of the SHA-256 of the weights file
    21     2     quality      rate knob x 1000 (uint16)
    23     4     height       pixels (uint32, >= 1)
    27     4     width        pixels (uint32, >= 1)
    31     1     channels     1 (grayscale) or 3 (RGB)
    32     1     bit_depth    8
    33     2     tile_size    pixels per tile side (uint16, multiple of 64)
    35     2     halo         analysis halo in pixels (uint16)
    37     4     n_tiles      must equal ceil(H16/tile) * ceil(W16/tile)
    41     4*n   tile_lengths byte length of each tile's sub-stream (multiples of 4)
    ...          payload      the sub-streams, in raster order of tiles
    end-4  4     crc32        CRC-32 (zlib) of every byte before it

:func:`read` checks every field before using it and raises :class:`BitstreamError` naming the
field for anything malformed, truncated or foreign. Allocation is bounded by ``max_pixels``.

Version 2 (a classical payload; 19-byte header, then the payload, then the CRC)::

    offset size  field
    0      4     magic          b"GCX\\x89"
    4      1     version        2
    5      1     payload        1 = WebP (a complete RIFF/WebP file)
    6      4     height         pixels (uint32, 1..16383)
    10     4     width          pixels (uint32, 1..16383)
    14     1     channels       1 (grayscale) or 3 (RGB)
    15     4     payload_length bytes of the payload
    19     n     payload        the WebP file
    end-4  4     crc32          CRC-32 (zlib) of every byte before it

:func:`read` dispatches on the version byte; a version-2 stream's WebP must state the header's
size (read from its own header, without decoding) before anyone decodes it.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from .errors import BitstreamError

MAGIC = b"GCX\x89"
VERSION = 1
VERSION_CLASSIC = 2  # a classical payload (WebP) instead of the learned stream
VERSIONS = (VERSION, VERSION_CLASSIC)
MODEL_ID_BYTES = 16
QUALITY_SCALE = 1000
_FIXED = struct.Struct("<4sB16sHIIBBHHI")
HEADER_BYTES = _FIXED.size  # 41
CRC_BYTES = 4
MIN_TILE, MAX_TILE = 64, 8192
#: Default pixel cap for decoding (like Pillow's bomb guard); override with ``max_pixels=``.
DEFAULT_MAX_PIXELS = 256 * 1024 * 1024
_CLASSIC = struct.Struct("<4sBBIIBI")
CLASSIC_HEADER_BYTES = _CLASSIC.size  # 19
#: Bytes a version-2 container adds to its payload (header and CRC).
CLASSIC_OVERHEAD = CLASSIC_HEADER_BYTES + CRC_BYTES  # 23
#: Payload kinds of version 2: the byte and its name.
PAYLOAD_KINDS = {1: "webp"}
WEBP_MAX_SIDE = 16383  # libwebp's limit per side


@dataclass(frozen=True)
class Header:
    model_id: str  # 32 hex digits
    quality: float
    height: int
    width: int
    channels: int
    bit_depth: int
    tile_size: int
    halo: int
    tile_lengths: tuple[int, ...]

    @property
    def n_tiles(self) -> int:
        return len(self.tile_lengths)

    @property
    def pixels(self) -> int:
        return self.height * self.width

    version = VERSION
    payload = "learned"  # what the stream carries (a version-2 stream: its payload kind)


@dataclass(frozen=True)
class ClassicHeader:
    """The header of a version-2 stream: a classical payload (``payload`` names it: "webp")."""

    payload: str
    height: int
    width: int
    channels: int
    payload_length: int

    version = VERSION_CLASSIC
    bit_depth = 8
    model_id = None  # no model made it: it decodes without weights
    quality = None

    @property
    def pixels(self) -> int:
        return self.height * self.width


def tile_grid(height: int, width: int, tile_size: int) -> tuple[int, int]:
    """Rows and columns of tiles for an image (padded to multiples of 16)."""
    h16, w16 = -(-height // 16) * 16, -(-width // 16) * 16
    return math.ceil(h16 / tile_size), math.ceil(w16 / tile_size)


def write(header: Header, payloads: list[bytes]) -> bytes:
    """Serialise a header and the tiles' sub-streams into a complete ``.gcx`` file."""
    if len(payloads) != header.n_tiles or any(len(p) != n for p, n in zip(payloads, header.tile_lengths)):
        raise ValueError("tile_lengths do not match the payloads")
    q = round(header.quality * QUALITY_SCALE)
    if not 0 <= q <= 0xFFFF:
        raise ValueError(f"quality {header.quality} cannot be stored")
    fixed = _FIXED.pack(MAGIC, VERSION, bytes.fromhex(header.model_id), q, header.height, header.width,
                        header.channels, header.bit_depth, header.tile_size, header.halo, header.n_tiles)
    body = fixed + struct.pack(f"<{header.n_tiles}I", *header.tile_lengths) + b"".join(payloads)
    return body + struct.pack("<I", zlib.crc32(body))


def write_classic(payload: str, height: int, width: int, channels: int, data: bytes) -> bytes:
    """A version-2 ``.gcx`` file carrying ``data``, a classical stream of kind ``payload`` ("webp")."""
    kind = {name: byte for byte, name in PAYLOAD_KINDS.items()}.get(payload)
    if kind is None:
        raise ValueError(f"payload kind {payload!r} is not one of {sorted(PAYLOAD_KINDS.values())}")
    if channels not in (1, 3) or not (1 <= height <= WEBP_MAX_SIDE and 1 <= width <= WEBP_MAX_SIDE):
        raise ValueError(f"a {width}x{height}x{channels} image cannot be stored in a version-2 stream")
    body = _CLASSIC.pack(MAGIC, VERSION_CLASSIC, kind, height, width, channels, len(data)) + bytes(data)
    return body + struct.pack("<I", zlib.crc32(body))


def read(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
         quality_max: float | None = None) -> tuple[Header | ClassicHeader, list[bytes]]:
    """Parse and validate a ``.gcx`` file; return its header and the tiles' sub-streams (a
    version-2 file: a :class:`ClassicHeader` and a one-item list, its payload)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise BitstreamError("empty input: a .gcx file is at least 49 bytes")
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError(f"magic: not a .gcx file (starts with {data[:4]!r}, expected {MAGIC!r})")
    if len(data) > 4 and data[4] == VERSION_CLASSIC:
        return _read_classic(data, max_pixels)
    if len(data) < HEADER_BYTES + CRC_BYTES:
        raise BitstreamError(f"truncated: {len(data)} bytes is shorter than the {HEADER_BYTES + CRC_BYTES}-byte minimum")
    magic, version, model_id, q, height, width, channels, bit_depth, tile_size, halo, n_tiles = _FIXED.unpack_from(data)
    if version != VERSION:
        raise BitstreamError(f"version: format version {version} is not supported (this gancodec reads versions {VERSION} and {VERSION_CLASSIC}); upgrade gancodec")
    _check_size(height, width, max_pixels)
    if channels not in (1, 3):
        raise BitstreamError(f"channels: {channels} is not 1 or 3")
    if bit_depth != 8:
        raise BitstreamError(f"bit_depth: {bit_depth} is not supported (only 8)")
    if tile_size % 64 or not MIN_TILE <= tile_size <= MAX_TILE:
        raise BitstreamError(f"tile_size: {tile_size} is not a multiple of 64 in [{MIN_TILE}, {MAX_TILE}]")
    if halo % 16 or halo > tile_size:
        raise BitstreamError(f"halo: {halo} is not a multiple of 16 no larger than the tile size")
    rows, cols = tile_grid(height, width, tile_size)
    if n_tiles != rows * cols:
        raise BitstreamError(f"n_tiles: {n_tiles} does not match the {rows}x{cols} tile grid of a {width}x{height} image")
    quality = q / QUALITY_SCALE
    if quality_max is not None and quality > quality_max:
        raise BitstreamError(f"quality: {quality} is above the model's maximum {quality_max}")
    table_end = HEADER_BYTES + 4 * n_tiles
    if len(data) < table_end + CRC_BYTES:
        raise BitstreamError(f"truncated: {len(data)} bytes cannot hold the table of {n_tiles} tile lengths")
    lengths = struct.unpack_from(f"<{n_tiles}I", data, HEADER_BYTES)
    _check_length_and_crc(data, table_end + sum(lengths) + CRC_BYTES, "tile_lengths say")
    for i, n in enumerate(lengths):
        if n % 4:
            raise BitstreamError(f"tile_lengths[{i}]: {n} is not a multiple of 4")
    payloads, pos = [], table_end
    for n in lengths:
        payloads.append(data[pos : pos + n])
        pos += n
    header = Header(model_id.hex(), quality, height, width, channels, bit_depth, tile_size, halo, tuple(lengths))
    return header, payloads


def _check_size(height: int, width: int, max_pixels: int) -> None:
    """Both versions: a non-empty image of at most ``max_pixels`` pixels (checked before anything
    is allocated for it)."""
    if height < 1 or width < 1:
        raise BitstreamError(f"height/width: image size {width}x{height} is empty")
    if height * width > max_pixels:
        raise BitstreamError(f"height/width: {width}x{height} = {height * width} pixels exceeds max_pixels={max_pixels}; raise the limit if the file is trusted")


def _check_length_and_crc(data: bytes, expected: int, source: str) -> None:
    """Both versions: the file is exactly ``expected`` bytes (what ``source``, the header's length
    field(s), says) and its trailing CRC-32 matches every byte before it."""
    if expected != len(data):
        what = "truncated" if expected > len(data) else "trailing data"
        raise BitstreamError(f"{what}: {source} the file is {expected} bytes, it is {len(data)}")
    (crc,) = struct.unpack_from("<I", data, len(data) - CRC_BYTES)
    if zlib.crc32(data[: len(data) - CRC_BYTES]) != crc:
        raise BitstreamError("crc32: checksum mismatch, the file is corrupt (bit errors or an incomplete copy)")


def _read_classic(data: bytes, max_pixels: int) -> tuple[ClassicHeader, list[bytes]]:
    """A version-2 file: header fields, length, CRC, then the payload's own header (its size)."""
    if len(data) < CLASSIC_OVERHEAD:
        raise BitstreamError(f"truncated: {len(data)} bytes is shorter than the {CLASSIC_OVERHEAD}-byte minimum of a version-2 stream")
    _, _, kind, height, width, channels, length = _CLASSIC.unpack_from(data)
    if kind not in PAYLOAD_KINDS:
        known = ", ".join(f"{k} = {v}" for k, v in PAYLOAD_KINDS.items())
        raise BitstreamError(f"payload: kind {kind} is not known to this gancodec ({known}); upgrade gancodec")
    _check_size(height, width, max_pixels)
    if height > WEBP_MAX_SIDE or width > WEBP_MAX_SIDE:
        raise BitstreamError(f"height/width: {width}x{height} exceeds WebP's limit of {WEBP_MAX_SIDE} pixels per side")
    if channels not in (1, 3):
        raise BitstreamError(f"channels: {channels} is not 1 or 3")
    _check_length_and_crc(data, CLASSIC_OVERHEAD + length, "payload_length says")
    payload = data[CLASSIC_HEADER_BYTES : CLASSIC_HEADER_BYTES + length]
    _check_webp(payload, width, height)
    return ClassicHeader(PAYLOAD_KINDS[kind], height, width, channels, length), [payload]


def _check_webp(payload: bytes, width: int, height: int) -> None:
    """The payload is one still WebP image of the header's size (its own header, read lazily by
    Pillow: nothing is decoded or allocated for the pixels)."""
    if len(payload) < 12 or payload[:4] != b"RIFF" or payload[8:12] != b"WEBP":
        raise BitstreamError(f"payload: not a WebP file (starts with {payload[:12]!r}, expected RIFF....WEBP)")
    (riff,) = struct.unpack_from("<I", payload, 4)
    if riff + 8 != len(payload):
        raise BitstreamError(f"payload: the WebP's RIFF size says {riff + 8} bytes, the payload is {len(payload)}")
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(payload), formats=["WEBP"]) as im:
                size, frames = im.size, getattr(im, "n_frames", 1)
    except Exception as exc:  # noqa: BLE001 - Pillow raises several types for a broken file
        raise BitstreamError(f"payload: the WebP cannot be read ({type(exc).__name__}: {exc})") from None
    if size != (width, height):
        raise BitstreamError(f"payload: the WebP is {size[0]}x{size[1]}, the header says {width}x{height}")
    if frames != 1:
        raise BitstreamError(f"payload: the WebP has {frames} frames, expected one still image")


def read_header(data: bytes, **kwargs) -> Header | ClassicHeader:
    """Validated header of a ``.gcx`` file (the whole file is checked, CRC included)."""
    return read(data, **kwargs)[0]

"""The .gcx reader: every malformed, truncated or foreign input is a BitstreamError, never a crash."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest

import gancodec
from gancodec import BitstreamError, bitstream
from gancodec.bitstream import HEADER_BYTES, Header

from sample_images import astronaut


@pytest.fixture(scope="module")
def stream() -> bytes:
    return gancodec.compress(astronaut(128), quality=3)


def _recrc(body: bytes) -> bytes:
    """A stream whose CRC is right again after a deliberate edit (to reach the field checks)."""
    return body + struct.pack("<I", zlib.crc32(body))


def _edit(data: bytes, offset: int, fmt: str, value) -> bytes:
    body = bytearray(data[:-4])
    struct.pack_into(fmt, body, offset, value)
    return _recrc(bytes(body))


def test_header_round_trip():
    h = Header("ab" * 16, 3.25, 10, 2000, 3, 8, 1024, 32, (4, 8))
    data = bitstream.write(h, [b"\0" * 4, b"\1" * 8])
    h2, payloads = bitstream.read(data)
    assert h2 == h and payloads == [b"\0" * 4, b"\1" * 8]


@pytest.mark.parametrize("data,field", [(b"", "empty"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 60, "magic"),
                                        (b"GCX", "magic"), (b"GCX\x89" + b"\0" * 10, "truncated")])
def test_empty_foreign_and_short(data, field):
    with pytest.raises(BitstreamError, match=field):
        gancodec.decompress(data)


def test_every_truncation_is_an_error(stream):
    for n in range(0, len(stream), max(1, len(stream) // 97)):
        with pytest.raises(BitstreamError):
            gancodec.decompress(stream[:n])


def test_every_single_bit_flip_is_caught(stream):
    rng = np.random.default_rng(0)
    for bit in rng.choice(len(stream) * 8, size=200, replace=False):
        bad = bytearray(stream)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            gancodec.decompress(bytes(bad))


@pytest.mark.parametrize("offset,fmt,value,field", [
    (4, "<B", 2, "version"),
    (23, "<I", 0, "height"),
    (23, "<I", 1 << 31, "height/width"),  # a decompression bomb: refused before any allocation
    (31, "<B", 4, "channels"),
    (32, "<B", 16, "bit_depth"),
    (33, "<H", 100, "tile_size"),
    (35, "<H", 7, "halo"),
    (37, "<I", 2, "n_tiles"),
    (41, "<I", 1 << 30, "truncated"),
    (21, "<H", 60000, "quality"),
])
def test_field_lies_name_the_field(stream, offset, fmt, value, field):
    t = time.perf_counter()
    with pytest.raises(BitstreamError, match=field):
        gancodec.decompress(_edit(stream, offset, fmt, value))
    assert time.perf_counter() - t < 5


def test_foreign_model_id_names_both_ids(stream):
    bad = _edit(stream, 5, "16s", b"\x11" * 16)
    with pytest.raises(BitstreamError, match="11111111") as info:
        gancodec.decompress(bad)
    assert gancodec.read_header(stream).model_id in str(info.value)


def test_payload_garbage_with_valid_crc_never_crashes(stream):
    rng = np.random.default_rng(1)
    start = HEADER_BYTES + 4
    for _ in range(20):
        body = bytearray(stream[:-4])
        body[start:] = rng.integers(0, 256, len(body) - start, dtype=np.uint8).tobytes()
        try:
            img = gancodec.decompress(_recrc(bytes(body)))
        except BitstreamError:
            continue
        assert img.size == (128, 128)


def test_trailing_bytes_are_refused(stream):
    with pytest.raises(BitstreamError, match="trailing|crc"):
        gancodec.decompress(stream + b"\0\0\0\0")


def test_non_bytes_input():
    with pytest.raises(BitstreamError, match="expected bytes"):
        gancodec.decompress("not bytes")  # type: ignore[arg-type]

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
    return gancodec.compress(astronaut(128), quality=3, fallback=False)  # the learned (version-1) stream


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
    (4, "<B", 3, "version"),  # 2 is the WebP container (tests below)
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


# --------------------------------------------------------------------------- version 2 (WebP payload)


def _webp(img: np.ndarray, quality: int = 50) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="WEBP", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def v2() -> bytes:
    return bitstream.write_classic("webp", 48, 64, 3, _webp(astronaut(64)[:48]))


def test_a_v2_stream_round_trips(v2):
    h, payloads = bitstream.read(v2)
    assert (h.version, h.payload, h.width, h.height, h.channels, h.model_id) == (2, "webp", 64, 48, 3, None)
    assert len(v2) == len(payloads[0]) + bitstream.CLASSIC_OVERHEAD
    img = gancodec.decompress(v2)
    assert img.mode == "RGB" and img.size == (64, 48)
    assert np.abs(np.asarray(img).astype(int) - astronaut(64)[:48]).mean() < 12  # it is the picture


def test_a_grey_v2_stream_decodes_to_mode_l():
    grey = np.repeat(astronaut(64)[:, :, :1], 3, axis=2)
    data = bitstream.write_classic("webp", 64, 64, 1, _webp(grey))
    img = gancodec.decompress(data)
    assert img.mode == "L" and img.size == (64, 64)


@pytest.mark.parametrize("offset,fmt,value,field", [
    (5, "<B", 9, "payload: kind 9"),
    (6, "<I", 0, "height/width"),
    (6, "<I", 1 << 31, "height/width"),  # refused before anything is allocated
    (6, "<I", 47, "payload: the WebP is 64x48"),  # the WebP's own size must match the header's
    (10, "<I", 65, "payload: the WebP is 64x48"),
    (14, "<B", 2, "channels"),
    (15, "<I", 10, "trailing data"),
    (15, "<I", 1 << 30, "truncated"),
    (19, "<4s", b"RIFX", "payload: not a WebP"),
    (23, "<I", 5, "RIFF size"),
])
def test_v2_field_lies_name_the_field(v2, offset, fmt, value, field):
    with pytest.raises(BitstreamError, match=field):
        gancodec.decompress(_edit(v2, offset, fmt, value))


def test_v2_truncation_trailing_data_and_bit_errors_are_refused(v2):
    for n in (5, 10, 22, len(v2) - 1):
        with pytest.raises(BitstreamError, match="truncated|crc32"):
            bitstream.read(v2[:n])
    with pytest.raises(BitstreamError, match="trailing data"):
        bitstream.read(v2 + b"\0")
    bad = bytearray(v2)
    bad[40] ^= 1
    with pytest.raises(BitstreamError, match="crc32"):
        bitstream.read(bytes(bad))


def test_a_v2_stream_with_an_undecodable_webp_names_the_payload(v2):
    body = bytearray(v2[:-4])
    body[19 + 30 : 19 + 60] = b"\xff" * 30  # inside the VP8 chunk: the RIFF frame is intact
    with pytest.raises(BitstreamError, match="payload"):
        gancodec.decompress(_recrc(bytes(body)))


def test_a_reader_of_version_1_only_refuses_v2_asking_for_an_upgrade(v2, monkeypatch):
    monkeypatch.setattr(bitstream, "VERSION_CLASSIC", -1)  # what a gancodec from before version 2 does
    with pytest.raises(BitstreamError, match="version: format version 2 is not supported.*upgrade gancodec"):
        bitstream.read(v2)


def test_both_versions_word_size_length_and_crc_errors_the_same(stream, v2):
    """The size, length and CRC checks are shared by the two readers: the same words, field for field."""
    def message(data: bytes, **kw) -> str:
        with pytest.raises(BitstreamError) as info:
            bitstream.read(data, **kw)
        return str(info.value)

    for data, height_at, lengths in ((stream, 23, "tile_lengths say"), (v2, 6, "payload_length says")):
        h, w = bitstream.read_header(data).height, bitstream.read_header(data).width
        assert message(data, max_pixels=h * w - 1) == (
            f"height/width: {w}x{h} = {h * w} pixels exceeds max_pixels={h * w - 1}; raise the limit if the file is trusted")
        assert message(_edit(data, height_at, "<I", 0)) == f"height/width: image size {w}x0 is empty"
        assert message(data + b"\0") == f"trailing data: {lengths} the file is {len(data)} bytes, it is {len(data) + 1}"
        assert message(data[:-5] + data[-4:]) == f"truncated: {lengths} the file is {len(data)} bytes, it is {len(data) - 1}"
        bad = bytearray(data)
        bad[-6] ^= 1
        assert message(bytes(bad)) == "crc32: checksum mismatch, the file is corrupt (bit errors or an incomplete copy)"

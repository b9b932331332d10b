"""Seeded mutation fuzzing of .gcx streams: only BitstreamError (or a correct-size image), fast.

2,000 cases in CI: bit flips, byte edits, truncations, splices, inserted/deleted bytes, length
lies and field lies, half of them with the CRC recomputed so the field checks and the entropy
decoder are reached. Version-2 streams (a WebP payload, the fallback) get the same, with their
own header fields, so the WebP size check and libwebp's decoder are reached too. `GANCODEC_FUZZ_CASES` runs more (see docs/robustness notes in the test).
"""

from __future__ import annotations

import os
import struct
import time
import zlib

import numpy as np
import pytest

import gancodec
from gancodec import BitstreamError

from sample_images import astronaut, camera, text_page

CASES = int(os.environ.get("GANCODEC_FUZZ_CASES", "2000"))


def _fix_crc(body: bytes) -> bytes:
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4])) if len(body) >= 4 else body


V1_FIELDS = [(4, "<B"), (21, "<H"), (23, "<I"), (27, "<I"), (31, "<B"), (32, "<B"), (33, "<H"), (35, "<H"), (37, "<I"), (41, "<I")]
#: Version 2: version, payload kind, height, width, channels, payload_length, the RIFF size and the
#: VP8 frame's own width/height (bytes 19 + 26 and 19 + 28 of a simple lossy WebP).
V2_FIELDS = [(4, "<B"), (5, "<B"), (6, "<I"), (10, "<I"), (14, "<B"), (15, "<I"), (23, "<I"), (45, "<H"), (47, "<H")]


def _mutate(rng: np.random.Generator, data: bytes, other: bytes, fields=V1_FIELDS) -> bytes:
    b = bytearray(data)
    kind = rng.integers(0, 7)
    if kind == 0:  # bit flips
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(0, len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
    elif kind == 1:  # random bytes
        for _ in range(rng.integers(1, 8)):
            b[rng.integers(0, len(b))] = rng.integers(0, 256)
    elif kind == 2:  # truncation
        b = b[: rng.integers(0, len(b))]
    elif kind == 3:  # splice with another stream
        cut = rng.integers(0, min(len(b), len(other)))
        b = b[:cut] + bytearray(other[cut:])
    elif kind == 4:  # insert or delete bytes
        i = rng.integers(0, len(b))
        if rng.random() < 0.5:
            b[i:i] = rng.integers(0, 256, rng.integers(1, 9), dtype=np.uint8).tobytes()
        else:
            del b[i : i + rng.integers(1, 9)]
    elif kind == 5:  # header field lies: any 1/2/4-byte field in the fixed header
        off, fmt = fields[rng.integers(0, len(fields))]
        top = {"<B": 0xFF, "<H": 0xFFFF, "<I": 0xFFFFFFFF}[fmt]
        value = int(rng.choice([0, 1, top, top // 2, rng.integers(0, top, dtype=np.uint64)]))
        if off + struct.calcsize(fmt) <= len(b):
            struct.pack_into(fmt, b, off, value)
    else:  # payload noise
        start = 45
        if len(b) > start + 4:
            n = len(b) - start - 4
            b[start : start + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(b)


@pytest.fixture(scope="module")
def streams() -> tuple[bytes, bytes]:
    return (gancodec.compress(astronaut(48), quality=3, tile_size=64, fallback=False),
            gancodec.compress(camera(40), quality=6, fallback=False))


@pytest.fixture(scope="module")
def webp_streams() -> tuple[bytes, bytes]:
    pair = gancodec.compress(text_page(), quality=5), gancodec.compress(text_page(grey=True), quality=4)
    assert [gancodec.read_header(s).payload for s in pair] == ["webp", "webp"]
    return pair


def test_mutated_streams_raise_only_bitstream_error(streams):
    _fuzz(streams, V1_FIELDS, CASES, seed=2026)


def test_mutated_webp_fallback_streams_raise_only_bitstream_error(webp_streams):
    _fuzz(webp_streams, V2_FIELDS, CASES // 2, seed=2027)


def _fuzz(streams: tuple[bytes, bytes], fields, cases: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    outcomes = {"error": 0, "decoded": 0}
    worst = 0.0
    for case in range(cases):
        base, other = streams if case % 2 else streams[::-1]
        data = _mutate(rng, base, other, fields)
        if case % 4 < 2:
            data = _fix_crc(data)
        t = time.perf_counter()
        try:
            img = gancodec.decompress(data, max_pixels=1 << 22)
        except BitstreamError:
            outcomes["error"] += 1
        else:
            header = gancodec.read_header(data, max_pixels=1 << 22)
            assert img.size == (header.width, header.height)
            outcomes["decoded"] += 1
        worst = max(worst, time.perf_counter() - t)
    print(f"{cases} cases: {outcomes}, slowest {worst:.3f} s")
    assert outcomes["error"] > cases // 2
    assert worst < 10

"""The WebP safety net: a per-image choice between the learned stream and WebP at no more bytes.

The learned transforms never learned text or flat synthetic graphics: on screenshots, documents
and renders gancodec loses 2-4 dB PSNR to WebP at equal bytes (issue 20). This does not make the
learned model better; it bounds the loss per image. After the learned encode (``B`` bytes),
:func:`choose` encodes the image with WebP (Pillow/libwebp, method 4) at the best-PSNR quality
whose version-2 ``.gcx`` file (:func:`gancodec.bitstream.write_classic`) is at most ``B``
bytes (:func:`best_within`: the highest quality that fits and a bounded set below it, since
libwebp's PSNR is not monotonic in its quality on flat graphics), and keeps it only when its
PSNR beats the learned decode's by more than :data:`MARGIN_DB`. So a file never grows and its
PSNR never drops.

:func:`decode` turns a version-2 stream back into pixels; it needs no weights (and no torch).
This module imports only the bitstream layer, :mod:`gancodec.metrics_core` (the one PSNR, the
evaluation's), numpy and Pillow.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from . import bitstream
from .bitstream import ClassicHeader
from .errors import BitstreamError
from .metrics_core import psnr

#: WebP must beat the learned decode by more than this (dB PSNR) to replace it. The loss it
#: bounds is 2-10 dB (text, UI, graphics); on photos the two codecs are level on average, so a
#: small margin turns photos into WebP files over noise-sized wins: on Kodak 49 % of points fell
#: back at 0.1 dB, 32 % at 0.25, 14 % at 0.5 (docs/evaluation.md, "The WebP fallback"). 0.25 dB
#: keeps two thirds of photo points learned (with their realism decoder and the learned codec's
#: MS-SSIM lead) and every image within 0.25 dB of WebP, half of issue 20's 0.5 dB tolerance.
MARGIN_DB = 0.25
WEBP_METHOD = 4  # libwebp's speed/size trade-off: the setting the evaluation measures WebP at
_QUALITIES = (0, 100)
#: Qualities below the highest that fits which :func:`best_within` also tries (q* - d). On flat
#: graphics libwebp's PSNR is not monotonic in its quality: on the synthetic chart-2x-00006
#: (docs/evaluation.md) q40 decodes at 33.0 dB, q50 at 32.0, q60 at 33.8, q75 at 32.4 and q74 at
#: 34.2; dips span 1-8 qualities. The offsets are dense near q* and reach 20 below it.
LOWER_OFFSETS = (1, 2, 3, 4, 6, 8, 10, 13, 16, 20)
#: The first offsets tried: when the PSNR falls strictly from q* through q* - 3, the search stops
#: there (q* is the best) and the other offsets are not tried. Over 2,261 budgets on 119 images
#: (Kodak, CLIC 2025, 40 CID22 photos, the synthetic screen, document, graphics and studio test
#: sets; ``benchmarks/fallback_offsets.py``) it stopped at 86-94 % of the photo budgets and 42-93 %
#: of the synthetic ones, and never kept a worse WebP than trying every offset; stopping after
#: q* - 2 gave away up to 0.31 dB (a CLIC photo).
MONOTONE_CHECK = 3
#: The search for the highest quality that fits (:func:`highest_fitting`) probes at most this
#: many qualities: every second probe at least halves the bracket over 0..100.
MAX_PROBES = 14
#: At most this many WebP encodes per image: the probes, plus the offsets.
MAX_ENCODES = MAX_PROBES + len(LOWER_OFFSETS)
#: libwebp's file size grows about this much (natural log) per quality step over 5..75 on
#: photos, screens and documents alike (0.011-0.022): the first extrapolation's slope.
_LOG_SIZE_SLOPE = 0.016


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` decided: the stream kept and both PSNRs (``webp_psnr`` is None when
    no WebP was tried or none fitted the budget)."""

    data: bytes
    payload: str  # "learned" or "webp"
    learned_psnr: float
    webp_psnr: float | None
    webp_quality: int | None
    pixels: np.ndarray  # the kept stream's decode, HxWxC uint8


def applies(pixels: np.ndarray) -> bool:
    """Whether WebP can code the image at all (at most 16383 pixels per side)."""
    h, w = pixels.shape[:2]
    return h <= bitstream.WEBP_MAX_SIDE and w <= bitstream.WEBP_MAX_SIDE


def _webp(rgb: Image.Image, quality: int) -> bytes:
    """``rgb`` as a WebP at ``quality``. Safe on several threads at once: Pillow's ``save`` keeps
    its options on the image object, so two threads saving one image can swap qualities (found
    2026-12-07: every candidate below q* came out at one quality); each call saves its own copy."""
    buf = io.BytesIO()
    rgb.copy().save(buf, format="WEBP", quality=quality, method=WEBP_METHOD)
    return buf.getvalue()


@dataclass(frozen=True)
class Candidate:
    """The WebP :func:`best_within` picked: its version-2 ``.gcx`` file, quality, PSNR and decode."""

    data: bytes
    quality: int
    psnr: float
    pixels: np.ndarray  # HxWxC uint8, C = the image's channels


def best_within(pixels: np.ndarray, max_bytes: int, workers: int = 2) -> Candidate | None:
    """The best-PSNR WebP whose version-2 ``.gcx`` file (container included) fits in
    ``max_bytes``; None when even quality 0 does not fit.

    :func:`highest_fitting` finds the highest quality q* that fits (about 5 encodes: a WebP's size
    grows with its quality, nearly monotonically); then q* and the lower qualities q* - d for d in
    :data:`LOWER_OFFSETS` are decoded (each WebP opened once) and the best PSNR is kept (ties: the
    higher quality), stopping after q* - 3 when the PSNR falls strictly from q* to there
    (:data:`MONOTONE_CHECK`: about 8 encodes and 4 decodes on a photo). At most
    :data:`MAX_ENCODES` encodes and 11 decodes per image; the candidates are encoded and decoded
    on ``workers`` threads. Not an exhaustive search: a better quality more than 20 below q*, or
    between the offsets, or below q* - 3 when the PSNR falls through q* - 3, can be missed."""
    h, w, c = pixels.shape
    rgb = Image.fromarray(np.repeat(pixels, 3, axis=2) if c == 1 else pixels, "RGB")  # WebP codes grey as RGB
    overhead = len(bitstream.write_classic("webp", h, w, c, b""))  # the container: fixed size, whatever it carries
    made: dict[int, bytes] = {}  # quality -> its WebP (only the kept one is wrapped, at the end)

    def size(q: int) -> int:
        if q not in made:
            made[q] = _webp(rgb, q)
        return len(made[q]) + overhead

    top = highest_fitting(size, max_bytes)
    if top is None:
        return None

    def score(q: int) -> tuple[float, int, np.ndarray] | None:
        if size(q) > max_bytes:  # sizes are not strictly monotonic in the quality either
            return None
        # our own WebP, just encoded: decode it once (decode() checks its size), without
        # bitstream.read's validation, which opens the WebP a second time for its header
        decoded = decode(ClassicHeader("webp", h, w, c, len(made[q])), made[q])
        return psnr(pixels, decoded), q, decoded

    lower = [top - d for d in LOWER_OFFSETS if top - d >= _QUALITIES[0]]
    with ThreadPoolExecutor(max(1, workers)) as pool:  # libwebp releases the GIL: 1.5-1.7x on 2 cores
        first = list(pool.map(score, [top, *lower[:MONOTONE_CHECK]]))
        falling = all(a is not None and b is not None and a[0] > b[0] for a, b in zip(first, first[1:]))
        rest = [] if falling else list(pool.map(score, lower[MONOTONE_CHECK:]))
    # the best PSNR, ties to the higher quality (q* always fits, so there is one)
    value, q, decoded = max((sc for sc in first + rest if sc is not None), key=lambda sc: sc[:2])
    return Candidate(bitstream.write_classic("webp", h, w, c, made[q]), q, value, decoded)


def highest_fitting(size: Callable[[int], int], max_bytes: int) -> int | None:
    """The highest quality q in 0..100 whose ``size(q)`` is at most ``max_bytes``, for sizes that
    grow with q; None when quality 0 does not fit.

    Regula falsi on log(size): each probe is where the line through the two probes nearest the
    budget crosses it (the first from quality 50 and :data:`_LOG_SIZE_SLOPE`), clamped into the
    open bracket; a probe that leaves more than half of the bracket is followed by a bisection,
    so at most :data:`MAX_PROBES` probes. Over budgets across the whole range it takes about 5
    encodes on average where a binary search takes 7 (tests/test_fallback.py holds it under 6 on
    a text page, a flat chart and noise), and finds the same quality where sizes grow with q;
    where they do not, it ends, as the binary search does, on a quality that fits next to one
    that does not."""
    lo, hi = _QUALITIES[0] - 1, _QUALITIES[1] + 1  # lo fits (-1: none yet), hi does not (101: none yet)
    target = math.log(max_bytes)
    logs: dict[int, float] = {}
    q, bisect = (_QUALITIES[0] + _QUALITIES[1]) // 2, False
    while hi - lo > 1:
        width = hi - lo
        logs[q] = math.log(size(q))
        if logs[q] <= target:
            lo = q
        else:
            hi = q
        if hi - lo <= 1:
            break
        if bisect:
            q, bisect = (lo + hi) // 2, False
            continue
        bisect = hi - lo > width / 2
        near = sorted(logs, key=lambda k: abs(logs[k] - target))[:2]
        if len(near) == 2 and logs[near[0]] != logs[near[1]]:
            (a, b) = near
            slope = (logs[b] - logs[a]) / (b - a)
        else:
            a, slope = near[0], _LOG_SIZE_SLOPE
        estimate = a + (target - logs[a]) / slope if slope > 0 else (lo + hi) / 2
        q = min(max(math.floor(estimate), lo + 1), hi - 1)
    return lo if lo >= _QUALITIES[0] else None


def encode_within(pixels: np.ndarray, max_bytes: int) -> tuple[bytes, int] | None:
    """The version-2 ``.gcx`` file of the best-PSNR WebP that fits in ``max_bytes`` (container
    included), and its quality; None when even quality 0 does not fit. See :func:`best_within`."""
    found = best_within(pixels, max_bytes)
    return None if found is None else (found.data, found.quality)


def choose(pixels: np.ndarray, learned: bytes, learned_pixels: np.ndarray, margin_db: float = MARGIN_DB,
           workers: int = 2) -> Choice:
    """Keep ``learned`` (whose decode is ``learned_pixels``) or replace it by the best-PSNR WebP
    of no more bytes (:func:`best_within`, on ``workers`` threads) when that beats it by more
    than ``margin_db`` dB PSNR.

    The search runs after the learned decode, not beside it: on 2 cores the two overlapped made
    the decode's many small float64 steps wait on preempted threads, and the pair took 10 %
    longer than one after the other (benchmarks/fallback.py)."""
    learned_psnr = psnr(pixels, learned_pixels)
    keep = Choice(learned, "learned", learned_psnr, None, None, learned_pixels)
    if not applies(pixels):
        return keep
    found = best_within(pixels, len(learned), workers)
    if found is None:
        return keep
    if found.psnr > learned_psnr + margin_db:
        return Choice(found.data, "webp", learned_psnr, found.psnr, found.quality, found.pixels)
    return Choice(learned, "learned", learned_psnr, found.psnr, found.quality, learned_pixels)


def decode(header: ClassicHeader, payload: bytes) -> np.ndarray:
    """The pixels (HxWxC uint8, C = the header's channels) of a version-2 stream's payload, read
    by :func:`gancodec.bitstream.read` (which checked the WebP's own size against the header)."""
    if header.payload != "webp":
        raise BitstreamError(f"payload: kind {header.payload!r} cannot be decoded by this gancodec; upgrade gancodec")
    try:
        with Image.open(io.BytesIO(payload), formats=["WEBP"]) as im:
            if im.size != (header.width, header.height):  # read() checked; a direct caller may not have
                raise BitstreamError(f"payload: the WebP is {im.size[0]}x{im.size[1]}, the header says {header.width}x{header.height}")
            img = im.convert("L" if header.channels == 1 else "RGB")
    except BitstreamError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises several types for a broken file
        raise BitstreamError(f"payload: the WebP cannot be decoded ({type(exc).__name__}: {exc})") from None
    arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr

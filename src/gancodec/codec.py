"""The public API: :func:`compress`, :func:`decompress`, :func:`read_header`.

    >>> from gancodec import compress, decompress
    >>> data = compress("photo.png", bpp=0.3)          # bytes of a .gcx file
    >>> decompress(data).save("photo-decoded.png")

``quality`` is a continuous knob from 1 (smallest files) to 8 (best quality); ``bpp`` finds
the quality that lands closest to a target bitrate (bisection on real encodes; with a latent
search, a few searched encodes after the plain bisection).

``fallback`` (on by default) is the WebP safety net (:mod:`gancodec.fallback`): the stream is
replaced by a WebP one (format version 2) of no more bytes when that decodes clearly better,
as on screenshots and documents, which the learned transforms code poorly.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Callable

import numpy as np
import torch
from PIL import Image

from . import bitstream
from . import fallback as _fallback
from .bitstream import ClassicHeader, Header
from .data.imageio import ImageInput, load_image
from .device import resolve_device
from .errors import BitstreamError
from .weights.realism import realism_model
from .tiling import DEFAULT_TILE, ENCODE_HALO, TileGrid, decode_latents, encode_tiles, synthesize, with_backoff
from .weights import LoadedModel, load_model
from .weights.history import find_weights, missing_weights_hint

DEFAULT_QUALITY = 4.0
MIN_QUALITY = 1.0
MAX_REFINE_STEPS = 10_000
BPP_REFINED_ENCODES = 3  # with bpp and a latent search: searched encodes after the plain bisection
BPP_TOLERANCE = 0.01  # ... which stop early within 1 % of the target
DEFAULT_LOG_RATE_SLOPE = 0.32  # d log(bpp) / d quality of the shipped model (0.14 -> 1.34 bpp over 1..8)


def check_refine_steps(steps: object, name: str = "refine_steps") -> int:
    """``steps`` if it is a whole number of latent-search steps (0..MAX_REFINE_STEPS), else ValueError."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_REFINE_STEPS:
        raise ValueError(f"{name} must be a whole number from 0 to {MAX_REFINE_STEPS}, got {steps!r}")
    return steps


def _check_quality(quality: float, lm: LoadedModel) -> float:
    if not isinstance(quality, (int, float)) or not math.isfinite(quality) or not MIN_QUALITY <= quality <= lm.max_quality:
        raise ValueError(f"quality must be a number from {MIN_QUALITY:g} to {lm.max_quality:g}, got {quality!r}")
    return round(float(quality), 3)  # the precision the header stores


def _encode(lm: LoadedModel, image: np.ndarray, quality: float, tile_size: int, device: torch.device,
            refine_steps: int = 0, progress: Callable[[int], None] | None = None,
            keep_latents: bool = False) -> tuple[bytes, torch.Tensor | None]:
    """The ``.gcx`` bytes and, with ``keep_latents``, the y_hat canvas its decode will start from."""
    h, w, c = image.shape
    rate = quality - MIN_QUALITY

    def attempt(tile: int, dev: torch.device) -> tuple[int, list[bytes], torch.Tensor | None]:
        grid = TileGrid(h, w, tile)
        latents = torch.empty(1, lm.model.config.M, *grid.latent_shape) if keep_latents else None
        return tile, encode_tiles(lm.on(dev), lm.coder, image, rate, grid, dev, refine_steps, progress, latents), latents

    tile, payloads, latents = with_backoff(attempt, tile_size, device)
    header = Header(lm.model_id, quality, h, w, c, 8, tile, ENCODE_HALO, tuple(len(p) for p in payloads))
    return bitstream.write(header, payloads), latents


def compress(image: ImageInput, *, quality: float | None = None, bpp: float | None = None,
             device: str | torch.device | None = None, tile_size: int | None = None,
             weights: str | os.PathLike | None = None, max_pixels: int | None = None,
             refine_steps: int = 0, progress: Callable[[int], None] | None = None,
             fallback: bool = True) -> bytes:
    """Compress an image (path, PIL image or uint8 array) into the bytes of a ``.gcx`` file.

    Give ``quality`` (1..8, default 4) or ``bpp`` (a target in bits per pixel), not both.
    ``refine_steps`` > 0 spends that many gradient steps per tile searching for latents with a
    better rate-distortion trade-off (:mod:`gancodec.latent_refine`): smaller files at equal
    quality for ~2x a decode's time per step; the stream decodes as any other. With ``bpp``,
    plain encodes find the quality, then at most 3 searched encodes correct it.
    ``progress(n)`` is told of every n search steps done (:func:`search_steps` gives the total
    for one encode).
    ``fallback`` (default on): decode the learned stream and, when a WebP of no more bytes beats
    it by more than 0.25 dB PSNR, return that instead (a version-2 stream; :mod:`gancodec.fallback`).
    Costs one decode and at most 24 WebP encodes and 11 WebP decodes (on photos about 8 and 4);
    never makes the file larger or its PSNR lower.
    Raises :class:`~gancodec.DataError` for an unreadable image, ``ValueError`` for bad settings.
    """
    if not isinstance(fallback, bool):
        raise ValueError(f"fallback must be True or False, got {fallback!r}")
    if quality is not None and bpp is not None:
        raise ValueError("give quality or bpp, not both")
    check_refine_steps(refine_steps)
    tile = DEFAULT_TILE if tile_size is None else int(tile_size)
    if tile % 64 or not bitstream.MIN_TILE <= tile <= bitstream.MAX_TILE:
        raise ValueError(f"tile_size must be a multiple of 64 from {bitstream.MIN_TILE} to {bitstream.MAX_TILE}, got {tile_size}")
    pixels = load_image(image, max_pixels=max_pixels)
    lm = load_model(weights)
    dev = resolve_device(device)
    fallback = fallback and _fallback.applies(pixels)
    if bpp is None:
        data, latents = _encode(lm, pixels, _check_quality(DEFAULT_QUALITY if quality is None else quality, lm), tile,
                                dev, refine_steps, progress, keep_latents=fallback)
    else:
        if not isinstance(bpp, (int, float)) or not math.isfinite(bpp) or bpp <= 0:
            raise ValueError(f"bpp must be a positive number, got {bpp!r}")
        data, latents = _search_bpp(lm, pixels, float(bpp), tile, dev, refine_steps, progress, keep_latents=fallback)
    if fallback:  # the learned decode (from the encoder's latents), then the WebP search
        header = bitstream.read_header(data)
        learned_pixels = _synthesize_learned(header, latents, lm, 0.0, None, dev)
        data = _fallback.choose(pixels, data, learned_pixels).data
    return data


def search_steps(height: int, width: int, refine_steps: int, tile_size: int | None = None) -> int:
    """How many latent-search steps one encode of a ``height`` x ``width`` image takes."""
    return refine_steps * sum(1 for _ in TileGrid(height, width, tile_size or DEFAULT_TILE).tiles())


def _search_bpp(lm: LoadedModel, pixels: np.ndarray, target: float, tile: int, dev: torch.device,
                refine_steps: int = 0, progress: Callable[[int], None] | None = None,
                keep_latents: bool = False) -> tuple[bytes, torch.Tensor | None]:
    """The encode whose bpp is closest to ``target`` (ties: the smaller), as :func:`_encode` returns it.

    Plain encodes: bisection on quality. With a latent search, the bisection runs on plain
    encodes (cheap), then at most :data:`BPP_REFINED_ENCODES` searched encodes home in on the
    target by the secant method on log-rate, starting from the plain quality and slope.
    """
    n = pixels.shape[0] * pixels.shape[1]

    def plain(q: float) -> tuple[float, tuple[bytes, torch.Tensor | None]]:
        encoded = _encode(lm, pixels, q, tile, dev, keep_latents=keep_latents)
        return len(encoded[0]) * 8 / n, encoded

    q0, (rate0, data0), trace = _bisect_quality(plain, target, MIN_QUALITY, lm.max_quality)
    if not refine_steps:
        return data0

    def refined(q: float) -> tuple[float, tuple[bytes, torch.Tensor | None]]:
        encoded = _encode(lm, pixels, q, tile, dev, refine_steps, progress, keep_latents)
        return len(encoded[0]) * 8 / n, encoded

    slope = _log_rate_slope(trace, q0, rate0)
    q, best, points = q0, None, []
    for _ in range(BPP_REFINED_ENCODES):
        rate, data = refined(q)
        if best is None or _closer(rate, best[0], target):
            best = (rate, data)
        points.append((q, math.log(rate)))
        if abs(rate - target) <= BPP_TOLERANCE * target:
            break
        if len(points) >= 2 and points[-1][0] != points[-2][0] and points[-1][1] != points[-2][1]:
            slope = (points[-1][1] - points[-2][1]) / (points[-1][0] - points[-2][0])
        slope = slope if slope > 0 else DEFAULT_LOG_RATE_SLOPE  # bpp grows with quality; noise aside
        nxt = min(max(q + (math.log(target) - math.log(rate)) / slope, MIN_QUALITY), lm.max_quality)
        if abs(nxt - q) < 1e-3:
            break  # pinned at an end of the range
        q = round(nxt, 3)
    return best[1]


def _closer(rate: float, best: float, target: float) -> bool:
    """Whether ``rate`` is closer to ``target`` than ``best`` (ties: the smaller rate)."""
    d, b = abs(rate - target), abs(best - target)
    return d < b or (d == b and rate < best)


def _bisect_quality(encode: Callable[[float], tuple[float, bytes]], target: float, lo: float, hi: float,
                    iterations: int = 8) -> tuple[float, tuple[float, bytes], list[tuple[float, float]]]:
    """Bisection on quality: (quality, (bpp, bytes)) of the closest encode, and every (quality, bpp) tried."""
    best: tuple[float, tuple[float, bytes]] | None = None
    trace: list[tuple[float, float]] = []

    def consider(q: float) -> float:
        nonlocal best
        rate, data = encode(q)
        trace.append((q, rate))
        if best is None or _closer(rate, best[1][0], target):
            best = (q, (rate, data))
        return rate

    ends = (lo, hi)
    for _ in range(iterations):
        q = round((lo + hi) / 2, 3)
        if consider(q) > target:
            hi = q
        else:
            lo = q
    for q in ends:  # the ends, in case the target lies outside the range
        if (q == ends[0] and best[1][0] > target) or (q == ends[1] and best[1][0] < target):
            consider(q)
    return best[0], best[1], trace


def _log_rate_slope(trace: list[tuple[float, float]], q0: float, rate0: float) -> float:
    """d log(bpp) / d quality near ``q0``, from the plain encodes at least a quarter quality away."""
    far = [(abs(q - q0), q, r) for q, r in trace if abs(q - q0) >= 0.25 and r > 0]
    if not far:
        return DEFAULT_LOG_RATE_SLOPE
    _, q, r = min(far)
    return (math.log(r) - math.log(rate0)) / (q - q0)


def _model_for(header: Header, weights: str | os.PathLike | None) -> LoadedModel:
    """The weights that made the stream: ``weights`` when given (strict), else the default weights
    or, for a stream made by others (an older release's, say), a file of its model id found on
    the weights search path (:mod:`gancodec.weights.history`)."""
    lm = load_model(weights)
    if header.model_id == lm.model_id:
        return lm
    if weights is None:
        found = find_weights(header.model_id)
        if found is not None:
            return load_model(found)
    raise BitstreamError(f"model_id: the file was made by model {header.model_id}, but the loaded weights are "
                         f"model {lm.model_id} ({lm.path}); {missing_weights_hint(header.model_id)}")


def read_header(data: bytes, *, max_pixels: int | None = None) -> Header | ClassicHeader:
    """The validated header of a ``.gcx`` file (raises :class:`BitstreamError`)."""
    return bitstream.read_header(data, max_pixels=max_pixels or bitstream.DEFAULT_MAX_PIXELS)


def decompress(data: bytes, *, realism: bool | float = False, device: str | torch.device | None = None,
               weights: str | os.PathLike | None = None, max_pixels: int | None = None,
               realism_weights: str | os.PathLike | None = None) -> Image.Image:
    """Decode the bytes of a ``.gcx`` file into a PIL image (RGB, or L for grayscale sources).

    ``realism``: False (the fidelity decoder), True (the realism decoder) or a strength between
    0 and 1 blending the two. Raises :class:`~gancodec.BitstreamError` for anything malformed,
    truncated, foreign or made by another model; :class:`~gancodec.ModelError` when no realism
    decoder exists for the stream's model.

    A version-2 stream (the WebP fallback) decodes with Pillow and needs no weights; ``realism``
    does not apply to it (a warning says so, and the WebP decode is returned).
    """
    header, payloads = bitstream.read(data, max_pixels=max_pixels or bitstream.DEFAULT_MAX_PIXELS)
    strength = float(realism)  # True -> 1.0
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"realism must be False, True or a strength between 0 and 1, got {realism!r}")
    if isinstance(header, ClassicHeader):
        if strength:
            warnings.warn(f"realism does not apply to a {header.payload} (fallback) stream: it is decoded as {header.payload}",
                          UserWarning, stacklevel=2)
        pixels = _fallback.decode(header, payloads[0])
        return Image.fromarray(pixels[:, :, 0] if header.channels == 1 else pixels)
    lm = _model_for(header, weights)
    pixels = _decode_learned(header, payloads, lm, strength, realism_weights, resolve_device(device))
    return Image.fromarray(pixels[:, :, 0] if header.channels == 1 else pixels)


def _decode_learned(header: Header, payloads: list[bytes], lm: LoadedModel, strength: float,
                    realism_weights: str | os.PathLike | None, device: torch.device) -> np.ndarray:
    """A version-1 stream's pixels (HxWxC uint8) with the model that made it."""
    if header.quality < MIN_QUALITY or header.quality > lm.max_quality:
        raise BitstreamError(f"quality: {header.quality} is outside this model's range {MIN_QUALITY:g}..{lm.max_quality:g}")
    if strength:
        realism_model(lm, strength, realism_weights)  # a missing or foreign realism decoder fails before any work
    grid = TileGrid(header.height, header.width, header.tile_size)
    cfg = lm.model.config
    y_hat = decode_latents(lm.coder, payloads, grid, cfg.M, cfg.N)
    return _synthesize_learned(header, y_hat, lm, strength, realism_weights, device)


def _synthesize_learned(header: Header, y_hat: torch.Tensor, lm: LoadedModel, strength: float,
                        realism_weights: str | os.PathLike | None, device: torch.device) -> np.ndarray:
    """The pixels (HxWxC uint8) of a version-1 stream's entropy-decoded latent canvas ``y_hat``."""
    grid = TileGrid(header.height, header.width, header.tile_size)
    rate = header.quality - MIN_QUALITY

    def attempt(window: int, dev: torch.device) -> np.ndarray:
        net = realism_model(lm, strength, realism_weights, dev) if strength else lm.on(dev)
        return synthesize(net, y_hat, rate, grid, header.channels, window, dev)

    return with_backoff(attempt, DEFAULT_TILE, device)

"""Tiles with halos: any image size at bounded memory, no seams.

Encoding cuts the (16-padded) image into ``tile_size`` squares on the latent grid. Each tile's
latent is computed from its pixels plus a ``ENCODE_HALO`` = 32 px margin (g_a's receptive-field
radius is 30 px), so it equals the latent of the whole image there; each tile then gets its own
hyper-latent and its own sub-stream, so tiles entropy-decode independently.

Decoding first entropy-decodes every tile into one latent canvas (M x H/16 x W/16 floats: small),
then synthesises the image window by window with ``DECODE_HALO`` = 4 latents of margin (g_s
looks +-2 latents), so the stitched image equals an untiled decode. The synthesis window size is
the decoder's own choice, independent of the encoder's tile size.

Out-of-memory: :func:`gancodec.device.with_backoff` retries with half the tile size, then on the
CPU, and logs it (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from . import latent_refine
from .device import MIN_TILE, with_backoff  # noqa: F401 - the one OOM policy, re-exported
from .faults import maybe_inject_oom
from .models import HyperpriorCodec
from .models.coder import LatentCoder

ENCODE_HALO = 32  # pixels, >= g_a's receptive-field radius, multiple of 16
SEARCH_HALO = 16 * 4  # pixels the latent search sees around a tile: >= the decoder's reach (DECODE_HALO latents)
DECODE_HALO = 4  # latents, >= g_s's reach
DEFAULT_TILE = 1024


@dataclass(frozen=True)
class TileGrid:
    """The tiling of an image of ``height`` x ``width`` pixels into latent-grid tiles."""

    height: int
    width: int
    tile_size: int

    @property
    def latent_shape(self) -> tuple[int, int]:
        return -(-self.height // 16), -(-self.width // 16)

    def tiles(self, tile_size: int | None = None) -> Iterator[tuple[int, int, int, int]]:
        """Latent rectangles (y0, y1, x0, x1) in raster order."""
        step = (tile_size or self.tile_size) // 16
        lh, lw = self.latent_shape
        for y0 in range(0, lh, step):
            for x0 in range(0, lw, step):
                yield y0, min(y0 + step, lh), x0, min(x0 + step, lw)


def _pixels(image: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """Window [y0:y1, x0:x1] of the image, edge-replicated beyond it, as (1, 3, h, w) in [0, 1]."""
    h, w = image.shape[:2]
    rows = np.clip(np.arange(y0, y1), 0, h - 1)
    cols = np.clip(np.arange(x0, x1), 0, w - 1)
    win = image[rows[:, None], cols[None, :]]
    if win.shape[2] == 1:
        win = np.repeat(win, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(win)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


@torch.no_grad()
def encode_tiles(model: HyperpriorCodec, coder: LatentCoder, image: np.ndarray, rate: float,
                 grid: TileGrid, device: torch.device, refine_steps: int = 0,
                 progress: Callable[[int], None] | None = None, latents: torch.Tensor | None = None) -> list[bytes]:
    """One sub-stream per tile of ``grid`` for a uint8 HxWxC image.

    ``refine_steps`` > 0 searches each tile's latents for a better rate-distortion trade-off
    (:func:`gancodec.latent_refine.search_rd`); ``progress(n)`` is told of each search step.
    ``latents``, a (1, M, H/16, W/16) CPU canvas, receives the y_hat that :func:`decode_latents`
    will give back for the payloads (so an encoder that needs the decode skips the entropy decode).
    """
    maybe_inject_oom()
    payloads = []
    lh, lw = grid.latent_shape
    searched: torch.Tensor | None = None  # the latents already searched (earlier tiles), NaN elsewhere
    # the search also scores the pixels around the tile that its latents reach through g_s and
    # the post-filter (up to DECODE_HALO latents), so it sees a wider window than g_a needs
    halo = SEARCH_HALO if refine_steps > 0 else ENCODE_HALO
    for ly0, ly1, lx0, lx1 in grid.tiles():
        py0, px0 = max(0, ly0 * 16 - halo), max(0, lx0 * 16 - halo)
        py1, px1 = min(lh * 16, ly1 * 16 + halo), min(lw * 16, lx1 * 16 + halo)
        x = _pixels(image, py0, py1, px0, px1).to(device).contiguous(memory_format=torch.channels_last)
        y_window = model.analysis(x, rate)
        oy, ox = ly0 - py0 // 16, lx0 - px0 // 16
        core = (oy, oy + ly1 - ly0, ox, ox + lx1 - lx0)
        if refine_steps > 0:
            if searched is None:
                searched = torch.full((1, y_window.shape[1], lh, lw), float("nan"), device=device, dtype=y_window.dtype)
            # the halo as the decoder will see it where earlier tiles were already searched
            done = searched[:, :, py0 // 16 : py1 // 16, px0 // 16 : px1 // 16]
            y_window = torch.where(torch.isnan(done), y_window, done)
            box = (ly0 * 16 - py0, min(grid.height, ly1 * 16) - py0, lx0 * 16 - px0, min(grid.width, lx1 * 16) - px0)
            valid = (min(grid.height, py1) - py0, min(grid.width, px1) - px0)
            y = latent_refine.search_rd(model, y_window, x, core, box, valid, rate, refine_steps, progress)
            searched[:, :, ly0:ly1, lx0:lx1] = y
        else:
            y = y_window[:, :, core[0] : core[1], core[2] : core[3]]
        if (ly1 - ly0, lx1 - lx0) == (lh, lw) and latent_refine.is_small(lh, lw):  # a thumbnail or strip
            y = latent_refine.repair_small(model, coder, y, x, rate, grid.height, grid.width)
        if latents is None:
            payloads.append(coder.encode(y, model.h_a))
        else:
            payload, latents[:, :, ly0:ly1, lx0:lx1] = coder.encode_with_latent(y, model.h_a)
            payloads.append(payload)
    return payloads


@torch.no_grad()
def decode_latents(coder: LatentCoder, payloads: list[bytes], grid: TileGrid, channels_y: int,
                   channels_z: int) -> torch.Tensor:
    """Entropy-decode every tile into one (1, M, H/16, W/16) latent canvas (CPU, float32)."""
    lh, lw = grid.latent_shape
    canvas = torch.empty(1, channels_y, lh, lw)
    for (ly0, ly1, lx0, lx1), data in zip(grid.tiles(), payloads):
        canvas[:, :, ly0:ly1, lx0:lx1] = coder.decode(data, ly1 - ly0, lx1 - lx0, channels_z)
    return canvas


@torch.no_grad()
def synthesize(model: HyperpriorCodec, y_hat: torch.Tensor, rate: float, grid: TileGrid, channels: int,
               window: int, device: torch.device) -> np.ndarray:
    """Decode the latent canvas window by window into a uint8 H x W x channels image."""
    out = np.empty((grid.height, grid.width, channels), dtype=np.uint8)
    lh, lw = grid.latent_shape
    for ly0, ly1, lx0, lx1 in grid.tiles(window):
        wy0, wx0 = max(0, ly0 - DECODE_HALO), max(0, lx0 - DECODE_HALO)
        wy1, wx1 = min(lh, ly1 + DECODE_HALO), min(lw, lx1 + DECODE_HALO)
        window = y_hat[:, :, wy0:wy1, wx0:wx1].to(device).contiguous(memory_format=torch.channels_last)
        if getattr(model, "uses_origin", False):  # position-keyed noise (models/detail.py)
            x_hat = model.synthesis(window, rate, origin=(wy0 * 16, wx0 * 16))
        else:
            x_hat = model.synthesis(window, rate)
        oy, ox = (ly0 - wy0) * 16, (lx0 - wx0) * 16
        py1, px1 = min(grid.height, ly1 * 16), min(grid.width, lx1 * 16)
        core = x_hat[0, :, oy : oy + py1 - ly0 * 16, ox : ox + px1 - lx0 * 16]
        if channels == 1:
            core = core.mean(0, keepdim=True)
        pixels = core.clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        out[ly0 * 16 : py1, lx0 * 16 : px1] = pixels
    return out

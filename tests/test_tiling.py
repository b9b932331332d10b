"""gancodec.tiling: the tile grid, tiled coding with halos, and the decoder's own window size."""

from __future__ import annotations

import numpy as np
import pytest

from gancodec import bitstream, compress, device, tiling
from gancodec.tiling import TileGrid, decode_latents, synthesize
from gancodec.weights import load_model
from sample_images import coffee


@pytest.mark.parametrize("h, w, tile", [(1, 1, 128), (100, 300, 128), (256, 256, 256), (1000, 70, 512)])
def test_tiles_cover_the_latent_grid_exactly_once(h, w, tile):
    grid = TileGrid(h, w, tile)
    lh, lw = grid.latent_shape
    assert (lh, lw) == (-(-h // 16), -(-w // 16))
    seen = np.zeros((lh, lw), int)
    for y0, y1, x0, x1 in grid.tiles():
        assert 0 < y1 - y0 <= tile // 16 and 0 < x1 - x0 <= tile // 16
        seen[y0:y1, x0:x1] += 1
    assert (seen == 1).all()


@pytest.fixture(scope="module")
def tiled():
    pixels = np.ascontiguousarray(coffee()[:150, :260])
    stream = compress(pixels, quality=4, tile_size=128)
    return pixels, stream


def test_each_tile_is_its_own_sub_stream(tiled):
    pixels, stream = tiled
    header, payloads = bitstream.read(stream)
    assert header.tile_size == 128 and len(payloads) == len(list(TileGrid(150, 260, 128).tiles())) == 6
    lm = load_model()
    canvas = decode_latents(lm.coder, payloads, TileGrid(150, 260, 128), lm.model.config.M, lm.model.config.N)
    assert canvas.shape == (1, lm.model.config.M, 10, 17)
    one = lm.coder.decode(payloads[1], 8, 8, lm.model.config.N)  # any tile decodes alone
    assert np.array_equal(one.numpy(), canvas[:, :, 0:8, 8:16].numpy())


def test_the_decoder_window_does_not_change_the_pixels(tiled):
    pixels, stream = tiled
    header, payloads = bitstream.read(stream)
    lm = load_model()
    grid = TileGrid(header.height, header.width, header.tile_size)
    canvas = decode_latents(lm.coder, payloads, grid, lm.model.config.M, lm.model.config.N)
    rate = header.quality - 1
    cpu = device.resolve_device("cpu")
    small = synthesize(lm.model, canvas, rate, grid, 3, 64, cpu)
    large = synthesize(lm.model, canvas, rate, grid, 3, 1024, cpu)
    assert small.shape == pixels.shape and np.array_equal(small, large)


def test_tiling_uses_the_one_out_of_memory_policy():
    assert tiling.with_backoff is device.with_backoff and tiling.MIN_TILE == device.MIN_TILE == 128

"""The checkerboard context model: two-pass coding, exact round trips, and training it alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import gancodec
from gancodec import bitstream
from gancodec.errors import ModelError
from gancodec.models import HyperpriorCodec, ModelConfig
from gancodec.tiling import TileGrid, decode_latents
from gancodec.train import TrainConfig, train
from gancodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from gancodec.weights import export_weights, load_model

from sample_images import astronaut, coffee


def _with_context(plain_path, out_path, perturb: float = 0.0):
    """Export the weights at ``plain_path`` with a checkerboard context added (``perturb``:
    std of random weights in its last layer, so it really changes the parameters)."""
    model = model_from_checkpoint(load_checkpoint(plain_path), str(plain_path), {"context": "checkerboard"})
    if perturb:
        torch.manual_seed(1)
        torch.nn.init.normal_(model.context.mix[-1].weight, std=perturb)
    export_weights(model, out_path)
    return out_path


@pytest.fixture(scope="module")
def context_weights(tiny_weights, tmp_path_factory):
    return str(_with_context(tiny_weights, tmp_path_factory.mktemp("ctx") / "ctx.pt", perturb=0.05))


def test_a_new_context_codes_exactly_as_the_weights_it_was_added_to(tiny_weights, tmp_path):
    fresh = _with_context(tiny_weights, tmp_path / "fresh.pt")
    img = coffee()
    plain, ctx = gancodec.compress(img, weights=tiny_weights, fallback=False), gancodec.compress(img, weights=fresh, fallback=False)
    assert plain != ctx  # two passes: another symbol order, and another model id
    assert abs(len(plain) - len(ctx)) <= 0.01 * len(plain) + 8
    assert np.array_equal(np.asarray(gancodec.decompress(plain, weights=tiny_weights)),
                          np.asarray(gancodec.decompress(ctx, weights=fresh)))


@pytest.mark.parametrize("latent_shape", [(1, 1), (1, 6), (5, 3), (8, 8)])
def test_context_streams_decode_to_the_latents_the_encoder_quantised(context_weights, latent_shape):
    coder = load_model(context_weights).coder
    h, w = latent_shape
    y = torch.randn(1, 24, h, w, generator=torch.Generator().manual_seed(h * 10 + w)) * 4
    _, _, means, tails = coder.quantisation(y)
    expected = torch.from_numpy(np.clip(torch.round(y.double() - means)[0].numpy(), -tails, tails)) + means[0]
    decoded = coder.decode(coder.encode(y), h, w, 16)
    assert torch.equal(decoded[0].double(), expected.float().double())


@pytest.mark.parametrize("shape", [(16, 16, 3), (17, 50, 3), (200, 300, 3)])
def test_context_images_round_trip_in_tiles(context_weights, shape):
    img = np.ascontiguousarray(astronaut(512)[: shape[0], : shape[1]])
    data = gancodec.compress(img, quality=3, weights=context_weights, tile_size=128, fallback=False)  # the learned stream's tiles
    assert bitstream.read_header(data).n_tiles == bitstream.tile_grid(shape[0], shape[1], 128)[0] * bitstream.tile_grid(shape[0], shape[1], 128)[1]
    assert gancodec.decompress(data, weights=context_weights).size == (shape[1], shape[0])


def test_the_context_changes_the_parameters_of_non_anchors_only(context_weights):
    model = load_model(context_weights).model
    y = torch.randn(1, 24, 6, 7) * 3
    means, scales = torch.randn(1, 24, 6, 7), torch.rand(1, 24, 6, 7) + 0.5
    new_means, new_scales = model.context(y, means, scales)
    anchors = (torch.arange(6)[:, None] + torch.arange(7)[None, :]) % 2 == 0
    assert torch.equal(new_means[..., anchors], means[..., anchors])
    assert torch.equal(new_scales[..., anchors], scales[..., anchors])
    assert not torch.allclose(new_means[..., ~anchors], means[..., ~anchors])
    # non-anchors read anchors only: changing a non-anchor latent changes nothing
    y2 = y.clone()
    y2[..., ~anchors] += 5
    assert torch.equal(model.context(y2, means, scales)[0], new_means)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 5), (8, 9)])
def test_the_coders_sparse_path_equals_the_training_path(context_weights, shape):
    context = load_model(context_weights).coder.context64
    g = torch.Generator().manual_seed(shape[0] * 31 + shape[1])
    y, means = (torch.randn(1, 24, *shape, generator=g, dtype=torch.float64) * 3 for _ in range(2))
    scales = torch.rand(1, 24, *shape, generator=g, dtype=torch.float64) * 5
    with torch.no_grad():
        for dense, sparse in zip(context(y, means, scales), context.at_non_anchors(y, means, scales)):
            assert torch.allclose(dense, sparse, rtol=1e-12, atol=1e-12)


def test_context_decoding_is_thread_count_independent(context_weights):
    """The second pass's parameters come from float64 on the CPU: the same latents on 1 or N threads."""
    data = gancodec.compress(coffee(), quality=4, weights=context_weights, tile_size=256, fallback=False)
    header, payloads = bitstream.read(data)
    lm = load_model(context_weights)
    grid = TileGrid(header.height, header.width, header.tile_size)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = decode_latents(lm.coder, payloads, grid, lm.model.config.M, lm.model.config.N)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, decode_latents(lm.coder, payloads, grid, lm.model.config.M, lm.model.config.N))


def test_training_the_context_alone_leaves_everything_else_bit_identical(tiny_weights, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(astronaut(256)).save(folder / "a.png")
    logs = []
    cfg = TrainConfig(data_dirs=[str(folder)], out_dir=str(tmp_path / "run"), init_from=tiny_weights, steps=4,
                      batch_size=2, crop=64, log_every=2, lr=1e-2, threads=1, model={"context": "checkerboard"},
                      trainable=["context"])
    train(cfg, log=logs.append)
    assert logs[0]["objective"] == "rate" and "psnr" not in logs[1]
    before = load_checkpoint(tiny_weights)["state_dict"]
    after = load_checkpoint(tmp_path / "run/model.pt")["state_dict"]
    context = {k for k in after if k.startswith("context.")}
    assert context and set(after) - context == set(before)
    for k in before:  # the encoder, hyperprior, tables and decoder: the same bits (after float16 export)
        assert torch.equal(after[k].to(before[k].dtype), before[k]), k
    assert after["context.mix.4.weight"].abs().sum() > 0  # it trained (initialised at zero)


def test_bad_parts_and_contexts_are_clear_errors(tiny_weights, tmp_path):
    with pytest.raises(ValueError, match="trainable: \\['decoder'\\] are not parts"):
        train(TrainConfig(data_dirs=[str(tmp_path)], out_dir=str(tmp_path / "r"), init_from=tiny_weights,
                          trainable=["decoder"], steps=1))
    with pytest.raises(ValueError, match="context 'pixelcnn' is not one of"):
        ModelConfig.from_dict({"N": 8, "M": 8, "lambdas": [0.1, 0.2], "context": "pixelcnn"})
    with pytest.raises(ModelError, match="do not fit"):  # overrides may add parts, not reshape them
        model_from_checkpoint(load_checkpoint(tiny_weights), "tiny", {"M": 32, "context": "checkerboard"})
    assert "context" not in ModelConfig().to_dict()  # plain models' files stay readable by older versions
    assert HyperpriorCodec(ModelConfig(N=8, M=8, context="checkerboard")).config.to_dict()["context"] == "checkerboard"

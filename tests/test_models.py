"""gancodec.models: the registry, the model's shapes, and its CompressAI-style compress / decompress."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gancodec
from gancodec import bitstream
from gancodec.errors import ModelError
from gancodec.models import HyperpriorCodec, ModelConfig, architecture, architectures, build_model, model_from_checkpoint
from gancodec.models.registry import register_architecture
from gancodec.weights import load_model
from sample_images import astronaut

SMALL = {"N": 8, "M": 12, "lambdas": [0.001, 0.01]}


def test_forward_gives_the_shapes_training_needs():
    torch.manual_seed(0)
    model = build_model(SMALL)
    out = model(torch.rand(2, 3, 64, 64), torch.tensor([0.0, 1.0]))
    assert out.x_hat.shape == (2, 3, 64, 64)
    assert out.y_likelihoods.shape == (2, 12, 4, 4) and out.z_likelihoods.shape == (2, 8, 1, 1)
    assert bool((out.y_likelihoods > 0).all() and (out.y_likelihoods <= 1).all())
    assert model(torch.rand(1, 3, 64, 64), torch.tensor([0.0]), synthesize=False).x_hat is None


def test_the_registry_builds_saved_configs_and_lists_the_valid_names():
    assert architectures() == sorted(architectures()) and "hyperprior" in architectures()
    assert architecture("hyperprior") is HyperpriorCodec
    model = build_model({**SMALL, "architecture": "hyperprior"})
    assert model.config == ModelConfig.from_dict(SMALL)
    with pytest.raises(ValueError, match=r"unknown architecture 'vit'; valid architectures are \['hyperprior'"):
        build_model({**SMALL, "architecture": "vit"})
    with pytest.raises(ValueError, match="unknown model config keys"):
        build_model({**SMALL, "depth": 3})


def test_registering_a_name_twice_or_without_a_config_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("hyperprior")(type("Other", (nn.Module,), {"config_class": ModelConfig}))
    with pytest.raises(TypeError, match="config_class"):
        register_architecture("bare")(type("Bare", (nn.Module,), {}))
    assert "bare" not in architectures()


def test_weights_that_do_not_fit_name_their_source():
    state = build_model(SMALL).state_dict()
    with pytest.raises(ModelError, match="my.pt: weights do not fit the model"):
        model_from_checkpoint({"model_config": {**SMALL, "M": 16}, "state_dict": state}, "my.pt")


def test_compress_needs_the_tables_filled_by_update():
    model = build_model(SMALL).eval()
    with pytest.raises(RuntimeError, match=r"call model.update\(\)"):
        model.compress(torch.rand(1, 3, 64, 64), 0.0)
    model.update()
    c = model.compress(torch.rand(1, 3, 64, 64), 0.5)
    assert c.shape == (4, 4) and model.decompress(c.strings, c.shape, 0.5).shape == (1, 3, 64, 64)


def test_the_shipped_model_codes_a_window_exactly_as_a_one_tile_gcx_does(monkeypatch):
    # the codec's inference copy in float32 runs g_a's exact arithmetic (in bf16, on CPUs that have
    # it, g_a's latents and so the bytes may differ: tests/test_inference.py, docs/speed.md)
    monkeypatch.setenv("GANCODEC_PRECISION", "float32")
    pixels = astronaut(64)
    model = load_model().model
    x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).float().div(255)
    compressed = model.compress(x, rate=2.5)  # quality 3.5
    assert compressed.shape == (4, 4)
    stream = gancodec.compress(pixels, quality=3.5)
    _, payloads = bitstream.read(stream)
    assert compressed.strings == payloads  # the same bytes
    x_hat = model.decompress(compressed.strings, compressed.shape, rate=2.5)
    decoded = x_hat[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    # the codec's copy runs g_s's last layer as a sub-pixel convolution: float rounding only
    assert np.abs(decoded.astype(int) - np.asarray(gancodec.decompress(stream)).astype(int)).max() <= 1

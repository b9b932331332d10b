"""A fidelity model with a post-filter (v1.6 on): config, shipping, decoding, and realism on top."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gancodec import bitstream, compress, decompress
from gancodec.errors import ModelError
from gancodec.metrics_core import psnr
from gancodec.models import HyperpriorCodec, ModelConfig
from gancodec.models.detail import DetailConfig, DetailGenerator
from gancodec.weights import export_weights, load_checkpoint, load_model, model_id_of
from gancodec.weights.realism import SHIPPED_REALISM, export_detail
from gancodec.weights.ship import with_post_filter

POST = {"latent_channels": 24, "width": 8, "blocks": 1, "cond_channels": 4, "noise_channels": 0, "rate_input": 1}


def test_the_post_filter_is_part_of_the_saved_config_and_must_be_noise_free_and_rate_aware():
    cfg = ModelConfig(N=16, M=24, post_filter=tuple(sorted(POST.items())))
    d = cfg.to_dict()
    assert d["post_filter"] == POST and ModelConfig.from_dict(d) == cfg
    assert "post_filter" not in ModelConfig(N=16, M=24).to_dict()  # older releases read plain models' files
    for bad in ({**POST, "noise_channels": 4}, {**POST, "rate_input": 0}, {**POST, "latent_channels": 192}):
        with pytest.raises(ValueError, match="post_filter"):
            ModelConfig.from_dict({**d, "post_filter": bad})


def _post_file(path: Path, base_id: str, cfg: dict = POST, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    g = DetailGenerator(DetailConfig(**cfg))
    torch.nn.init.normal_(g.tail.weight, std=0.05)  # one that changes the decode
    export_detail(g, base_id, path, step=1)
    return path


def test_a_post_filter_file_becomes_part_of_the_model_it_was_trained_over(tiny_weights, tmp_path):
    base_id = model_id_of(Path(tiny_weights).read_bytes())
    ckpt = load_checkpoint(tiny_weights)
    model, card = with_post_filter(ckpt, tiny_weights, str(_post_file(tmp_path / "post.pt", base_id)))
    assert card["extends_model_id"] == base_id and card["post_filter"]["steps"] == 1
    out = tmp_path / "v-next.pt"
    export_weights(model, out, extends_model_id=base_id)
    lm = load_model(out)
    assert lm.extends_model_id == base_id and lm.model_id != base_id and lm.model.post_filter is not None
    y = torch.randn(1, 24, 4, 6)
    plain = load_model(tiny_weights).model.synthesis(y, 2.0)
    assert not torch.allclose(lm.model.synthesis(y, 2.0), plain)  # the filter is applied ...
    assert torch.allclose(lm.model.g_s(y * lm.model.gain.inverse_gain(torch.tensor([2.0]))), plain, atol=1e-6)  # ... on the same g_s

    with pytest.raises(ModelError, match="noise_channels 0"):
        with_post_filter(ckpt, tiny_weights, str(_post_file(tmp_path / "noisy.pt", base_id, {**POST, "noise_channels": 2})))
    with pytest.raises(ModelError, match="trained over model 0{32}"):
        with_post_filter(ckpt, tiny_weights, str(_post_file(tmp_path / "other.pt", "0" * 32)))


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[96:352, 64:448])


def test_the_shipped_post_filter_improves_the_decode_of_the_same_bytes(photo, tmp_path):
    """The shipped model against itself without its post-filter: identical streams, better pixels."""
    lm = load_model()
    if lm.model.post_filter is None:
        pytest.skip("the shipped model has no post-filter")
    plain = HyperpriorCodec(dataclasses.replace(lm.model.config, post_filter=None))
    plain.load_state_dict({k: v for k, v in lm.model.state_dict().items() if not k.startswith("post_filter.")})
    export_weights(plain, tmp_path / "plain.pt")
    for q in (2, 6):
        ours = compress(photo, quality=q, fallback=False)
        theirs = compress(photo, quality=q, fallback=False, weights=tmp_path / "plain.pt")
        assert bitstream.read(ours)[1] == bitstream.read(theirs)[1]  # the headers name other models; the payloads are the same
        gain = psnr(photo, np.asarray(decompress(ours))) - psnr(photo, np.asarray(decompress(theirs, weights=tmp_path / "plain.pt")))
        assert gain > 0.05, (q, gain)


def test_a_post_filtered_decode_is_the_same_at_any_window_size(photo):
    from gancodec.tiling import TileGrid, decode_latents, synthesize

    header, payloads = bitstream.read(compress(photo, quality=3, tile_size=128, fallback=False))
    lm = load_model()
    grid = TileGrid(header.height, header.width, header.tile_size)
    y_hat = decode_latents(lm.coder, payloads, grid, lm.model.config.M, lm.model.config.N)
    a = synthesize(lm.model, y_hat, header.quality - 1, grid, 3, 64, torch.device("cpu"))
    b = synthesize(lm.model, y_hat, header.quality - 1, grid, 3, 512, torch.device("cpu"))
    assert np.abs(a.astype(int) - b).max() <= 1


def test_the_shipped_realism_decoder_serves_the_model_that_extends_its_base(photo):
    lm = load_model()
    card = json.loads(SHIPPED_REALISM.with_suffix(".json").read_text())
    assert card["base_model_id"] in (lm.model_id, lm.extends_model_id)
    stream = compress(photo, quality=1, fallback=False)
    fid = np.asarray(decompress(stream))
    assert np.array_equal(np.asarray(decompress(stream, realism=0.0)), fid)
    assert np.abs(np.asarray(decompress(stream, realism=1.0)).astype(int) - fid).mean() > 0.5


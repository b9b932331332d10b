"""The detail-generator realism decoder (models/detail.py) and its CPU training on cached decodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gancodec import compress, decompress
from gancodec.errors import ModelError
from gancodec.models.detail import DetailConfig, DetailGenerator, position_noise
from gancodec.weights import load_model
from gancodec.weights.realism import export_detail, realism_model


def test_position_noise_depends_only_on_the_absolute_position():
    whole = position_noise(1, 4, 40, 50)
    part = position_noise(1, 4, 16, 20, y0=9, x0=23)
    assert torch.equal(part, whole[:, :, 9:25, 23:43])
    assert abs(float(whole.mean())) < 0.1 and 0.9 < float(whole.std()) < 1.1
    assert float(torch.corrcoef(torch.stack([whole[0, 0].flatten(), whole[0, 1].flatten()]))[0, 1]) < 0.1


def test_generator_starts_as_the_identity_and_keeps_the_size():
    g = DetailGenerator(DetailConfig(width=8, blocks=1))
    x = torch.rand(2, 3, 64, 96)
    y = torch.randn(2, 192, 6, 8)
    assert torch.equal(g(x, y, g.noise_for(x), margin=1), torch.zeros_like(x))


@pytest.fixture(scope="module")
def detail_file(tmp_path_factory):
    torch.manual_seed(0)
    g = DetailGenerator(DetailConfig(width=8, blocks=1))
    torch.nn.init.normal_(g.tail.weight, std=0.05)  # a generator that adds something
    path = tmp_path_factory.mktemp("detail") / "realism.pt"
    export_detail(g, load_model().model_id, path, step=1)
    return path


@pytest.fixture(scope="module")
def stream():
    rng = np.random.default_rng(0)
    x = (np.indices((96, 128)).sum(0) % 7 * 30).astype(np.uint8)[:, :, None].repeat(3, 2)
    return compress(np.clip(x + rng.integers(0, 40, x.shape), 0, 255).astype(np.uint8), quality=1)


def test_same_stream_decodes_deterministically_and_strength_interpolates(stream, detail_file):
    fid = np.asarray(decompress(stream)).astype(int)
    real = np.asarray(decompress(stream, realism=1.0, realism_weights=detail_file)).astype(int)
    again = np.asarray(decompress(stream, realism=1.0, realism_weights=detail_file)).astype(int)
    half = np.asarray(decompress(stream, realism=0.5, realism_weights=detail_file)).astype(int)
    assert np.array_equal(real, again)
    assert np.abs(real - fid).mean() > 0.5
    inside = (real > 0) & (real < 255) & (fid > 0) & (fid < 255)  # where nothing clipped
    assert np.abs(half - (fid + real) / 2)[inside].max() <= 1.01  # the rounding of each
    assert np.array_equal(np.asarray(decompress(stream, realism=0.0, realism_weights=detail_file)), fid)


def test_tiled_decode_is_the_same_at_any_window_size(stream, detail_file):
    from gancodec import bitstream
    from gancodec.tiling import TileGrid, decode_latents as dec, synthesize

    header, payloads = bitstream.read(stream)
    lm = load_model()
    grid = TileGrid(header.height, header.width, header.tile_size)
    y_hat = dec(lm.coder, payloads, grid, lm.model.config.M, lm.model.config.N)
    net = realism_model(lm, 1.0, detail_file)
    a = synthesize(net, y_hat, header.quality - 1, grid, 3, 64, torch.device("cpu"))
    b = synthesize(net, y_hat, header.quality - 1, grid, 3, 512, torch.device("cpu"))
    assert np.abs(a.astype(int) - b).max() <= 1


def test_a_realism_file_for_another_model_is_refused_in_one_line(stream, tmp_path):
    g = DetailGenerator(DetailConfig(width=8, blocks=1))
    path = tmp_path / "realism.pt"
    export_detail(g, "0" * 32, path)
    with pytest.raises(ModelError, match="trained for model 0{32}.*stream's model") as err:
        decompress(stream, realism=True, realism_weights=path)
    assert "\n" not in str(err.value)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["base_model_id"] == "0" * 32 and card["arch"] == "detail"


@pytest.mark.skipif(not __import__("gancodec.weights.realism", fromlist=["x"]).SHIPPED_REALISM.exists(),
                    reason="no realism decoder is shipped")
def test_the_shipped_realism_decoder_decodes_shipped_streams_and_refuses_other_models(stream, tmp_path):
    import os
    import subprocess
    import sys

    from gancodec.models import HyperpriorCodec
    from gancodec.weights import export_weights
    from gancodec.weights.realism import SHIPPED_REALISM

    card = json.loads(SHIPPED_REALISM.with_suffix(".json").read_text())
    lm = load_model()  # the model it was trained for, or one that extends it (v1.6: v1.5 + a post-filter)
    assert card["base_model_id"] in (lm.model_id, lm.extends_model_id) and SHIPPED_REALISM.stat().st_size <= 16 * 2**20
    src = tmp_path / "x.gcx"
    src.write_bytes(stream)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANCODEC_")}  # a fresh install
    ok = subprocess.run([sys.executable, "-m", "gancodec", "decompress", str(src), "-o", str(tmp_path / "x.png"),
                         "--realism", "0.8"], capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert not np.array_equal(np.asarray(__import__("PIL.Image", fromlist=["x"]).open(tmp_path / "x.png")),
                              np.asarray(decompress(stream)))
    # a later fidelity release must not pair with it: another model's stream is refused, in one line
    other = tmp_path / "other.pt"
    torch.manual_seed(1)
    export_weights(HyperpriorCodec(), other)
    x = np.zeros((64, 64, 3), np.uint8)
    foreign = compress(x, quality=1, weights=other, fallback=False)  # a learned stream (a flat image would be a WebP)
    with pytest.raises(ModelError, match="trained for model [0-9a-f]{32}, but the stream's model is") as err:
        decompress(foreign, weights=other, realism=True, realism_weights=SHIPPED_REALISM)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def detail_cache(tmp_path_factory):
    from PIL import Image

    from gancodec.realism.detail_loop import DetailTrainConfig, build_cache

    root = tmp_path_factory.mktemp("detail-train")
    rng = np.random.default_rng(1)
    for i in range(2):
        x = (np.indices((288, 288)).sum(0) % (5 + i) * 40).astype(np.uint8)[:, :, None].repeat(3, 2)
        Image.fromarray(np.clip(x + rng.integers(0, 60, x.shape), 0, 255).astype(np.uint8)).save(root / f"{i}.png")
    cfg = DetailTrainConfig(data_dirs=[str(root)], cache_dir=str(root / "cache"), crops=2, threads=1)
    build_cache(cfg, log=lambda rec: None)
    return cfg


def _train(cfg, out, **changes):
    import dataclasses

    from gancodec.realism.detail_loop import train_detail

    settings = {"steps": 3, "batch_size": 1, "window": 64, "w_tex": 0.0, "w_adv": 0.1, **changes}
    run = dataclasses.replace(cfg, out_dir=str(out), **settings)
    train_detail(run, log=lambda rec: None)
    return torch.load(out / "last.pt", map_location="cpu", weights_only=True)


def test_the_discriminator_warms_up_alone_while_the_generator_stays_as_it_was(detail_cache, tmp_path):
    warm = _train(detail_cache, tmp_path / "warm", d_warmup_steps=3)
    assert warm["step"] == 3
    assert not warm["generator"]["tail.weight"].any()  # still zero-initialised: G adds nothing yet, no drift to MSE
    trained = _train(detail_cache, tmp_path / "trained", d_warmup_steps=1)  # the same run, G trains from step 1
    assert trained["generator"]["tail.weight"].any()


def test_a_deterministic_filter_has_no_noise_input(detail_cache, tmp_path):
    ck = _train(detail_cache, tmp_path / "filter", noise_channels=0, w_adv=0.0, mse_log=True)
    assert ck["generator"]["head.weight"].shape[1] == 12 + 16  # pixels and latent features, no noise channels
    assert not torch.equal(ck["generator"]["tail.weight"], torch.zeros_like(ck["generator"]["tail.weight"]))


def test_the_card_names_the_losses_the_detail_generator_trained_with(detail_file, tmp_path):
    from gancodec.realism.ship import ship_realism

    gan = ship_realism(detail_file, dest=tmp_path / "a.pt", train_config={"w_mse": 100, "w_tex": 0.0, "w_adv": 0.25})
    assert "discriminator" in gan["summary"] and "texture loss" not in gan["summary"]
    tex = ship_realism(detail_file, dest=tmp_path / "b.pt", train_config={"w_mse": 100, "w_tex": 1.0, "w_adv": 0.0})
    assert "texture loss" in tex["summary"] and "discriminator" not in tex["summary"]


def test_a_rate_aware_generator_needs_and_uses_the_rate():
    torch.manual_seed(0)
    g = DetailGenerator(DetailConfig(width=8, blocks=1, noise_channels=0, rate_input=1))
    torch.nn.init.normal_(g.tail.weight, std=0.05)
    x, y = torch.rand(1, 3, 32, 32), torch.randn(1, 192, 4, 4)
    with pytest.raises(ValueError, match="rate"):
        g(x, y, g.noise_for(x))
    assert not torch.equal(g(x, y, g.noise_for(x), rate=0.0), g(x, y, g.noise_for(x), rate=7.0))


def test_the_command_line_switches_are_flags_and_a_value_after_one_is_an_error(capsys):
    from gancodec.realism.detail_loop import parse_args

    what, cfg = parse_args(["train", "--no-amp", "--mse-log", "--rate-input", "--width", "16", "--cache-dir", "c"])
    assert what == "train" and (cfg.amp, cfg.mse_log, cfg.rate_input, cfg.width, cfg.cache_dir) == (False, True, True, 16, "c")
    assert parse_args(["train"])[1].amp is True
    with pytest.raises(SystemExit):
        parse_args(["train", "--amp", "false"])  # "--amp False" once read as True
    assert "unrecognized arguments: false" in capsys.readouterr().err


def test_train_realism_with_no_steps_ships_the_starting_file_byte_for_byte(tmp_path):
    from gancodec.weights import SHIPPED_WEIGHTS
    from gancodec.weights.realism import SHIPPED_REALISM

    (tmp_path / "params.yaml").write_text("realism:\n  init_from: shipped\n  steps: 0\n")
    (tmp_path / "train.csv").write_text("path\n")
    out = tmp_path / "models" / "realism.pt"
    run = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "stages/train_realism.py"), "--params", str(tmp_path / "params.yaml"),
                          "--train-list", str(tmp_path / "train.csv"), "--base", str(SHIPPED_WEIGHTS),
                          "--cache", str(tmp_path / "cache"), "--run", str(tmp_path / "run"), "--out", str(out),
                          "--live", str(tmp_path / "live")], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == SHIPPED_REALISM.read_bytes()
    assert json.loads(out.with_suffix(".json").read_text())["unchanged"] is True
    assert (tmp_path / "cache").is_dir() and (tmp_path / "run").is_dir() and any((tmp_path / "live" / "plots").rglob("*.tsv"))

"""The channel-conditional context over the checkerboard, and the entropy stage that trains it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gancodec
from gancodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from gancodec.train.entropy import EntropyTrainConfig, train_entropy
from gancodec.weights import export_weights, load_model

from sample_images import astronaut, coffee


def _channel_weights(base_path, out_path, perturb: float = 0.0):
    """``base_path`` with a checkerboard + channel context (``perturb``: random last layers, so
    the context really changes the parameters)."""
    model = model_from_checkpoint(load_checkpoint(base_path), str(base_path), {"context": "channel-checkerboard"})
    if perturb:
        torch.manual_seed(2)
        torch.nn.init.normal_(model.context.mix[-1].weight, std=perturb)
        for refiner in [*model.channel_context.anchor_refiners, *model.channel_context.non_anchor_refiners]:
            torch.nn.init.normal_(refiner.mix[-1].weight, std=perturb)
    export_weights(model, out_path)
    return str(out_path)


@pytest.fixture(scope="module")
def channel_weights(tiny_weights, tmp_path_factory):
    return _channel_weights(tiny_weights, tmp_path_factory.mktemp("cc") / "cc.pt", perturb=0.05)


def test_a_new_channel_context_decodes_the_same_pixels_as_its_base(tiny_weights, tmp_path):
    checkerboard = str(tmp_path / "cb.pt")
    export_weights(model_from_checkpoint(load_checkpoint(tiny_weights), "t", {"context": "checkerboard"}), checkerboard)
    fresh = _channel_weights(checkerboard, tmp_path / "fresh.pt")
    img = coffee()
    a = gancodec.compress(img, weights=checkerboard, fallback=False)
    b = gancodec.compress(img, weights=fresh, fallback=False)
    assert abs(len(a) - len(b)) <= 0.01 * len(a) + 8  # the same tables, coded slice by slice
    assert np.array_equal(np.asarray(gancodec.decompress(a, weights=checkerboard)),
                          np.asarray(gancodec.decompress(b, weights=fresh)))


@pytest.mark.parametrize("latent_shape", [(1, 1), (2, 7), (6, 5)])
def test_channel_streams_decode_to_what_the_encoder_quantised(channel_weights, latent_shape):
    coder = load_model(channel_weights).coder
    h, w = latent_shape
    y = torch.randn(1, 24, h, w, generator=torch.Generator().manual_seed(h * 10 + w)) * 4
    data, y_hat = coder.encode_with_latent(y)
    assert torch.equal(coder.decode(data, h, w, 16), y_hat)


def test_channel_images_round_trip_and_decode_in_tiles(channel_weights):
    img = astronaut()[:200, :300]
    data = gancodec.compress(img, weights=channel_weights, fallback=False, tile_size=128)
    whole = np.asarray(gancodec.decompress(data, weights=channel_weights))
    assert whole.shape == img.shape


def test_the_entropy_stage_lowers_the_rate_and_resumes(tiny_weights, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    for i, arr in enumerate([astronaut(), coffee()]):
        Image.fromarray(arr).save(images / f"{i}.png")
    base = str(tmp_path / "base.pt")
    model = model_from_checkpoint(load_checkpoint(tiny_weights), "t", {"context": "checkerboard"})
    with torch.no_grad():  # the untrained latents are ~0 (nothing to code); make them ~50x larger
        model.gain.log_gain += 4.0
    export_weights(model, base)
    records = []
    cfg = EntropyTrainConfig(base=base, images=[str(images)], cache_dir=str(tmp_path / "cache"), compare_every=1,
                             run_dir=str(tmp_path / "run"), crops=16, crop=64, batch_size=8, steps=40,
                             lr=3e-3, warmup=5, log_every=10)
    model, steps = train_entropy(cfg, log=records.append)
    assert steps == 40
    losses = [r["saving_pct"] for r in records if "saving_pct" in r]
    assert losses[-1] > 0, f"the trained context codes no fewer bits than the checkerboard: {losses}"
    # a second run continues from the checkpoint (and the cache is kept: same base, same crops)
    more = []
    cache_mtime = (tmp_path / "cache" / "cache.json").stat().st_mtime
    _, steps = train_entropy(EntropyTrainConfig(**{**cfg.__dict__, "steps": 50}), log=more.append)
    start = next(r for r in more if r.get("event") == "start")
    assert steps == 50 and start["origin"].startswith("resumed"), start
    assert (tmp_path / "cache" / "cache.json").stat().st_mtime == cache_mtime
    assert json.loads((tmp_path / "cache" / "cache.json").read_text())["key"]["crops"] == 16
    # the exported model codes an image in fewer bytes than its base, and decodes it
    out = str(tmp_path / "trained.pt")
    export_weights(model, out)
    img = coffee()
    assert len(gancodec.compress(img, weights=out, fallback=False)) < len(gancodec.compress(img, weights=base, fallback=False))


def test_the_entropy_stage_can_train_the_hyper_synthesis_and_checkerboard_too(tiny_weights, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.fromarray(astronaut()).save(images / "a.png")
    base = str(tmp_path / "base.pt")
    model = model_from_checkpoint(load_checkpoint(tiny_weights), "t", {"context": "checkerboard"})
    with torch.no_grad():
        model.gain.log_gain += 4.0
    export_weights(model, base)
    records = []
    cfg = EntropyTrainConfig(base=base, images=[str(images)], cache_dir=str(tmp_path / "cache"), compare_every=1,
                             run_dir=str(tmp_path / "run"), crops=8, crop=64, batch_size=8, steps=12, lr=3e-3,
                             warmup=2, log_every=4, parts=("channel_context", "context", "h_s"))
    trained, _ = train_entropy(cfg, log=records.append)
    before = model_from_checkpoint(load_checkpoint(base), "b")
    assert not torch.equal(trained.h_s[-1].weight, before.h_s[-1].weight)
    assert torch.equal(trained.g_a[0].weight, before.g_a[0].weight)  # the transforms stay frozen
    assert [r["saving_pct"] for r in records if "saving_pct" in r][-1] > 0
    with pytest.raises(ValueError, match="channel_context"):
        train_entropy(EntropyTrainConfig(**{**cfg.__dict__, "parts": ("h_s",)}))


def test_the_train_entropy_stage_copies_at_0_steps_and_carries_trained_steps(tiny_weights, tmp_path, capsys, monkeypatch):
    import importlib.util
    from pathlib import Path

    import yaml
    from PIL import Image

    from gancodec.weights import model_id_of

    spec = importlib.util.spec_from_file_location("train_entropy", Path(__file__).parents[1] / "stages/train_entropy.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    monkeypatch.chdir(tmp_path)  # dvclive saves a DVC experiment of the repo it runs in: not this checkout
    Image.fromarray(coffee()).save(tmp_path / "a.png")
    (tmp_path / "train.csv").write_text(f"path\n{tmp_path / 'a.png'}\n")
    base = tmp_path / "base.pt"
    model = model_from_checkpoint(load_checkpoint(tiny_weights), "t", {"context": "checkerboard"})
    with torch.no_grad():
        model.gain.log_gain += 4.0
    export_weights(model, base, trained_steps={"transforms": 12})

    def run(steps: int) -> dict:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({"profile": "default", "entropy": {
            "init_from": "base", "steps": steps, "crops": 8, "batch_size": 4, "log_every": 1}}))
        rc = stage.main(["--params", str(tmp_path / "params.yaml"), "--train-list", str(tmp_path / "train.csv"),
                         "--base", str(base), "--cache", str(tmp_path / "cache"), "--run", str(tmp_path / "run"),
                         "--out", str(tmp_path / "out/entropy.pt"), "--sha256", str(tmp_path / "out/entropy.sha256"),
                         "--live", str(tmp_path / "live")])
        assert rc == 0, capsys.readouterr().err
        return json.loads((tmp_path / "out/entropy.json").read_text())

    card = run(0)
    assert (tmp_path / "out/entropy.pt").read_bytes() == base.read_bytes() and card["trained_steps"] == {"transforms": 12}
    card = run(3)
    out = load_checkpoint(tmp_path / "out/entropy.pt")
    assert card["steps"] == 3 and out["trained_steps"] == {"transforms": 12, "entropy": 3}
    assert out["model_config"]["context"] == "channel-checkerboard"
    assert out["extends_model_id"] == model_id_of(base.read_bytes())  # realism decoders of the base still apply
    assert (tmp_path / "out/entropy.sha256").read_text().split()[0] == card["sha256"]

"""Stage 2: the realism decoder trains over a frozen stage-1 model, and the same .gcx decodes with both."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gancodec import ModelError, compress, decompress
from gancodec.models import HyperpriorCodec
from gancodec.realism import ConditionalPatchDiscriminator, RealismConfig, export_realism, train_realism
from sample_images import astronaut, coffee


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three stage-2 steps on two images; the stream of an image made before training."""
    root = tmp_path_factory.mktemp("stage2")
    data = root / "data"
    data.mkdir()
    Image.fromarray(astronaut(256)).save(data / "a.png")
    Image.fromarray(coffee()).save(data / "c.png")
    img = coffee()[:192, :256]
    before = compress(img, quality=3)
    path = train_realism(RealismConfig(data_dirs=[str(data)], out_dir=str(root / "run"), steps=3, batch_size=2,
                                       crop=64, lr=1e-3, threads=2, log_every=1, device="cpu", rate_max=3.0),
                          log=lambda rec: None)
    return {"path": path, "image": img, "before": before, "root": root}


def test_encoder_is_bit_identical_after_stage_2(trained):
    assert compress(trained["image"], quality=3) == trained["before"]
    assert (trained["root"] / "run/last.pt").is_file() and trained["path"].with_suffix(".json").is_file()
    assert json.loads(trained["path"].with_suffix(".json").read_text())["qualities"] == "1-4"  # rate_max=3
    assert trained["path"].stat().st_size < 16 * 2**20  # carryable from a GPU session


def test_same_stream_decodes_with_both_decoders(trained):
    data, rw = trained["before"], trained["path"]
    fidelity = np.asarray(decompress(data))
    realism = np.asarray(decompress(data, realism=True, realism_weights=rw))
    assert realism.shape == fidelity.shape == trained["image"].shape
    assert not np.array_equal(realism, fidelity)  # a different decoder ran
    assert np.array_equal(np.asarray(decompress(data, realism=1.0, realism_weights=rw)), realism)
    assert np.array_equal(np.asarray(decompress(data, realism=0.0, realism_weights=rw)), fidelity)
    half = np.asarray(decompress(data, realism=0.5, realism_weights=rw)).astype(int)
    assert not np.array_equal(half, fidelity) and not np.array_equal(half, realism)


def test_missing_or_foreign_realism_weights_are_clear(trained, tmp_path):
    data = trained["before"]
    with pytest.raises(ModelError, match="realism decoder: .* not found"):
        decompress(data, realism=True, realism_weights=tmp_path / "none.pt")
    g_s = HyperpriorCodec().g_s
    export_realism(g_s, "0" * 32, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="trained for model 0{32}, but the stream's model is [0-9a-f]{32}"):
        decompress(data, realism=True, realism_weights=tmp_path / "other.pt")
    with pytest.raises(ValueError, match="between 0 and 1"):
        decompress(data, realism=1.5, realism_weights=trained["path"])


def test_cli_realism_without_weights_is_one_line(trained, tmp_path):
    src = tmp_path / "x.gcx"
    src.write_bytes(trained["before"])
    # a realism file that is not there (the package ships realism-v1 for its own model)
    env_free = {**__import__("os").environ, "GANCODEC_REALISM_WEIGHTS": str(tmp_path / "none.pt")}
    run = subprocess.run([sys.executable, "-m", "gancodec", "decompress", str(src), "-o", str(tmp_path / "x.png"),
                          "--realism"], capture_output=True, text=True, env=env_free, timeout=120)
    assert run.returncode != 0 and "Traceback" not in run.stderr and not (tmp_path / "x.png").exists()
    assert run.stderr.count("\n") == 1 and "realism decoder" in run.stderr
    env = {**env_free, "GANCODEC_REALISM_WEIGHTS": str(trained["path"])}
    ok = subprocess.run([sys.executable, "-m", "gancodec", "decompress", str(src), "-o", str(tmp_path / "y.png"),
                         "--realism", "0.7"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert Image.open(tmp_path / "y.png").size == (256, 192)
    bad = subprocess.run([sys.executable, "-m", "gancodec", "decompress", str(src), "-o", str(tmp_path / "z.png"),
                          "--realism", "2"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "from 0 to 1" in bad.stderr


def test_discriminator_is_conditioned_per_patch():
    d = ConditionalPatchDiscriminator(latent_channels=192)
    x, y_hat = torch.rand(2, 3, 128, 128), torch.randn(2, 192, 8, 8)
    outs = d(x, y_hat)
    assert [o[-1].shape for o in outs] == [(2, 1, 15, 15), (2, 1, 7, 7)]
    other = d(x, y_hat + 1.0)
    assert not torch.allclose(outs[0][-1], other[0][-1])  # the latent changes the verdict


def test_ms_ssim_loss_is_float32_inside_bf16_autocast():
    """GPU training runs the losses inside bf16 autocast; SSIM's variances cancel to noise in bf16.

    The first GPU realism runs optimised that noise (a loss 4x too large) and fell to ~22 dB."""
    from gancodec.realism.losses import ms_ssim_loss

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 192, 192, generator=g)
    x_hat = (x + 0.03 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    exact = ms_ssim_loss(x_hat, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_amp = ms_ssim_loss(x_hat, x)
    assert under_amp.dtype == torch.float32
    assert abs(float(under_amp) - float(exact)) < 1e-6


def test_spectral_norm_can_be_switched_off():
    """benchmarks/discriminator_probe.py compares discriminator recipes with and without it."""
    with_sn = ConditionalPatchDiscriminator(latent_channels=192)
    without = ConditionalPatchDiscriminator(latent_channels=192, spectral=False)
    assert any("parametrizations" in n for n, _ in with_sn.named_parameters())
    assert not any("parametrizations" in n for n, _ in without.named_parameters())
    x, y_hat = torch.rand(1, 3, 64, 64), torch.randn(1, 192, 4, 4)
    assert [o[-1].shape for o in without(x, y_hat)] == [o[-1].shape for o in with_sn(x, y_hat)]


def test_shipping_a_realism_decoder_writes_a_card_that_loads_and_renders(trained, tmp_path):
    from gancodec.realism.ship import ship_realism
    from gancodec.weights import MODEL_CARD
    from gancodec.weights.ship import render_markdown

    table = {"images": 1, "command": "python benchmarks/realism_kodak.py --limit 1",
             "rows": [{"quality": 2.0, "strength": 1.0, "bpp": 0.25, "psnr": 27.5, "ms_ssim": 0.93, "ssimulacra2": 41.2,
                       "webp_ssimulacra2": float("nan"), "avif_ssimulacra2": 44.0}]}
    dest = tmp_path / "realism-v1.pt"
    card = ship_realism(trained["path"], table, notes="test run", dest=dest)
    on_disk = json.loads(dest.with_suffix(".json").read_text(), parse_constant=lambda c: float(c))
    assert on_disk["sha256"] == card["sha256"] and on_disk["train_config"]["rate_max"] == 3.0  # from the run's last.pt
    assert np.asarray(decompress(trained["before"], realism=True, realism_weights=dest)).shape == trained["image"].shape
    base = json.loads(MODEL_CARD.read_text())
    assert on_disk["base_model_id"] == base["model_id"]
    md = render_markdown(base, realism=card)
    assert "## Realism decoder (`realism-v1.pt`)" in md and "| 2 | 0.250 | 1 | 27.50 | 0.9300 | 41.20 | n/a | 44.00 |" in md

    raw = bytearray(dest.read_bytes())  # damaged in place after a decode: the file is read again, not served from cache
    raw[len(raw) // 2] ^= 0xFF
    dest.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256 does not match"):  # the card written beside it guards the file
        decompress(trained["before"], realism=True, realism_weights=dest)


def test_realism_file_replaced_on_disk_is_read_again_and_the_cache_is_bounded(trained, tmp_path):
    from gancodec.realism import weights as rw

    path = tmp_path / "r.pt"
    path.write_bytes(trained["path"].read_bytes())
    first = np.asarray(decompress(trained["before"], realism=True, realism_weights=path))
    g_s = HyperpriorCodec().g_s  # random decoder for the same model: a visibly different image
    from gancodec.weights import load_model

    export_realism(g_s, load_model().model_id, tmp_path / "new.pt")
    (tmp_path / "new.pt").replace(path)
    path.with_suffix(".json").unlink(missing_ok=True)
    assert not np.array_equal(np.asarray(decompress(trained["before"], realism=True, realism_weights=path)), first)
    for strength in np.linspace(0.1, 0.9, 9):  # a worker serving jobs at many strengths keeps a few decoders, not all
        decompress(trained["before"], realism=float(strength), realism_weights=path)
    assert len(rw._cache) <= rw.MIXES_KEPT


def test_shipping_a_realism_decoder_for_another_model_is_refused(trained, tmp_path):
    from gancodec.realism.ship import ship_realism

    g_s = HyperpriorCodec().g_s
    export_realism(g_s, "0" * 32, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="trained for model 0{32}, but the shipped model"):
        ship_realism(tmp_path / "other.pt", dest=tmp_path / "realism-v1.pt")
    assert not (tmp_path / "realism-v1.pt").exists()


def test_cli_loss_weights_and_discriminator_rate_reach_the_run(trained, tmp_path):
    from gancodec.realism.__main__ import main

    out = tmp_path / "run"
    main(["--data", str(trained["root"] / "data"), "--out", str(out), "--steps", "1", "--batch-size", "1",
          "--crop", "64", "--threads", "2", "--device", "cpu", "--w-adv", "0.5", "--w-ms-ssim", "0", "--d-lr", "3e-4"])
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert (ck["config"]["w_adv"], ck["config"]["w_ms_ssim"], ck["config"]["d_lr"]) == (0.5, 0.0, 3e-4)
    assert ck["opt_d"]["param_groups"][0]["lr"] == 3e-4 and ck["opt_g"]["param_groups"][0]["lr"] == 1e-4


def test_artifact_loss_scores_added_structure_not_lost_detail():
    """Noise and a blur with the same MSE: the artifact term must charge the noise, which adds
    structure the input lacks, several times more than the blur, which only removes it."""
    from gancodec.realism.losses import artifact_loss

    x = torch.from_numpy(astronaut(128).copy()).permute(2, 0, 1)[None].float() / 255
    blur = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    mse = float(((blur - x) ** 2).mean())
    noise = (x + torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * mse ** 0.5).clamp(0, 1)
    assert abs(float(((noise - x) ** 2).mean()) / mse - 1) < 0.2
    assert float(artifact_loss(noise, x)) > 4 * float(artifact_loss(blur, x))
    assert float(artifact_loss(x, x)) == 0.0


def test_without_adversarial_terms_no_discriminator_is_trained(trained, tmp_path):
    cfg = RealismConfig(data_dirs=[str(trained["root"] / "data")], out_dir=str(tmp_path / "run"), steps=2, batch_size=1,
                        crop=64, threads=2, device="cpu", log_every=1, w_adv=0.0, w_fm=0.0, w_artifact=10.0)
    logs = []
    train_realism(cfg, log=logs.append)
    steps = [r for r in logs if "step" in r and "event" not in r]
    assert len(steps) == 2 and all("d_loss" not in r and r["artifact"] > 0 for r in steps)
    ck = torch.load(tmp_path / "run/last.pt", map_location="cpu", weights_only=True)
    assert all(not s.get("state") for s in [ck["opt_d"]]) and ck["opt_g"]["state"]  # D's optimiser never stepped


def test_gpu_burst_script_can_train_the_realism_decoder_alone(trained, tmp_path):
    """scripts/gpu_train.sh CROPS OUT 0 S: no stage 1; stage 2 over the given weights, exported
    small enough to come back from a lent GPU (smoke run on the CPU, no compile)."""
    from pathlib import Path

    from gancodec.weights import MODEL_CARD

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "burst"
    env = {**__import__("os").environ, "PYTHON": sys.executable, "GPU_DEVICE": "cpu", "GPU_COMPILE": "0", "GPU_CROP": "64",
           "GPU_REALISM_FLAGS": "--threads 2 --log-every 1"}
    run = subprocess.run(["bash", str(root / "scripts/gpu_train.sh"), str(trained["root"] / "data"), str(out), "0", "6"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert not (out / "hyperprior-next.pt").exists() and not (out / "stage2/last.pt").exists()
    card = json.loads((out / "realism-next.json").read_text())
    assert card["base_model_id"] == json.loads(MODEL_CARD.read_text())["model_id"] and card["step"] >= 1
    assert (out / "realism-next.pt").stat().st_size < 16 * 2**20
    from gancodec.realism.ship import ship_realism

    shipped = ship_realism(out / "realism-next.pt", dest=tmp_path / "realism-v1.pt")  # without the run's last.pt
    assert shipped["train_config"]["crop"] == 64 and shipped["train_config"]["data_dirs"] == [str(trained["root"] / "data")]

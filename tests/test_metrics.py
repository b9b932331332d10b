"""Per-image and set-level metrics (gancodec.eval.metrics)."""

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from gancodec.eval import metrics as m


@pytest.fixture(scope="module")
def pair():
    """An RGB image (192x256) and its JPEG q=30 reconstruction."""
    x = np.ascontiguousarray(data.astronaut()[64:256, 128:384])
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=30)
    return x, np.asarray(Image.open(buf)), len(buf.getvalue())


def test_bpp():
    assert m.bpp(96, 16, 16) == 3.0
    with pytest.raises(ValueError):
        m.bpp(10, 0, 16)


def test_psnr_known_value_and_identity():
    x = np.zeros((4, 4, 3), np.uint8)
    y = x.copy()
    y[0, 0, 0] = 16  # MSE = 256 / 48
    assert m.psnr(x, y) == pytest.approx(10 * math.log10(255**2 * 48 / 256))
    with np.errstate(all="raise"):
        assert m.psnr(x, x) == math.inf
    assert m.psnr(x[:, :, 0], y[:, :, 0]) == pytest.approx(10 * math.log10(255**2 * 16 / 256))


def test_there_is_one_psnr_the_codec_layer_bulk_and_the_evaluation_share():
    """The fallback (codec layer, which may not import gancodec.eval) chooses by the evaluation's
    PSNR, not a copy: one definition in gancodec.metrics_core, re-exported by eval.metrics."""
    import subprocess
    import sys

    from gancodec import fallback, metrics_core
    from gancodec.bulk import jobs

    assert fallback.psnr is m.psnr is metrics_core.psnr
    assert m.mse is metrics_core.mse and m.psnr_from_mse is metrics_core.psnr_from_mse
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-9, 10, x.shape), 0, 255).astype(np.uint8)
    assert jobs.psnr(x, y) == m.psnr(x, y) == metrics_core.psnr_from_mse(metrics_core.mse(x, y))
    assert jobs.psnr(x, x) == 100.0 and m.psnr(x, x) == math.inf
    code = ("import sys, gancodec; before = set(sys.modules); import gancodec.metrics_core; "
            "print(sorted(k for k in set(sys.modules) - before if k.startswith('gancodec')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['gancodec.metrics_core']"  # the bottom layer: it loads nothing else of gancodec


def test_inputs_are_checked():
    x = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        m.psnr(x, x.astype(np.float32))
    with pytest.raises(ValueError, match="shape mismatch"):
        m.psnr(x, x[:4])


def test_ms_ssim(pair):
    x, y, _ = pair
    assert m.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert 0.8 < m.ms_ssim(x, y) < 1.0
    assert m.ms_ssim_db(0.99) == pytest.approx(20.0)


def test_ms_ssim_small_image_is_a_clear_error():
    x = np.zeros((64, 300, 3), np.uint8)
    with pytest.raises(ValueError, match=r"161 px.*300x64"):
        m.ms_ssim(x, x)


def test_ssimulacra2_orders_quality(pair):
    x, y, _ = pair
    assert m.ssimulacra2(x, x) == pytest.approx(100.0)
    worse = np.clip(y.astype(int) + np.random.default_rng(0).integers(-40, 40, y.shape), 0, 255).astype(np.uint8)
    assert m.ssimulacra2(x, y) > m.ssimulacra2(x, worse)


def test_compute_metrics(pair):
    x, y, nbytes = pair
    out = m.compute_metrics(x, y, nbytes, perceptual=False)
    assert out.bpp == pytest.approx(nbytes * 8 / (192 * 256))
    assert 25 < out.psnr < 40 and out.ms_ssim is not None and out.ssimulacra2 is None
    small = m.compute_metrics(x[:100, :100], y[:100, :100], perceptual=False)
    assert small.ms_ssim is None and any("ms_ssim skipped" in n for n in small.notes)


def test_lpips_skipped_without_backbone(tmp_path, monkeypatch, pair):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    x, y, _ = pair
    value, note = m.lpips(x, y)
    assert value is None and note.startswith("skipped: no backbone weights")
    out = m.compute_metrics(x[:170, :170], y[:170, :170], lpips_dir=tmp_path)
    assert out.lpips is None and any("no backbone weights" in n for n in out.notes)


def test_lpips_plumbing_with_stand_in_weights(tmp_path, monkeypatch, pair):
    """Wiring only: random weights in a temp hub dir (real scores need the real weights)."""
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    shapes = [(64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3), (256, 256, 3)]
    g = torch.Generator().manual_seed(0)
    backbone = {}
    for idx, (o, i, k) in zip((0, 3, 6, 8, 10), shapes):
        backbone[f"features.{idx}.weight"] = torch.randn(o, i, k, k, generator=g) * 0.05
        backbone[f"features.{idx}.bias"] = torch.zeros(o)
    torch.save(backbone, hub / "checkpoints" / m.ALEXNET_FILE)
    assert m.lpips(*pair[:2])[1].startswith("skipped: no LPIPS linear layers")
    torch.save({f"lin{j}.model.1.weight": torch.rand(1, s[0], 1, 1, generator=g) for j, s in enumerate(shapes)}, tmp_path / "alex.pth")
    x, y, _ = pair
    same, note = m.lpips(x, x, lpips_dir=tmp_path)
    diff, _ = m.lpips(x, y, lpips_dir=tmp_path)
    assert note == "ok" and same == pytest.approx(0.0, abs=1e-7) and diff > 0


def test_fid_kid_maths():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    assert m.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # Same covariance, mean shifted by 1 on every axis: FID = |mu_a - mu_b|^2 = 4.
    assert m.frechet_distance(a, a + 1.0) == pytest.approx(4.0, abs=1e-6)
    assert abs(m.kernel_inception_distance(a, rng.normal(size=(400, 4)))) < 0.05
    assert m.kernel_inception_distance(a, a + 1.0) > 0.5


def test_patches_and_fid_skip(tmp_path, monkeypatch):
    img = np.zeros((512, 640, 3), np.uint8)
    assert len(m.patches_256(img)) == 2 * 2 + 1 * 2  # 2x2 grid, then a 1x2 grid shifted by 128
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    out = m.fid_kid([img], [img])
    assert out.fid is None and out.kid is None and "no backbone weights" in out.note

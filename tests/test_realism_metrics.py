"""Realism metrics (Laplacian-patch SWD, radial power spectra) on constructed image sets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage import data

from gancodec.eval import realism_metrics as rm
from gancodec.eval.realism_metrics import laplacian_pyramid, spectrum_distance

FAST = {"patches_per_image": 256, "directions": 128}  # fewer samples than the report uses: a quick test


def laplacian_swd(a, b, **kw):
    return rm.laplacian_swd(a, b, **{**FAST, **kw})


def _tiles(img: np.ndarray, size: int = 128) -> list[np.ndarray]:
    h, w = img.shape[:2]
    return [np.ascontiguousarray(img[i:i + size, j:j + size]) for i in range(0, h - size + 1, size)
            for j in range(0, w - size + 1, size)]


@pytest.fixture(scope="module")
def sets():
    # two disjoint sets of 96x96 crops of the same four photos (every other tile): other natural
    # photos of the same kind, sharing no pixel with the originals
    tiles = [t for img in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket()) for t in _tiles(img, 96)]
    originals, others = tiles[0::2], tiles[1::2]
    blurred = [np.clip(gaussian_filter(x.astype(np.float32), (2.0, 2.0, 0)), 0, 255).round().astype(np.uint8)
               for x in originals]
    rng = np.random.default_rng(1)
    noisy = [np.clip(x + rng.normal(0, 12, x.shape), 0, 255).round().astype(np.uint8) for x in originals]
    return originals, others, blurred, noisy


def test_identical_sets_score_zero(sets):
    originals = sets[0]
    m = rm.realism_metrics(originals, [x.copy() for x in originals], **FAST)
    assert m["swd"] == 0.0 and m["spectrum_db"] == 0.0


def test_blur_scores_clearly_worse_than_other_natural_photos(sets):
    originals, others, blurred, _ = sets
    blur, other = laplacian_swd(originals, blurred), laplacian_swd(originals, others)
    assert blur.mean > 2 * other.mean, (blur, other)
    assert blur.per_level[0] > 3 * other.per_level[0]  # the finest band is where blur shows
    assert spectrum_distance(originals, blurred) > 3 * spectrum_distance(originals, others)
    assert spectrum_distance(originals, blurred, signed=True) < 0  # energy missing


def test_noise_counts_as_excess_energy(sets):
    originals, _, _, noisy = sets
    assert laplacian_swd(originals, noisy).per_level[0] > 0.1
    assert spectrum_distance(originals, noisy, signed=True) > 0


def test_deterministic_and_seeded(sets):
    originals, _, blurred, _ = sets
    a, b = laplacian_swd(originals, blurred), laplacian_swd(originals, blurred)
    assert a == b
    assert laplacian_swd(originals, blurred, seed=1).mean == pytest.approx(a.mean, rel=0.1)


def test_pyramid_reconstructs_the_detail():
    x = data.astronaut()[:64, :64]
    bands = laplacian_pyramid(x, 3)
    assert [b.shape[:2] for b in bands] == [(64, 64), (32, 32), (16, 16)]
    assert abs(bands[0].mean()) < 0.01 and bands[0].std() > 0.01


def test_rejects_non_uint8():
    with pytest.raises(TypeError, match="uint8"):
        laplacian_swd([np.zeros((64, 64, 3), np.float32)], [np.zeros((64, 64, 3), np.float32)])

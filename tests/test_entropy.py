"""gancodec.entropy: integer tables and the entropy models' compress / decompress (CompressAI-style)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gancodec.entropy import FactorizedPrior, GaussianConditional, rangecoder
from gancodec.entropy.factorized import TAIL
from gancodec.entropy.gaussian import SCALE_TABLE, TAILS
from gancodec.entropy.tables import PRECISION, quantize_pmf
from gancodec.errors import BitstreamError


def test_quantized_tables_sum_to_the_precision_and_give_every_symbol_a_count():
    rng = np.random.default_rng(0)
    for n in (2, 17, 65, 301):
        pmf = rng.dirichlet(np.full(n, 0.3))
        freq = quantize_pmf(pmf)
        assert freq.sum() == 1 << PRECISION and freq.min() >= 1
        assert np.array_equal(freq, quantize_pmf(pmf))  # deterministic
    with pytest.raises(ValueError, match="too long"):
        quantize_pmf(np.ones(1 << PRECISION))


@pytest.fixture(scope="module")
def prior():
    torch.manual_seed(0)
    p = FactorizedPrior(8)
    p.update_tables()
    return p


def test_the_factorized_prior_refuses_to_code_before_its_tables_exist():
    with pytest.raises(RuntimeError, match=r"call model.update\(\) before coding"):
        FactorizedPrior(4).compress(torch.zeros(1, 4, 2, 2))


def test_factorized_prior_round_trips_any_in_range_hyper_latent(prior):
    rng = np.random.default_rng(1)
    z = torch.from_numpy(rng.integers(-TAIL, TAIL + 1, (1, 8, 3, 5))).to(torch.float64)
    z[0, 0, 0, 0], z[0, 1, 0, 0] = TAIL, -TAIL  # the table ends
    data = prior.compress(z)
    assert isinstance(data, bytes) and len(data) % 4 == 0
    assert torch.equal(prior.decompress(data, 3, 5), z)
    assert torch.equal(FactorizedPrior.quantize(torch.tensor([[[[0.4, -0.6, 99.0, -99.0]]]])),
                       torch.tensor([[[[0.0, -1.0, float(TAIL), -float(TAIL)]]]], dtype=torch.float64))


@pytest.mark.parametrize("value", [0.0, 20.0])
def test_a_stream_costs_the_information_content_of_its_symbols(prior, value):
    """Coded bits = -sum log2 P(symbol) under the integer tables, plus the coder's small overhead."""
    z = torch.full((1, 8, 16, 16), value, dtype=torch.float64)
    p = prior.freqs.numpy()[:, int(value) + TAIL] / (1 << PRECISION)
    ideal = float(-np.log2(p).sum() * 16 * 16)
    bits = len(prior.compress(z)) * 8
    assert ideal <= bits <= ideal * 1.01 + 64


def test_new_tables_are_used_after_the_state_changes(prior):
    other = FactorizedPrior(8)
    torch.manual_seed(5)
    for p in other.parameters():
        p.data.normal_()
    other.update_tables()
    z = torch.zeros(1, 8, 4, 4, dtype=torch.float64)
    copy = FactorizedPrior(8)
    copy.load_state_dict(prior.state_dict())
    assert copy.compress(z) == prior.compress(z)
    copy.load_state_dict(other.state_dict())  # e.g. loading weights into a model used before
    assert copy.compress(z) == other.compress(z) != prior.compress(z)


def test_gaussian_conditional_round_trips_residuals_per_table():
    rng = np.random.default_rng(2)
    indexes = rng.integers(0, len(SCALE_TABLE), (6, 5, 7))
    tails = GaussianConditional.tails(indexes)
    residuals = rng.integers(-tails, tails + 1)
    data = GaussianConditional.compress(residuals, indexes)
    assert np.array_equal(GaussianConditional.decompress(data, indexes), residuals)


def test_quantize_clips_to_the_tables_and_dequantize_adds_the_means():
    y = torch.tensor([[[[0.2, 3.7, -500.0]]]], dtype=torch.float32)
    means = torch.tensor([[[[0.5, 1.0, 0.0]]]], dtype=torch.float64)
    indexes = np.zeros((1, 1, 3), dtype=np.int64)  # the smallest scale: tail 8
    q = GaussianConditional.quantize(y, means, indexes)
    assert q.tolist() == [[[0, 3, -int(TAILS[0])]]]
    assert GaussianConditional.dequantize(q, means).tolist() == [[[[0.5, 4.0, -8.0]]]]


def test_one_stream_carries_z_then_y_as_a_tile_does(prior):
    rng = np.random.default_rng(3)
    z = torch.from_numpy(rng.integers(-3, 4, (1, 8, 2, 2))).to(torch.float64)
    indexes = rng.integers(0, 20, (4, 3, 3))
    residuals = rng.integers(-2, 3, (4, 3, 3))
    encoder = rangecoder.new_encoder()
    assert prior.compress(z, encoder) is None and GaussianConditional.compress(residuals, indexes, encoder) is None
    decoder = rangecoder.open_stream(rangecoder.finish(encoder))
    assert torch.equal(prior.decompress(decoder, 2, 2), z)
    assert np.array_equal(GaussianConditional.decompress(decoder, indexes), residuals)


def test_a_stream_that_is_not_whole_words_is_a_bitstream_error():
    with pytest.raises(BitstreamError, match="not a multiple of 4 bytes"):
        rangecoder.open_stream(b"12345")


def test_a_prior_that_has_coded_can_still_be_copied_and_pickled(prior):
    import copy
    import io

    z = torch.zeros(1, 8, 2, 2, dtype=torch.float64)
    data = prior.compress(z)
    assert copy.deepcopy(prior).compress(z) == data  # e.g. a model moved to a GPU, a realism mix
    buf = io.BytesIO()
    torch.save(prior, buf)
    assert len(buf.getvalue()) > 0

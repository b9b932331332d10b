"""Bjøntegaard delta rate / PSNR (gancodec.eval.bdrate)."""

import math

import numpy as np
import pytest

from gancodec.eval.bdrate import bd_psnr, bd_rate

RATE = [0.1, 0.25, 0.5, 1.0, 2.0]
PSNR = [27.0, 30.5, 33.0, 36.5, 40.0]


def test_identical_curves_give_zero():
    assert bd_rate(RATE, PSNR, RATE, PSNR) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATE, PSNR, RATE, PSNR) == pytest.approx(0.0, abs=1e-9)


def test_double_rate_is_plus_100_percent():
    assert bd_rate(RATE, PSNR, [2 * r for r in RATE], PSNR) == pytest.approx(100.0, abs=1e-9)
    assert bd_rate([2 * r for r in RATE], PSNR, RATE, PSNR) == pytest.approx(-50.0, abs=1e-9)


def test_hand_computed_two_point_case():
    # Two points make pchip a straight line. Anchor: log10 R = (Q - 30) / 10 on Q in [30, 40];
    # test: log10 R = (Q - 30) / 5. Mean log-rate gap over Q in [30, 40] is 1.0 - 0.5 = 0.5,
    # so BD-rate = 10**0.5 - 1. Over the shared log-rate range [0, 1] the anchor averages
    # Q = 35 and the test Q = 32.5: BD-PSNR = -2.5 dB.
    anchor_r, anchor_q = [1.0, 10.0], [30.0, 40.0]
    test_r, test_q = [1.0, 100.0], [30.0, 40.0]
    assert bd_rate(anchor_r, anchor_q, test_r, test_q) == pytest.approx((math.sqrt(10) - 1) * 100, rel=1e-12)
    assert bd_psnr(anchor_r, anchor_q, test_r, test_q) == pytest.approx(-2.5, rel=1e-12)


def test_constant_psnr_shift_gives_that_bd_psnr():
    assert bd_psnr(RATE, PSNR, RATE, [q + 0.7 for q in PSNR]) == pytest.approx(0.7, abs=1e-9)


def test_only_overlapping_range_counts():
    # The test curve equals the anchor where they overlap and goes far beyond it: 0 %.
    # (Collinear points, so pchip's end slopes do not depend on the extra points.)
    line_r = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    line_q = [30.0 + 10.0 * math.log10(r) for r in line_r]
    assert bd_rate(line_r[:3], line_q[:3], line_r, line_q) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(line_r[:3], line_q[:3], line_r, line_q) == pytest.approx(0.0, abs=1e-9)


def test_non_overlapping_curves_raise():
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(RATE, PSNR, RATE, [q + 20 for q in PSNR])
    with pytest.raises(ValueError, match="do not overlap"):
        bd_psnr(RATE, PSNR, [r * 1000 for r in RATE], PSNR)


def test_order_does_not_matter():
    rng = np.random.default_rng(0)
    order = rng.permutation(len(RATE))
    test_r = [1.3 * r for r in RATE]
    shuffled = bd_rate([RATE[i] for i in order], [PSNR[i] for i in order], test_r[::-1], PSNR[::-1])
    assert shuffled == pytest.approx(bd_rate(RATE, PSNR, test_r, PSNR), abs=1e-9)
    assert shuffled == pytest.approx(30.0, abs=1e-9)


def test_non_monotonic_curve_is_handled():
    # A noisy curve whose quality dips while the rate rises still gives a finite answer,
    # and repeated quality values are averaged rather than breaking the interpolation.
    noisy_q = [27.0, 30.5, 30.4, 36.5, 40.0]
    assert math.isfinite(bd_rate(RATE, PSNR, RATE, noisy_q))
    assert math.isfinite(bd_psnr(RATE, PSNR, RATE, noisy_q))
    repeated_q = [27.0, 30.5, 30.5, 36.5, 40.0]
    assert math.isfinite(bd_rate(RATE, PSNR, RATE, repeated_q))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="positive"):
        bd_rate([0.0, 1.0], [30, 40], RATE, PSNR)
    with pytest.raises(ValueError, match="finite"):
        bd_rate(RATE, PSNR, [0.1, 1.0], [30.0, math.inf])
    with pytest.raises(ValueError, match="2 distinct"):
        bd_rate(RATE, PSNR, [0.5, 0.5], [33.0, 33.0])
    with pytest.raises(ValueError, match="rates but"):
        bd_rate(RATE, PSNR[:-1], RATE, PSNR)


def test_a_quality_window_narrows_the_integral():
    """Twice the bits everywhere is +100 % in any window; a codec better only at high quality shows it there."""
    doubled = [2 * r for r in RATE]
    assert bd_rate(RATE, PSNR, doubled, PSNR, quality_window=(PSNR[1], PSNR[2])) == pytest.approx(100.0, abs=1e-9)
    rate = [0.1 * 1.5**i for i in range(8)]
    psnr = [26.0 + 1.7 * i + 0.05 * i * i for i in range(8)]
    high_only = rate[:4] + [r / 2 for r in rate[4:]]  # half the bits from the 5th point up; pchip is local
    low, high = (bd_rate(rate, psnr, high_only, psnr, quality_window=w) for w in ((psnr[0], psnr[1]), (psnr[6], psnr[7])))
    assert low == pytest.approx(0.0, abs=1e-9) and high == pytest.approx(-50.0, abs=1e-9)
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(RATE, PSNR, doubled, PSNR, quality_window=(PSNR[-1] + 1, PSNR[-1] + 2))


def test_quality_at_and_rate_at_invert_each_other_inside_the_curve():
    from gancodec.eval.bdrate import quality_at, rate_at

    assert quality_at(RATE, PSNR, RATE) == pytest.approx(PSNR, abs=1e-9)  # through the measured points
    assert rate_at(RATE, PSNR, PSNR) == pytest.approx(RATE, rel=1e-9)
    rates = [0.3, 0.6, 0.9]  # between them, two monotone interpolants of the same points nearly agree
    assert rate_at(RATE, PSNR, quality_at(RATE, PSNR, rates)) == pytest.approx(rates, rel=0.01)
    assert np.isnan(quality_at(RATE, PSNR, [RATE[0] / 2, RATE[-1] * 2])).all()  # never extrapolated
    assert np.isnan(rate_at(RATE, PSNR, [PSNR[-1] + 1])).all()

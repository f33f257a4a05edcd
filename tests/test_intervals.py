import numpy as np
import pytest

from sbin_loop.model.intervals import summarise_draws


def test_interval_ordering_and_coverage_on_known_normal():
    rng = np.random.default_rng(0)
    draws = rng.normal(loc=3.0, scale=2.0, size=(4000, 5))
    for interval in summarise_draws(draws, 0.95):
        assert interval.mc_mean_lower < interval.mean < interval.mc_mean_upper
        assert interval.lower < interval.mc_mean_lower and interval.mc_mean_upper < interval.upper
        assert interval.lower == pytest.approx(3 - 1.96 * 2, abs=0.25)
        assert interval.t_upper == pytest.approx(3 + 1.96 * 2, abs=0.25)
        assert interval.mc_mean_upper - interval.mc_mean_lower == pytest.approx(2 * 1.96 * 2 / np.sqrt(4000), rel=0.1)


def test_quantile_interval_follows_skew():
    draws = np.expm1(np.random.default_rng(1).normal(2.0, 0.8, size=(5000, 1)))
    (interval,) = summarise_draws(draws)
    assert interval.lower > -1
    assert interval.upper - interval.mean > interval.mean - interval.lower


def test_rejects_single_draw():
    with pytest.raises(ValueError, match="S >= 2"):
        summarise_draws(np.zeros((1, 3)))

import numpy as np
import pytest

from sbin_loop.model.intervals import candidate_intervals


def test_interval_ordering_and_coverage_on_known_normal():
    rng = np.random.default_rng(0)
    draws = rng.normal(loc=3.0, scale=2.0, size=(4000, 5))
    for interval in candidate_intervals(draws, 0.95):
        assert interval.mc_mean_lower < interval.mean < interval.mc_mean_upper
        assert interval.lower < interval.mc_mean_lower and interval.mc_mean_upper < interval.upper
        assert interval.lower == pytest.approx(3 - 1.96 * 2, abs=0.25)
        assert interval.t_upper == pytest.approx(3 + 1.96 * 2, abs=0.25)
        assert interval.mc_mean_upper - interval.mc_mean_lower == pytest.approx(2 * 1.96 * 2 / np.sqrt(4000), rel=0.1)


def test_quantile_interval_follows_skew():
    draws = np.expm1(np.random.default_rng(1).normal(2.0, 0.8, size=(5000, 1)))
    (interval,) = candidate_intervals(draws)
    assert interval.lower > -1
    assert interval.upper - interval.mean > interval.mean - interval.lower


def test_rejects_single_draw():
    with pytest.raises(ValueError, match="at least two draws"):
        candidate_intervals(np.zeros((1, 3)))


def _mixture(mass_at_zero: float, n_draws: int = 20_000, seed: int = 2) -> np.ndarray:
    """``S x 1`` draws: 0 with probability ``mass_at_zero``, else a continuous value above 0."""
    rng = np.random.default_rng(seed)
    values = rng.gamma(4.0, 5.0, size=(n_draws, 1))
    return np.where(rng.random((n_draws, 1)) < mass_at_zero, 0.0, values)


@pytest.mark.parametrize("mass", [0.03, 0.3, 0.9])
def test_an_interval_on_a_mass_at_the_bound_starts_there_and_holds_its_level(mass):
    draws = _mixture(mass)
    (interval,) = candidate_intervals(draws, 0.95, (0.0, None))
    assert interval.lower == 0.0
    assert interval.upper == pytest.approx(np.quantile(draws, 0.95), rel=1e-9)
    assert np.mean(draws <= interval.upper) == pytest.approx(0.95, abs=1e-3)
    # the central interval would hold 0.975: its lower quantile is the bound itself
    assert np.mean(draws <= np.quantile(draws, 0.975)) == pytest.approx(0.975, abs=1e-3)


def test_an_interval_with_less_mass_at_the_bound_than_its_tail_stays_central():
    draws = _mixture(0.01)
    (interval,) = candidate_intervals(draws, 0.95, (0.0, None))
    low, high = np.quantile(draws, [0.025, 0.975])
    assert interval.lower == pytest.approx(low) and interval.lower > 0
    assert interval.upper == pytest.approx(high)


def test_without_a_support_ties_do_not_move_the_interval():
    draws = _mixture(0.3)
    (interval,) = candidate_intervals(draws, 0.95)
    assert interval.upper == pytest.approx(np.quantile(draws, 0.975))


def test_a_mass_at_the_upper_bound_ends_the_interval_there():
    draws = 100.0 - _mixture(0.3)  # mass at 100, the rest below
    (interval,) = candidate_intervals(draws, 0.95, (None, 100.0))
    assert interval.upper == 100.0
    assert interval.lower == pytest.approx(np.quantile(draws, 0.05))
    both = np.concatenate([np.zeros((300, 1)), np.full((300, 1), 100.0), np.full((400, 1), 50.0)])
    (whole,) = candidate_intervals(both, 0.95, (0.0, 100.0))
    assert (whole.lower, whole.upper) == (0.0, 100.0)

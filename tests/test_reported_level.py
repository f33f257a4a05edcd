"""The KL weight's fall with training rows, and the split-conformal match of the reported (95%) interval."""

import numpy as np
import pytest
import torch

from sbin_loop.model.calibration import (
    CALIBRATION_LEVELS,
    HeldOutErrors,
    conformal_scale,
    spread_factors,
    tail_calibrated,
)
from sbin_loop.model.config import ModelConfig, effective_kl_weight, stored_model_config
from sbin_loop.model.conformal_fit import reported_ends, reported_scale
from sbin_loop.model.intervals import bounded_quantiles
from sbin_loop.model.recalibration import match_widest_level
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.model.training import FitData


def test_kl_weight_is_kept_up_to_kl_rows_and_falls_as_the_square_root_beyond():
    config = ModelConfig(kl_weight=0.1, kl_rows=120)
    assert effective_kl_weight(config, 30) == 0.1
    assert effective_kl_weight(config, 120) == 0.1
    assert effective_kl_weight(config, 480) == pytest.approx(0.05)
    assert effective_kl_weight(config, 12_000) == pytest.approx(0.01)
    assert effective_kl_weight(ModelConfig(kl_weight=0.1, kl_rows=None), 12_000) == 0.1


def test_a_stored_config_from_before_kl_rows_keeps_a_constant_weight():
    restored = ModelConfig.model_validate(stored_model_config({"kl_weight": 0.1}))
    assert restored.kl_rows is None
    assert effective_kl_weight(restored, 10_000) == 0.1


def _errors(offset, lower, upper, floor=-np.inf):
    offset = np.asarray(offset, dtype=float)
    levels = len(CALIBRATION_LEVELS)
    return HeldOutErrors(
        offset, np.tile(lower, (levels, 1)), np.tile(upper, (levels, 1)), np.broadcast_to(floor, offset.shape)
    )


def test_conformal_scale_is_the_split_conformal_rank_of_the_needed_factors():
    offset = [-3.0, -1.0, 0.0, 0.5, 2.0, 4.0]
    errors = _errors(offset, -np.ones(6), 2 * np.ones(6))
    needed = np.sort([3.0, 1.0, 0.0, 0.25, 1.0, 2.0])
    # ceil(0.5 x 7) = 4th smallest; at 0.95 every row (ceil(0.95 x 7) = 7 > 6)
    assert conformal_scale(errors, 0.5) == needed[3]
    assert conformal_scale(errors, 0.95) == needed[-1]
    # a zero-width side cannot reach an error on it
    assert conformal_scale(_errors([-1.0] * 3, np.zeros(3), np.ones(3)), 0.5) == np.inf


def test_a_measurement_at_the_bound_is_covered_where_the_whole_prediction_lies_beyond_it():
    """Tc = 0 K measured, the latent median at -5 (below the support): the clamped draws are all 0 K and cover it at
    any scale. Counted as a miss of the upper bound, it made the intervals of every other row wider."""
    floor = np.array([5.0, 5.0, -1.0])  # rows 0, 1: median 5 below the bound; row 2: 1 above it
    errors = _errors([5.0, 5.0, -1.0], -np.ones(3), np.ones(3), floor)
    assert conformal_scale(errors, 0.5) == 0.0  # the 2nd smallest of (0, 0, 1)
    assert conformal_scale(errors, 0.95) == 1.0  # row 2 needs its lower bound to reach the floor
    overall, tail = spread_factors(errors.offset, errors.lower, errors.upper, floor, np.inf)
    assert tail[-1] * overall <= 1.0 + 1e-9  # rows 0 and 1 do not push the factors up
    # the reported interval of rows 0 and 1 is the point mass [bound, bound] at any scale
    low, high = reported_ends(errors, 0.3)
    assert (low[:2] == 5.0).all() and (high[:2] == 5.0).all()
    assert reported_scale(errors) == 1.0


def test_the_mapped_widest_interval_covers_its_conformal_share_of_out_of_fold_errors():
    """Unit-Gaussian draws for errors of scale 2: unscaled, the 95% interval covers about 68% of them; matched, it
    covers exactly ceil(0.95 (n + 1)) of n as prediction maps the draws (``tail_calibrated``)."""
    rng = np.random.default_rng(0)
    n, draws_per_row = 400, 256
    y = torch.as_tensor(rng.normal(scale=2.0, size=(n, 1)), dtype=torch.float32)
    data = FitData(torch.zeros(n, 3), y, torch.ones(n, 1, dtype=torch.bool), torch.zeros(n, 1, dtype=torch.int8))
    held = [np.arange(0, n, 2), np.arange(1, n, 2)]
    draws = [torch.as_tensor(rng.normal(size=(draws_per_row, len(rows), 1)), dtype=torch.float32) for rows in held]
    surrogate = BNNSurrogate(3, ("y",), ("none",), ModelConfig(hidden=(4,), ensemble_size=2))
    (scale,) = match_widest_level(surrogate, data, held, draws)
    assert 1.6 < scale < 2.6
    covered = 0
    level = CALIBRATION_LEVELS[-1]
    for member_draws, rows in zip(draws, held, strict=True):
        mapped = tail_calibrated(member_draws, surrogate.tail_factor, surrogate.spread_offset)
        low, high = torch.quantile(mapped, torch.tensor([(1 - level) / 2, (1 + level) / 2]), dim=0)
        covered += int(((y[rows] >= low - 1e-5) & (y[rows] <= high + 1e-5)).sum())
    assert covered == int(np.ceil(level * (n + 1)))


def _gaussian_errors(rng, n, floor):
    """Held-out errors of Gaussian draws of per-row spread ``s``: the central intervals at every level."""
    from scipy.special import erfinv

    spread = rng.uniform(0.2, 2.0, n)
    z = np.sqrt(2) * erfinv(np.asarray(CALIBRATION_LEVELS))[:, None]  # L x 1
    offset = np.maximum(rng.normal(0.0, 1.3, n) * spread, floor)
    return HeldOutErrors(offset, -z * spread, z * spread, np.broadcast_to(floor, (n,)))


def _reported_count(errors, scale):
    low, high = reported_ends(errors, scale)
    return int(((errors.offset >= low - 1e-6) & (errors.offset <= high + 1e-6)).sum(axis=-1).max())


def test_reported_scale_is_the_conformal_scale_without_a_support():
    rng = np.random.default_rng(3)
    for n in (7, 40, 300):
        errors = _gaussian_errors(rng, n, -np.inf)
        assert reported_scale(errors) == pytest.approx(conformal_scale(errors, CALIBRATION_LEVELS[-1]))


@pytest.mark.parametrize("floor", [-0.3, -1.0])
def test_reported_scale_is_the_smallest_factor_whose_reported_intervals_cover_the_conformal_share(floor):
    """Checked against a fine grid of factors: the reported interval of a row whose lower end reaches the floor
    stops at its 95% quantile, so the central rule's factor leaves it short."""
    rng = np.random.default_rng(4)
    errors = _gaussian_errors(rng, 200, floor)
    below = np.arange(200) % 10 == 0  # every tenth row: the median below the bound, the value at it
    floors = np.where(below, 0.2, errors.floor)
    errors = HeldOutErrors(np.where(below, 0.2, errors.offset), errors.lower, errors.upper, floors)
    needed = int(np.ceil(CALIBRATION_LEVELS[-1] * 201))
    scale = reported_scale(errors)
    assert _reported_count(errors, scale) >= needed
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 20_001))[:, None]  # steps of 0.03%
    low, high = reported_ends(errors, grid)
    counts = ((errors.offset >= low - 1e-6) & (errors.offset <= high + 1e-6)).sum(axis=1)
    first = grid[np.argmax(counts >= needed), 0]
    assert first == pytest.approx(scale, rel=1e-3)
    assert scale > conformal_scale(errors, CALIBRATION_LEVELS[-1])


def test_the_reported_interval_of_a_row_at_the_floor_stops_at_its_inner_quantile():
    errors = _errors([0.5], -np.ones(1), np.ones(1), -0.5)
    errors = HeldOutErrors(
        errors.offset,
        errors.lower * np.linspace(0.1, 2.0, 19)[:, None],
        errors.upper * np.linspace(0.1, 2.0, 19)[:, None],
        errors.floor,
    )
    low, high = reported_ends(errors)
    inner = CALIBRATION_LEVELS.index(0.9)
    assert low[0] == -0.5  # the 95% lower end (-2) is below the floor
    assert high[0] == pytest.approx(errors.upper[inner, 0])


def test_the_mapped_reported_interval_covers_its_conformal_share_where_draws_reach_the_floor():
    """As above with a support starting at -1: the clamped draws of most rows hold a mass there, and the interval
    sbin reports for them (``intervals.bounded_quantiles``: from the bound to the 95% quantile) is the one matched."""
    rng = np.random.default_rng(5)
    n, draws_per_row = 400, 256
    y = torch.as_tensor(np.maximum(rng.normal(scale=2.0, size=(n, 1)), -1.0), dtype=torch.float32)
    data = FitData(torch.zeros(n, 3), y, torch.ones(n, 1, dtype=torch.bool), torch.zeros(n, 1, dtype=torch.int8))
    held = [np.arange(0, n, 2), np.arange(1, n, 2)]
    draws = [torch.as_tensor(rng.normal(size=(draws_per_row, len(rows), 1)), dtype=torch.float32) for rows in held]
    surrogate = BNNSurrogate(3, ("y",), ("none",), ModelConfig(hidden=(4,), ensemble_size=2), ((-1.0, None),))
    assert float(surrogate.standardised_support()[0][0]) == -1.0
    match_widest_level(surrogate, data, held, draws)
    covered = 0
    for member_draws, rows in zip(draws, held, strict=True):
        mapped = tail_calibrated(member_draws, surrogate.tail_factor, surrogate.spread_offset).clamp(min=-1.0)
        low, high = bounded_quantiles(mapped.numpy()[..., 0], np.asarray([0.95]), (-1.0, np.inf))
        assert (low == -1.0).mean() > 0.5  # most rows hold a mass at the floor
        values = y[rows, 0].numpy()
        covered += int(((values >= low[0] - 1e-5) & (values <= high[0] + 1e-5)).sum())
    assert covered == int(np.ceil(0.95 * (n + 1)))


def test_a_network_beside_a_classifier_keeps_central_intervals():
    """Its held-out values lie above the bound; the classifier's mass, not the clamped draws', is what is reported."""
    errors = _gaussian_errors(np.random.default_rng(6), 200, -0.3)
    central = HeldOutErrors(errors.offset, errors.lower, errors.upper, errors.floor, mass_at_bounds=False)
    assert reported_scale(central) == conformal_scale(errors, CALIBRATION_LEVELS[-1]) < reported_scale(errors)
    low, _ = reported_ends(central)
    assert (low == np.maximum(errors.lower[-1], errors.floor)).all()

import json
import math

import numpy as np
import pytest
import torch
from botorch.acquisition import qUpperConfidenceBound

from sbin_loop.model.bnn import VariationalMLP
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.calibration import (
    CALIBRATION_LEVELS,
    MIN_CALIBRATION_ROWS,
    HeldOutErrors,
    conformal_count,
    finite_sample_coverage,
)
from sbin_loop.model.checkpoint import CheckpointError, load_surrogate, read_metadata, save_surrogate
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.likelihood import masked_nll, predictive_noise, standard_noise
from sbin_loop.model.recalibration import recalibrate
from sbin_loop.model.splits import cross_validation_folds, held_out_split, split_draws
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.model.training import cross_fit_folds

SMALL = ModelConfig(hidden=(16, 16), epochs=20, min_steps=100, max_steps=300, ensemble_size=2)


def _data(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.stack([np.abs(x[:, 0]) * 3, x[:, 1] - x[:, 2]], axis=1)
    return x, y


@pytest.fixture(scope="module")
def trained() -> BNNSurrogate:
    torch.set_num_threads(1)
    x, y = _data()
    y[::2, 1] = np.nan  # second target measured for half of the rows only
    surrogate = BNNSurrogate(4, ("a", "b"), ("log1p", "none"), SMALL)
    surrogate.fit(x, y, seed=3)
    return surrogate


def test_shapes_of_draws(trained):
    x, _ = _data(7, seed=1)
    weight_sets = trained.draw_weight_sets(10, seed=0)
    assert trained.evaluate(x, weight_sets).shape == (10, 7, 2)
    assert trained.function_draws(x, 11, seed=0).shape == (11, 7, 2)
    draws = trained.predictive_draws(x, 12, seed=0)
    assert draws.shape == (12, 7, 2)
    assert (draws[..., 0] > -1).all()  # log1p target mapped back with expm1


def test_weight_set_evaluation_equals_one_network_per_draw(trained):
    x = trained.network_inputs(_data(50, seed=2)[0])
    weight_sets = trained.draw_weight_sets(5, seed=4)
    batched = VariationalMLP.evaluate_weight_sets(x, weight_sets)
    for draw in range(5):
        h = x
        for layer, (weights, biases) in enumerate(weight_sets):
            h = h @ weights[draw] + biases[draw]
            h = torch.relu(h) if layer < len(weight_sets) - 1 else h
        torch.testing.assert_close(batched[draw], h, rtol=1e-5, atol=1e-5)


def test_draws_are_split_across_members():
    assert split_draws(7, 3) == [3, 2, 2]
    assert sum(split_draws(1000, 3)) == 1000


def test_same_seed_same_draws_and_fit(trained):
    x, y = _data()
    assert torch.equal(trained.predictive_draws(x, 5, seed=4), trained.predictive_draws(x, 5, seed=4))
    assert not torch.equal(trained.predictive_draws(x, 5, seed=4), trained.predictive_draws(x, 5, seed=5))
    config = ModelConfig(hidden=(8,), epochs=5, min_steps=20, max_steps=40, ensemble_size=1)
    first, second = (BNNSurrogate(4, ("a", "b"), ("none", "none"), config) for _ in range(2))
    first.fit(x, y, seed=1)
    second.fit(x, y, seed=1)
    assert torch.equal(first.function_draws(x, 3, seed=0), second.function_draws(x, 3, seed=0))


def test_masked_likelihood_ignores_missing_entries():
    mean, noise = torch.zeros(4, 2), torch.ones(4, 2)
    target = torch.tensor([[0.0, 1.0], [1.0, 5.0], [0.5, -3.0], [2.0, 0.0]])
    mask = torch.tensor([[True, False], [True, True], [True, False], [False, True]])
    altered = target.clone()
    altered[~mask] = 1e6
    expected = masked_nll(mean, noise, target, mask)
    assert torch.equal(expected, masked_nll(mean, noise, altered, mask))


def test_laplace_likelihood_is_the_laplace_log_density_and_its_noise_has_unit_scale():
    mean, scale = torch.tensor([[0.0], [1.0], [-2.0]]), torch.tensor([[0.5], [2.0], [1.0]])
    target, mask = torch.tensor([[1.0], [0.0], [-2.5]]), torch.ones(3, 1, dtype=torch.bool)
    expected = -torch.distributions.Laplace(mean, scale).log_prob(target).mean()
    assert torch.allclose(masked_nll(mean, scale, target, mask, "laplace"), expected)
    gaussian = -torch.distributions.Normal(mean, scale).log_prob(target).mean()
    assert torch.allclose(masked_nll(mean, scale, target, mask, "gaussian"), gaussian)
    draws = standard_noise(torch.Size([200_000]), "laplace", torch.Generator().manual_seed(0))
    assert abs(float(draws.mean())) < 0.01 and abs(float(draws.abs().mean()) - 1.0) < 0.01  # E|X| = b = 1
    assert abs(float(draws.std()) - math.sqrt(2)) < 0.02
    again = standard_noise(torch.Size([200_000]), "laplace", torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_laplace_noise_of_log1p_outputs_is_gaussian_with_the_laplace_spread():
    """Laplace noise mapped back by expm1 has no mean once its scale reaches 1 in log units; log1p outputs of a Laplace
    model draw Gaussian noise of the same standard deviation instead."""
    surrogate = BNNSurrogate(4, ("tc", "energy"), ("log1p", "none"), ModelConfig(likelihood="laplace"))
    noise = predictive_noise(
        torch.Size([100_000, 1, 2]), surrogate.config.likelihood, surrogate.transforms, torch.Generator().manual_seed(0)
    )
    for j, kurtosis in ((0, 3.0), (1, 6.0)):  # Gaussian, Laplace
        column = noise[:, 0, j].double()
        assert abs(float(column.std()) - math.sqrt(2)) < 0.03
        assert abs(float((column**4).mean() / column.var() ** 2) - kurtosis) < 0.3


def test_laplace_model_predicts_the_median_under_outliers_and_covers_its_noise():
    """One row in ten is an outlier 3 above the curve (like a composition whose duplicate was measured far off): a
    Laplace likelihood's point prediction stays on the curve (the median), and the recalibrated intervals cover."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, size=(1500, 1)).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.1 * rng.laplace(size=1500) + 3.0 * (rng.uniform(size=1500) < 0.1))[:, None]
    errors = {}
    for likelihood in ("gaussian", "laplace"):
        config = ModelConfig(
            hidden=(32, 32), epochs=100, min_steps=600, max_steps=1500, ensemble_size=2, likelihood=likelihood,
            validation_metric="mae",
        )  # fmt: skip
        surrogate = BNNSurrogate(1, ("y",), ("none",), config)
        surrogate.fit(x[:1000], y[:1000], seed=0)
        draws = surrogate.predictive_draws(x[1000:], 400, seed=1).numpy()[:, :, 0]
        errors[likelihood] = np.abs(np.median(draws, axis=0) - np.sin(x[1000:, 0])).mean()
        low, high = np.quantile(draws, [0.05, 0.95], axis=0)
        coverage = ((y[1000:, 0] >= low) & (y[1000:, 0] <= high)).mean()
        assert abs(coverage - 0.9) < 0.05, (likelihood, coverage)
    assert errors["laplace"] < 0.1 and errors["laplace"] < errors["gaussian"], errors


def test_fit_rejects_bad_inputs():
    x, y = _data(20)
    surrogate = BNNSurrogate(4, ("a", "b"), ("log1p", "none"), SMALL)
    with pytest.raises(ValueError, match="negative"):
        surrogate.fit(x, y - 10, seed=0)
    y[:, 1] = np.nan
    with pytest.raises(ValueError, match="no observed value"):
        surrogate.fit(x, y, seed=0)
    with pytest.raises(ValueError, match="features"):
        surrogate.fit(x[:, :3], y, seed=0)
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        surrogate.fit(x, np.abs(y), seed=0)


def _first_layer_means(surrogate: BNNSurrogate) -> torch.Tensor:
    return torch.stack([member.layers[0].weight_mu.detach() for member in surrogate.members])


def test_warm_start_continues_from_the_given_model_for_its_step_budget(trained):
    x, y = _data()
    y[::2, 1] = np.nan  # the rows `trained` was fitted on, so the scalers are the same
    config = SMALL.model_copy(update={"warm_start_steps": 3, "learning_rate": 1e-7})
    warm = BNNSurrogate(4, ("a", "b"), ("log1p", "none"), config)
    report = warm.fit(x, y, seed=5, warm_start=trained)
    assert report.warm_started and report.steps == 3 * config.ensemble_size
    assert torch.allclose(_first_layer_means(warm), _first_layer_means(trained), atol=1e-5)
    assert torch.allclose(warm.raw_noise.detach(), trained.raw_noise.detach(), atol=1e-5)
    cold = BNNSurrogate(4, ("a", "b"), ("log1p", "none"), config)
    assert not cold.fit(x, y, seed=5).warm_started
    assert not torch.allclose(_first_layer_means(cold), _first_layer_means(trained), atol=1e-2)


def test_warm_start_keep_shrinks_the_previous_means_towards_a_fresh_start_and_resets_the_spreads(trained):
    x, y = _data()
    y[::2, 1] = np.nan
    config = SMALL.model_copy(update={"warm_start_steps": 1, "warm_start_keep": 0.25, "learning_rate": 1e-7})
    shrunk = BNNSurrogate(4, ("a", "b"), ("log1p", "none"), config)
    shrunk.fit(x, y, seed=5, warm_start=trained)
    fresh = BNNSurrogate(4, ("a", "b"), ("log1p", "none"), config)
    generator = torch.Generator().manual_seed(5)  # the fit's generator: the members' initialisation draws come first
    for net in fresh.members:
        net.reset_parameters(generator)
    expected = 0.25 * _first_layer_means(trained) + 0.75 * _first_layer_means(fresh)
    assert torch.allclose(_first_layer_means(shrunk), expected, atol=1e-5)
    spreads = torch.stack([member.layers[0].weight_rho.detach() for member in shrunk.members])
    initial = torch.stack([member.layers[0].weight_rho.detach() for member in fresh.members])
    assert torch.allclose(spreads, initial, atol=1e-5)


def test_warm_start_is_ignored_when_off_and_refused_across_architectures(trained):
    x, y = _data()
    off = SMALL
    assert not BNNSurrogate(4, ("a", "b"), ("log1p", "none"), off).fit(x, y, seed=5, warm_start=trained).warm_started
    narrower = BNNSurrogate(
        4, ("a", "b"), ("log1p", "none"), off.model_copy(update={"hidden": (8, 8), "warm_start_steps": 3})
    )
    assert not narrower.continues(trained)
    with pytest.raises(ValueError, match="warm_start"):
        narrower.fit(x, y, seed=5, warm_start=trained)
    gaussian = BNNSurrogate(4, ("a", "b"), ("log1p", "none"), off.model_copy(update={"likelihood": "gaussian"}))
    assert not gaussian.continues(trained)


def test_missing_descriptors_are_imputed_with_the_fitting_mean():
    x, y = _data()
    x[::3, 3] = np.nan  # a descriptor measured for two rows in three
    x[:, 2] = np.nan  # and one measured for none
    surrogate = BNNSurrogate(4, ("a", "b"), ("log1p", "none"), SMALL)
    surrogate.fit(x, y, seed=1)
    assert surrogate.x_mean[3].item() == pytest.approx(float(np.nanmean(x[:, 3])), abs=1e-5)
    assert surrogate.x_std[3].item() == pytest.approx(float(np.nanstd(x[:, 3], ddof=1)), rel=1e-4)
    assert (surrogate.x_mean[2].item(), surrogate.x_std[2].item()) == (0.0, 1.0)
    missing = x[:5].copy()
    missing[:, 3] = np.nan
    imputed = missing.copy()
    imputed[:, 2] = 0.0
    imputed[:, 3] = surrogate.x_mean[3].item()
    draws = surrogate.predictive_draws(missing, 50, seed=4)
    assert torch.isfinite(draws).all()
    assert torch.allclose(draws, surrogate.predictive_draws(imputed, 50, seed=4))
    assert not torch.allclose(draws, surrogate.predictive_draws(x[:5], 50, seed=4))


def test_cross_fitted_members_train_on_every_row_and_hold_out_whole_groups():
    groups = np.repeat(np.arange(40), 5)
    observed = np.ones((200, 1), dtype=bool)
    held = cross_fit_folds(200, observed, 5, seed=0, groups=groups)
    assert len(held) == 5 and sorted(np.concatenate(held).tolist()) == list(range(200))  # each row held out once
    for rows in held:
        training_rows = np.setdiff1d(np.arange(200), rows)
        assert set(groups[training_rows]).isdisjoint(groups[rows])
    assert cross_fit_folds(200, observed, 1, seed=0, groups=None) is None  # one member: nothing to hold out
    assert cross_fit_folds(10, observed[:10], 3, seed=0, groups=np.zeros(10)) is None  # one group: one fold
    sparse = np.zeros((10, 2), dtype=bool)
    sparse[:, 0], sparse[0, 1] = True, True  # the second output observed once: a member would never see it
    assert cross_fit_folds(10, sparse, 2, seed=0, groups=None) is None


def test_cross_validation_folds_partition_rows_and_keep_groups_whole():
    folds = cross_validation_folds(23, 5, seed=0)
    assert len(folds) == 5 and sorted(np.concatenate(folds).tolist()) == list(range(23))
    assert {len(fold) for fold in folds} <= {4, 5}
    assert all((a == b).all() for a, b in zip(folds, cross_validation_folds(23, 5, seed=0), strict=True))
    groups = np.repeat(np.arange(7), 3)
    grouped = cross_validation_folds(21, 5, seed=1, groups=groups)
    assert sorted(np.concatenate(grouped).tolist()) == list(range(21))
    assert all(len(set(groups[a]) & set(groups[b])) == 0 for i, a in enumerate(grouped) for b in grouped[i + 1 :])
    assert len(cross_validation_folds(9, 5, seed=0, groups=np.repeat(np.arange(3), 3))) == 3


def test_held_out_split_is_a_seeded_permutation_or_whole_groups():
    test, train = held_out_split(20, 0.25, seed=3)
    order = np.random.default_rng(3).permutation(20)
    assert (test == order[:5]).all() and (train == order[5:]).all()
    groups = np.repeat(np.array(["a", "b", "c", "d", "e", "f", "g", "h"]), [1, 2, 2, 3, 2, 2, 1, 2])
    test, train = held_out_split(len(groups), 0.25, seed=3, groups=groups)
    assert len(set(groups[test])) == 2 and not set(groups[test]) & set(groups[train])
    assert sorted([*test, *train]) == list(range(len(groups)))
    assert len(held_out_split(len(groups), 0.0, seed=3, groups=groups)[0]) == 0


def test_small_training_sets_get_honest_intervals_before_and_after_recalibration():
    """80 rows, every one of them trains the ensemble. The held-out noise level alone makes the posterior's intervals
    cover (a mean-field posterior's own noise, fitted to the training rows, covered 65% at 95% when this was measured
    on a validation-free fit); recalibration on the out-of-fold errors only fine-tunes them."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2080, 5)).astype(np.float32)
    y = (np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + x[:, 2] * x[:, 3] + 0.3 * rng.normal(size=2080))[:, None]
    coverage, functions = {}, {}
    for recalibrated in (False, True):
        config = ModelConfig(hidden=(32, 32), min_steps=600, ensemble_size=3, recalibrate=recalibrated)
        surrogate = BNNSurrogate(5, ("y",), ("none",), config)
        report = surrogate.fit(x[:80], y[:80], seed=0)
        assert report.n_train == report.n_held_out == 80 and report.n_calibration == (80 if recalibrated else 0)
        assert report.noise_shift[0] > 0  # the noise fitted to the training rows was too small
        draws = surrogate.predictive_draws(x[80:], 400, seed=1).numpy()[:, :, 0]
        for level in (0.5, 0.8, 0.95):
            low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
            coverage[recalibrated, level] = ((y[80:, 0] >= low) & (y[80:, 0] <= high)).mean()
        functions[recalibrated] = surrogate.function_draws(x[80:], 64, seed=2)
    assert coverage[False, 0.95] >= 0.8, coverage
    for level in (0.5, 0.8, 0.95):  # the mixture of members over-covers a little: the errors are single members'
        assert abs(coverage[True, level] - level) <= min(0.1, abs(coverage[False, level] - level)), coverage
    # recalibration only widens the intervals: the trained model and the draws acquisition sees are the same
    torch.testing.assert_close(functions[True], functions[False])


def test_finite_sample_coverage_is_the_split_conformal_quantile():
    needed = finite_sample_coverage(np.array([0.5, 0.8, 0.95]), 30)
    np.testing.assert_allclose(needed, [16 / 30, 25 / 30, 1.0])  # ceil(level x 31), at most all 30
    assert finite_sample_coverage(np.array([0.95]), 1999)[0] == pytest.approx(1900 / 1999)  # large sets: ~ the level


def test_per_level_factors_cover_the_share_of_a_small_held_out_set_that_a_new_point_needs():
    """40 held-out errors of a well-calibrated model: matched at the level itself the 95% interval covers 38 of them
    (about 0.93 of new points expected); it must cover 39 (ceil(0.95 x 41)). The level-weighted smoothing keeps the
    noisy factors of the central levels (a few errors each) from dragging the 95% factor down, as they did."""
    from scipy.stats import norm

    levels = np.asarray(CALIBRATION_LEVELS)
    offset = np.random.default_rng(0).normal(size=40)
    half = norm.ppf((1 + levels) / 2)[:, None] * np.ones((1, 40))  # L x n: unit-Gaussian central bounds
    surrogate = BNNSurrogate(1, ("y",), ("none",), SMALL)
    assert recalibrate(surrogate, [[HeldOutErrors(offset, -half, half)]]) == 40
    stretch = 1 + float(surrogate.spread_offset[0]) / half[CALIBRATION_LEVELS.index(0.5), 0]
    factors = surrogate.tail_factor[0].numpy().astype(np.float64) * stretch
    covered = (np.abs(offset)[None, :] <= factors[:, None] * half).sum(axis=1)  # L
    assert covered[-1] >= 39, covered


def test_no_recalibration_on_fewer_errors_than_a_95_percent_interval_may_leave_out():
    """Below 39 held-out errors the conformal 95% count is all of them (its factor is the largest error): such an
    output keeps the spread of its held-out noise level, and the fit reports no recalibration."""
    assert MIN_CALIBRATION_ROWS == 39
    assert conformal_count(np.asarray(0.95), 38) == 38 and conformal_count(np.asarray(0.95), 39) == 38
    torch.set_num_threads(1)
    x, y = _data(60)
    for rows, recalibrated in ((38, False), (39, True)):
        surrogate = BNNSurrogate(4, ("a", "b"), ("none", "none"), SMALL)
        report = surrogate.fit(x[:rows], y[:rows], seed=0)
        assert report.n_held_out == 2 * rows and report.n_calibration == (2 * rows if recalibrated else 0)
        untouched = bool(
            (surrogate.tail_factor == 1.0).all()
            and (surrogate.spread_offset == 0.0).all()
            and (surrogate.conformal_template == 0.0).all()
        )
        assert untouched != recalibrated and (report.interval_factor_95 == (1.0, 1.0)) != recalibrated
        assert any(shift != 0 for shift in report.noise_shift)  # the held-out noise level still applies


def test_cross_validated_recalibration_skips_outputs_without_enough_held_out_values():
    torch.set_num_threads(1)
    x, y = _data(60)
    y[6:, 1] = np.nan  # second target measured for 6 rows: too few held-out values to recalibrate it
    surrogate = BNNSurrogate(4, ("a", "b"), ("none", "none"), SMALL)
    report = surrogate.fit(x, y, seed=0)
    assert report.n_calibration == 60
    assert report.interval_factor_95[1] == 1.0 and (surrogate.tail_factor[1] == 1.0).all()
    assert float(surrogate.spread_offset[1]) == 0.0 and float(surrogate.conformal_template[1, -1]) == 0.0
    assert float(surrogate.conformal_skew[1]) == 1.0
    assert not (surrogate.tail_factor[0] == 1.0).all() or float(surrogate.conformal_template[0, -1]) > 0
    tiny = BNNSurrogate(4, ("a", "b"), ("none", "none"), SMALL)
    assert tiny.fit(x[:8], y[:8], seed=0).n_calibration == 0  # 8 rows: too few to recalibrate on
    assert (tiny.tail_factor == 1.0).all() and (tiny.spread_offset == 0.0).all()


def test_coverage_on_synthetic_data_with_known_noise():
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, size=(900, 1)).astype(np.float32)
    noise_std = 0.1 + 0.2 * (x[:, 0] > 0)  # heteroscedastic, known
    y = (np.sin(x[:, 0]) + rng.normal(size=900) * noise_std)[:, None]
    config = ModelConfig(hidden=(32, 32), epochs=100, min_steps=600, max_steps=1500, ensemble_size=2)
    surrogate = BNNSurrogate(1, ("y",), ("none",), config)
    report = surrogate.fit(x[:600], y[:600], seed=0)
    assert report.n_train == report.n_held_out == 600  # every row trains a member and is predicted by the other
    draws = surrogate.predictive_draws(x[600:], 400, seed=1).numpy()[:, :, 0]
    low, high = np.quantile(draws, [0.025, 0.975], axis=0)
    coverage = ((y[600:, 0] >= low) & (y[600:, 0] <= high)).mean()
    assert 0.9 <= coverage <= 0.99
    assert np.abs(np.median(draws, axis=0) - np.sin(x[600:, 0])).mean() < 0.1


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
def test_tail_recalibration_covers_heavy_tailed_noise_at_every_level(likelihood):
    """Student-t noise (3 dof) has heavier tails than any Gaussian draw: one spread factor cannot cover both the
    middle and the 95% level, the per-level tail factors must (rising ones, for Gaussian draws)."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(2)
    x = rng.uniform(-3, 3, size=(5000, 1)).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.2 * rng.standard_t(3, size=5000))[:, None]
    config = ModelConfig(
        hidden=(32, 32), min_steps=600, max_steps=1500, ensemble_size=2, noise="homoscedastic", likelihood=likelihood
    )
    surrogate = BNNSurrogate(1, ("y",), ("none",), config)
    surrogate.fit(x[:3000], y[:3000], seed=0)
    factors = surrogate.tail_factor[0].numpy()
    if likelihood == "gaussian":
        assert (np.diff(factors) >= 0).all() and factors[-1] > 1.2 * factors[0], factors  # tails widened most
    draws = surrogate.predictive_draws(x[3000:], 400, seed=1).numpy()[:, :, 0]
    for level in (0.2, 0.5, 0.8, 0.95):
        low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        coverage = ((y[3000:, 0] >= low) & (y[3000:, 0] <= high)).mean()
        assert abs(coverage - level) < 0.04, (level, coverage)
    tailed = surrogate.predictive_draws(x[3000:3001], 50, seed=3).numpy()[:, 0, 0]
    surrogate.tail_factor.fill_(1.0)
    plain = surrogate.predictive_draws(x[3000:3001], 50, seed=3).numpy()[:, 0, 0]
    assert (np.argsort(tailed) == np.argsort(plain)).all()  # the map of the draws is monotone
    if likelihood == "gaussian":  # the far draws moved out relative to the central ones

        def tail_ratio(draws: np.ndarray) -> float:
            return float(np.ptp(draws) / np.subtract(*np.quantile(draws, [0.75, 0.25])))

        assert tail_ratio(tailed) > tail_ratio(plain)


def test_checkpoint_round_trip(trained, tmp_path):
    x, _ = _data(9, seed=2)
    save_surrogate(trained, tmp_path / "ckpt", feature_names=["a", "b", "c"])
    loaded = load_surrogate(tmp_path / "ckpt")
    assert loaded.target_names == trained.target_names and loaded.config == trained.config
    assert torch.equal(loaded.predictive_draws(x, 8, seed=0), trained.predictive_draws(x, 8, seed=0))
    assert read_metadata(tmp_path / "ckpt")["feature_names"] == ["a", "b", "c"]
    assert read_metadata(tmp_path / "ckpt")["training_rows"] == loaded.n_train_rows == 120  # every row it was given
    metadata = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    metadata["version"] = 1  # checkpoints of the single-network model cannot be loaded into this one
    (tmp_path / "ckpt" / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="version 1"):
        load_surrogate(tmp_path / "ckpt")


def test_checkpoint_of_the_validation_split_model_still_loads(trained, tmp_path):
    """Version 4 configs name settings that no longer exist (a validation share, out-of-fold calibration models)."""
    save_surrogate(trained, tmp_path / "ckpt")
    metadata = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    metadata["version"] = 4
    metadata["config"].update(validation_fraction=0.15, min_validation_rows=30, calibration_folds=5)
    del metadata["training_rows"]
    (tmp_path / "ckpt" / "metadata.json").write_text(json.dumps(metadata))
    loaded = load_surrogate(tmp_path / "ckpt")
    assert loaded.config == trained.config and loaded.n_train_rows is None
    x = _data(5)[0]
    assert torch.equal(loaded.predictive_draws(x, 4, seed=0), trained.predictive_draws(x, 4, seed=0))


def test_checkpoint_written_before_the_likelihood_setting_loads_as_gaussian(trained, tmp_path):
    assert trained.config.likelihood == "laplace"  # today's default
    save_surrogate(trained, tmp_path / "ckpt")
    metadata = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    metadata["version"] = 3
    del metadata["config"]["likelihood"]
    (tmp_path / "ckpt" / "metadata.json").write_text(json.dumps(metadata))
    loaded = load_surrogate(tmp_path / "ckpt")
    assert loaded.config.likelihood == "gaussian"  # what its noise heads meant when it was written
    assert torch.equal(loaded.function_draws(_data(5)[0], 4, seed=0), trained.function_draws(_data(5)[0], 4, seed=0))


def test_botorch_model_supports_mc_acquisition(trained):
    model = BNNModel(trained, n_draws=16, seed=0)
    x = torch.as_tensor(_data(10, seed=3)[0], dtype=torch.float64)
    posterior = model.posterior(x.unsqueeze(1))
    assert posterior.mean.shape == (10, 1, 2)
    acquisition = qUpperConfidenceBound(model, beta=2.0, posterior_transform=None, objective=_first_output)
    assert acquisition(x.unsqueeze(1)).shape == (10,)


def _first_output(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
    return samples[..., 0]


def test_spread_offset_evens_out_intervals_when_the_model_spread_says_nothing_about_the_errors():
    """Errors of one scale, but spreads that vary 100-fold at random: scaling every interval by one factor must make
    the wide ones huge to cover the narrow ones' misses; an offset narrows the intervals at the same coverage."""
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    levels = np.asarray(CALIBRATION_LEVELS)
    offset = rng.normal(size=60)
    spread = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=60))  # uninformative about |offset|
    half = norm.ppf((1 + levels) / 2)[:, None] * spread[None, :]  # L x n
    surrogate = BNNSurrogate(1, ("y",), ("none",), SMALL)
    recalibrate(surrogate, [[HeldOutErrors(offset, -half, half)]])
    gamma = float(surrogate.spread_offset[0])
    assert gamma > 0
    row_spread = half[CALIBRATION_LEVELS.index(0.5)]
    width = 2 * float(surrogate.tail_factor[0, -1]) * (row_spread + gamma) / row_spread * half[-1]
    assert (np.abs(offset) <= width / 2 + 1e-9).sum() >= 58  # ceil(0.95 x 61) of 60
    smallest_uniform = np.sort(np.abs(offset) / half[-1])[57] * 2 * half[-1]  # one factor covering 58 of 60
    assert width.mean() < 0.5 * smallest_uniform.mean()

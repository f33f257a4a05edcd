"""Recalibration onto a conformal shape: each row's interval is ``median ± (s + gamma) T(level)``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sbin_loop.model.calibration import CALIBRATION_LEVELS, HeldOutErrors, row_spread, tail_calibrated
from sbin_loop.model.checkpoint import load_surrogate, save_surrogate
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.conformal_fit import conformal_template, fit_conformal_shape, shaped_errors, widest_width
from sbin_loop.model.recalibration import calibrate_on_draws, mapped_draws, out_of_fold_errors
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.model.training import FitData

LEVELS = np.asarray(CALIBRATION_LEVELS)
FAST = {"hidden": (8,), "min_steps": 100, "max_steps": 200, "ensemble_size": 2}


def _gaussian_bounds(spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``L x n`` central bounds of Gaussian draws whose central 50% interval has half-width ``spread``."""
    from scipy.stats import norm

    half = norm.ppf((1 + LEVELS) / 2)[:, None] / norm.ppf(0.75) * spread[None, :]
    return -half, half


def test_the_template_covers_the_conformal_share_of_normalised_errors_at_every_level():
    rng = np.random.default_rng(0)
    spread = np.exp(rng.uniform(-1, 1, size=80))
    offset = rng.normal(size=80) * spread
    lower, upper = _gaussian_bounds(spread)
    errors = HeldOutErrors(offset, lower, upper)
    template = conformal_template(errors, gamma=0.5)
    width = widest_width(shaped_errors(errors, template, 0.5, 1.0))
    assert (np.diff(template) >= 0).all()
    reach = (row_spread(lower, upper) + 0.5)[None, :] * template[:, None]  # L x n
    covered = (np.abs(offset)[None, :] <= reach + 1e-9).sum(axis=1)
    needed = np.minimum(np.ceil(LEVELS * 81 - 1e-9), 80)
    assert (covered >= needed).all(), (covered, needed)
    short = (np.abs(offset)[None, :] <= reach * (1 - 1e-6)).sum(axis=1)
    assert (short < needed).all()  # the smallest template that covers: any narrower misses
    assert width == pytest.approx(2 * reach[-1].mean())


def test_a_measurement_at_the_floor_needs_no_width_where_the_median_lies_below_it():
    offset = np.array([0.3, -1.0, 2.0])  # row 0: observed at the floor, median 0.3 below it
    lower, upper = _gaussian_bounds(np.ones(3))
    errors = HeldOutErrors(offset, lower, upper, floor=np.array([0.3, -5.0, -5.0]))
    template = conformal_template(errors, gamma=0.0)
    assert template[0] == 0.0  # the 5% level covers ceil(0.05 x 4) = 1 row: row 0, at no width
    assert template[-1] == pytest.approx(2.0 / row_spread(lower, upper)[2])


def test_the_narrowest_offset_is_chosen_when_spreads_say_nothing_about_the_errors():
    rng = np.random.default_rng(1)
    spread = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=60))
    lower, upper = _gaussian_bounds(spread)
    errors = HeldOutErrors(rng.normal(size=60), lower, upper)
    _, gamma, _, width = fit_conformal_shape(errors)
    assert gamma > 0
    at_zero = conformal_template(errors, 0.0)
    assert width < widest_width(shaped_errors(errors, at_zero, 0.0, 1.0))


def test_draws_land_on_the_template_on_their_own_side_of_the_median_in_their_own_order():
    rng = np.random.default_rng(2)
    draws = torch.as_tensor(rng.normal(size=(2000, 3, 1)), dtype=torch.float32)
    draws[:400, 1] += 6.0  # row 1: a second mode far above (members that disagree): a long upper tail
    draws[:, 2] *= 3.0
    template = torch.as_tensor(np.linspace(0.1, 2.0, len(LEVELS)), dtype=torch.float32)[None, :]
    gamma = torch.tensor([0.5])
    mapped = tail_calibrated(draws, torch.ones(1, len(LEVELS)), gamma, template)
    assert torch.equal(mapped.argsort(dim=0), draws.argsort(dim=0))
    centre = draws.median(dim=0).values[:, 0]
    quartiles = torch.quantile(draws[:, :, 0], torch.tensor([0.25, 0.75]), dim=0)
    spread = (quartiles[1] - quartiles[0]) / 2
    for k in (CALIBRATION_LEVELS.index(0.5), len(LEVELS) - 1):
        level = CALIBRATION_LEVELS[k]
        low, high = torch.quantile(mapped[:, :, 0], torch.tensor([(1 - level) / 2, (1 + level) / 2]), dim=0)
        expected = (spread + 0.5) * template[0, k]
        torch.testing.assert_close(high - centre, expected, rtol=0.02, atol=0.02)
        torch.testing.assert_close(centre - low, expected, rtol=0.02, atol=0.02)  # symmetric, row 1's tail too
    beyond = mapped[:, 1, 0].max() - centre[1]
    assert beyond > (spread[1] + 0.5) * template[0, -1]  # the far draws stay beyond the widest level


def test_an_ensembles_central_spread_is_its_members_own_not_their_disagreement():
    """Two members, each with unit-Gaussian draws, centred 4 apart: the mixture's central half spans the gap, each
    member's does not. The shape was fitted on one member's draws, so it is scaled by the members' own spread."""
    rng = np.random.default_rng(6)
    draws = torch.as_tensor(rng.normal(size=(2000, 1, 1)), dtype=torch.float32)
    draws[1000:] += 4.0
    template = torch.ones(1, len(LEVELS))
    mapped = tail_calibrated(draws, torch.ones(1, len(LEVELS)), torch.zeros(1), template, [1000, 1000])
    low, high = torch.quantile(mapped[:, 0, 0], torch.tensor([0.025, 0.975]))
    assert float(high - low) / 2 == pytest.approx(0.674, rel=0.05)  # one member's central half-width
    whole = tail_calibrated(draws, torch.ones(1, len(LEVELS)), torch.zeros(1), template)
    low, high = torch.quantile(whole[:, 0, 0], torch.tensor([0.025, 0.975]))
    assert float(high - low) / 2 > 1.5  # the mixture's, which spans the members' disagreement


def test_fewer_draws_than_members_still_give_finite_shaped_draws():
    draws = torch.as_tensor(np.random.default_rng(7).normal(size=(3, 4, 1)), dtype=torch.float32)
    template = torch.linspace(0.1, 2.0, len(LEVELS))[None, :]
    mapped = tail_calibrated(draws, torch.ones(1, len(LEVELS)), torch.tensor([0.1]), template, [1, 1, 1, 0, 0])
    assert torch.isfinite(mapped).all()
    assert torch.equal(mapped.argsort(dim=0), draws.argsort(dim=0))


def _members(draws: list[np.ndarray], offsets: np.ndarray) -> tuple[BNNSurrogate, FitData, list[np.ndarray], list]:
    """A surrogate and two members' out-of-fold draws (``S x n_e``) of rows whose targets sit at ``offsets``."""
    n = len(offsets)
    data = FitData(
        torch.zeros(n, 3),
        torch.as_tensor(offsets[:, None], dtype=torch.float32),
        torch.ones(n, 1, dtype=torch.bool),
        torch.zeros(n, 1, dtype=torch.int8),
    )
    held = [np.arange(0, n, 2), np.arange(1, n, 2)]
    tensors = [
        torch.as_tensor(member[:, rows, None], dtype=torch.float32) for member, rows in zip(draws, held, strict=True)
    ]
    return BNNSurrogate(3, ("y",), ("none",), ModelConfig(hidden=(4,), ensemble_size=2)), data, held, tensors


def _mapped_coverage(surrogate: BNNSurrogate, data: FitData, held: list, draws: list) -> int:
    level, covered = CALIBRATION_LEVELS[-1], 0
    for member_draws, rows in zip(draws, held, strict=True):
        mapped = mapped_draws(surrogate, member_draws)
        low, high = torch.quantile(mapped, torch.tensor([(1 - level) / 2, (1 + level) / 2]), dim=0)
        covered += int(((data.y[rows] >= low - 1e-5) & (data.y[rows] <= high + 1e-5)).sum())
    return covered


def test_the_conformal_shape_is_kept_where_rows_long_tails_do_not_match_their_errors():
    """Every row's errors are unit Gaussian, but a third of the rows' draws have a far second mode (members that
    disagree): keeping each row's shape makes those rows' 95% intervals huge; the conformal shape does not."""
    rng = np.random.default_rng(3)
    n, s = 300, 400
    draws = rng.normal(size=(s, n))
    draws[: s // 5, ::3] += 8.0
    surrogate, data, held, tensors = _members([draws, draws], rng.normal(size=n))
    used, factors = calibrate_on_draws(surrogate, data, held, tensors)
    assert used == n
    assert float(surrogate.conformal_template[0, -1]) > 0 and (surrogate.tail_factor == 1.0).all()
    assert _mapped_coverage(surrogate, data, held, tensors) >= int(np.ceil(0.95 * (n + 1)))
    # The reported 95% factor: the median ratio of the new 95% half-width to the draws' own.
    (pooled,) = [HeldOutErrors.pooled([member[0] for member in out_of_fold_errors(surrogate, data, held, tensors)])]
    reach = (row_spread(pooled.lower, pooled.upper) + float(surrogate.spread_offset[0])) * float(
        surrogate.conformal_template[0, -1]
    )
    width = (1 + float(surrogate.conformal_skew[0])) * reach
    assert factors[0] == pytest.approx(float(np.median(width / (pooled.upper[-1] - pooled.lower[-1]))), rel=1e-5)


def test_the_per_level_factors_are_kept_where_each_rows_own_tails_match_its_errors():
    """Half the rows have Gaussian draws and errors, half heavy (Student-t, 2 dof) draws and errors of the same
    central spread: one shape for all must cover the heavy rows' tails on every row; keeping each row's shape does
    not."""
    rng = np.random.default_rng(4)
    n, s = 400, 800
    heavy = np.arange(n) % 2 == 1
    draws = np.where(heavy[None, :], rng.standard_t(2, size=(s, n)) / 0.816, rng.normal(size=(s, n)) / 0.674)
    offsets = np.where(heavy, rng.standard_t(2, size=n) / 0.816, rng.normal(size=n) / 0.674)
    surrogate, data, held, tensors = _members([draws, draws], offsets)
    calibrate_on_draws(surrogate, data, held, tensors)
    assert (surrogate.conformal_template == 0).all()
    assert _mapped_coverage(surrogate, data, held, tensors) >= int(np.ceil(0.95 * (n + 1)))


def _with_template(tmp_path) -> tuple[BNNSurrogate, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, :1] + 0.1 * rng.normal(size=(40, 1))).astype(np.float32)
    surrogate = BNNSurrogate(3, ("y",), ("none",), ModelConfig(**FAST))
    surrogate.fit(x, y, seed=0)
    surrogate.tail_factor.fill_(1.0)
    surrogate.spread_offset.fill_(0.2)
    surrogate.conformal_template.copy_(torch.linspace(0.1, 3.0, len(LEVELS))[None, :])
    save_surrogate(surrogate, tmp_path / "ckpt")
    return surrogate, x


def test_a_checkpoint_keeps_the_conformal_shape(tmp_path):
    surrogate, x = _with_template(tmp_path)
    loaded = load_surrogate(tmp_path / "ckpt")
    assert torch.equal(loaded.conformal_template, surrogate.conformal_template)
    assert torch.equal(loaded.predictive_draws(x, 50, seed=1), surrogate.predictive_draws(x, 50, seed=1))


def downgraded(directory, tensor: str, version: int, setting: str | None = None) -> BNNSurrogate:
    """The checkpoint in ``directory`` rewritten as ``version`` wrote it (without ``tensor`` and the config's
    ``setting``), loaded."""
    weights = load_file(directory / "weights.safetensors")
    del weights[tensor]
    save_file(weights, directory / "weights.safetensors")
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["version"] = version
    if setting is not None:
        del metadata["config"][setting]
    (directory / "metadata.json").write_text(json.dumps(metadata))
    return load_surrogate(directory)


def test_a_version_7_checkpoint_loads_with_the_per_level_factors(tmp_path):
    surrogate, x = _with_template(tmp_path)
    loaded = downgraded(tmp_path / "ckpt", "conformal_template", 7)
    assert (loaded.conformal_template == 0).all()
    surrogate.conformal_template.fill_(0.0)
    assert torch.equal(loaded.predictive_draws(x, 50, seed=1), surrogate.predictive_draws(x, 50, seed=1))

"""A skewed conformal shape (``model.skewed_intervals``): the upper reach is ``skew`` times the lower one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_conformal_shape import FAST, LEVELS, _gaussian_bounds, _mapped_coverage, _members, downgraded

from sbin_loop.model.calibration import HeldOutErrors, conformal_count, row_spread, tail_calibrated
from sbin_loop.model.checkpoint import load_surrogate, save_surrogate
from sbin_loop.model.config import ModelConfig, stored_model_config
from sbin_loop.model.conformal_fit import CONFORMAL_SKEWS, fit_conformal_shape, shaped_errors, width_as_reported
from sbin_loop.model.recalibration import calibrate_on_draws
from sbin_loop.model.surrogate import BNNSurrogate


def _near_the_floor(seed: int, n: int = 200) -> HeldOutErrors:
    """Half the rows' medians sit just above the support's lower end and their values lie far above it (Tc of
    superconductors predicted near 0 K); the other half have unit Gaussian errors and no bound in reach."""
    rng = np.random.default_rng(seed)
    near = np.arange(n) % 2 == 0
    offset = np.where(near, rng.exponential(2.0, size=n) - 0.4, rng.normal(size=n))
    floor = np.where(near, np.minimum(offset, -0.4), -np.inf)
    lower, upper = _gaussian_bounds(np.ones(n))
    return HeldOutErrors(offset, lower, upper, floor=floor)


def _covered(errors: HeldOutErrors, template: np.ndarray, gamma: float, skew: float) -> np.ndarray:
    """``L``: held-out rows inside each level's shaped interval, its lower end clamped to the floor."""
    reach = (row_spread(errors.lower, errors.upper) + gamma)[None, :] * template[:, None]  # L x n
    low = np.maximum(errors.floor, -reach)
    return ((errors.offset >= low - 1e-9) & (errors.offset <= skew * reach + 1e-9)).sum(axis=1)


def test_a_skewed_shape_is_narrower_where_the_lower_end_is_clamped_and_covers_the_same_share():
    errors = _near_the_floor(0)
    symmetric, symmetric_gamma, one, _ = fit_conformal_shape(errors)
    template, gamma, skew, width = fit_conformal_shape(errors, CONFORMAL_SKEWS)
    assert one == 1.0
    assert skew > 1.0  # the upper side reaches further
    assert width == pytest.approx(width_as_reported(shaped_errors(errors, template, gamma, skew)))
    assert width < 0.9 * width_as_reported(shaped_errors(errors, symmetric, symmetric_gamma, 1.0))
    needed = conformal_count(LEVELS, len(errors.offset))
    assert (_covered(errors, template, gamma, skew) >= needed).all()
    assert (np.diff(template) >= 0).all()


def test_skewed_draws_reach_skew_times_as_far_above_the_median_as_below():
    rng = np.random.default_rng(1)
    draws = torch.as_tensor(rng.normal(size=(4000, 2, 1)), dtype=torch.float32)
    template = torch.linspace(0.1, 2.0, len(LEVELS))[None, :]
    mapped = tail_calibrated(draws, torch.ones(1, len(LEVELS)), torch.zeros(1), template, None, torch.tensor([2.5]))
    assert torch.equal(mapped.argsort(dim=0), draws.argsort(dim=0))
    centre = mapped.median(dim=0).values[:, 0]
    low, high = torch.quantile(mapped[:, :, 0], torch.tensor([0.025, 0.975]), dim=0)
    torch.testing.assert_close((high - centre) / (centre - low), torch.full((2,), 2.5), rtol=0.03, atol=0.0)


def test_recalibration_keeps_a_skewed_shape_for_skewed_errors_and_covers_the_conformal_share():
    """Right-skewed errors, and a third of the rows' draws with a far second mode (so the conformal shape is kept,
    as in ``test_conformal_shape``): the skewed shape is narrower than the symmetric one at the same conformal
    coverage of the out-of-fold rows, as prediction maps their draws."""
    rng = np.random.default_rng(2)
    n, s = 300, 400
    draws = rng.normal(size=(s, n))
    draws[: s // 5, ::3] += 8.0
    offsets = rng.exponential(1.5, size=n) - 1.0
    widths = {}
    for skewed in (False, True):
        surrogate, data, held, tensors = _members([draws, draws], offsets)
        surrogate.config = ModelConfig(hidden=(4,), ensemble_size=2, skewed_intervals=skewed)
        calibrate_on_draws(surrogate, data, held, tensors)
        assert float(surrogate.conformal_template[0, -1]) > 0
        assert _mapped_coverage(surrogate, data, held, tensors) >= int(np.ceil(0.95 * (n + 1)))
        skew = float(surrogate.conformal_skew[0])
        assert (skew > 1.0) if skewed else (skew == 1.0)
        widths[skewed] = (1 + skew) * float(surrogate.conformal_template[0, -1])
    assert widths[True] < 0.95 * widths[False]


def test_a_fit_with_the_setting_off_keeps_the_shape_symmetric():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = np.abs(x[:, :1] + rng.exponential(1.0, size=(60, 1))).astype(np.float32)
    surrogate = BNNSurrogate(3, ("y",), ("none",), ModelConfig(**FAST, skewed_intervals=False), ((0.0, None),))
    surrogate.fit(x, y, seed=0)
    assert (surrogate.conformal_skew == 1.0).all()
    assert ModelConfig().skewed_intervals


def _skewed_checkpoint(tmp_path) -> tuple[BNNSurrogate, np.ndarray]:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, :1] + 0.1 * rng.normal(size=(40, 1))).astype(np.float32)
    surrogate = BNNSurrogate(3, ("y",), ("none",), ModelConfig(**FAST, skewed_intervals=True))
    surrogate.fit(x, y, seed=0)
    surrogate.tail_factor.fill_(1.0)
    surrogate.spread_offset.fill_(0.2)
    surrogate.conformal_template.copy_(torch.linspace(0.1, 3.0, len(LEVELS))[None, :])
    surrogate.conformal_skew.fill_(1.8)
    save_surrogate(surrogate, tmp_path / "ckpt")
    return surrogate, x


def test_a_checkpoint_keeps_the_skew_and_the_setting(tmp_path):
    surrogate, x = _skewed_checkpoint(tmp_path)
    loaded = load_surrogate(tmp_path / "ckpt")
    assert float(loaded.conformal_skew[0]) == pytest.approx(1.8)
    assert loaded.config.skewed_intervals
    assert torch.equal(loaded.predictive_draws(x, 50, seed=1), surrogate.predictive_draws(x, 50, seed=1))


def test_a_version_10_checkpoint_loads_with_a_symmetric_shape(tmp_path):
    surrogate, x = _skewed_checkpoint(tmp_path)
    loaded = downgraded(tmp_path / "ckpt", "conformal_skew", 10, "skewed_intervals")
    assert (loaded.conformal_skew == 1.0).all()
    assert not loaded.config.skewed_intervals
    surrogate.conformal_skew.fill_(1.0)
    assert torch.equal(loaded.predictive_draws(x, 50, seed=1), surrogate.predictive_draws(x, 50, seed=1))
    assert not stored_model_config({})["skewed_intervals"]

"""Physical support: a bounded quantity's draws, means, intervals and acquisition values never leave its bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.checkpoint import load_surrogate, save_surrogate
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.intervals import candidate_intervals
from sbin_loop.model.likelihood import log_cdf, masked_nll
from sbin_loop.model.surrogate import BNNSurrogate, ModelOutputError

SMALL = ModelConfig(hidden=(16, 16), epochs=20, min_steps=200, max_steps=300, ensemble_size=2)


def _zero_heavy(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and a non-negative target that is exactly 0 on about a third of the rows (like Tc = 0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = np.maximum(0.0, 20 * x[:, 0] + 5 * rng.normal(size=n) + 8).astype(np.float32)
    return x, y[:, None]


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
def test_censored_terms_are_the_mass_beyond_the_bound(likelihood: str) -> None:
    mean = torch.tensor([[[0.3], [-1.2], [2.0]]])  # 1 x 3 x 1
    scale = torch.tensor([[[0.5], [0.8], [1.5]]])
    target = torch.tensor([[0.0], [0.0], [1.0]])
    mask = torch.ones(3, 1, dtype=torch.bool)
    censored = torch.tensor([[-1], [-1], [1]], dtype=torch.int8)
    cdf = stats.norm.cdf if likelihood == "gaussian" else stats.laplace.cdf
    u = ((target.flatten() - mean.flatten()) / scale.flatten()).numpy()
    expected = -np.mean([math.log(cdf(u[0])), math.log(cdf(u[1])), math.log(1 - cdf(u[2]))])
    got = masked_nll(mean, scale, target, mask, likelihood, censored=censored)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # Far in the tails the log-CDF stays finite and close to the analytic asymptote.
    assert torch.isfinite(log_cdf(torch.tensor([-60.0, 60.0]), likelihood)).all()


@pytest.mark.parametrize("transform", ["none", "log1p"])
@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
def test_every_draw_and_interval_respects_the_support(transform: str, likelihood: str) -> None:
    x, y = _zero_heavy()
    bounds = (0.0, 60.0)
    surrogate = BNNSurrogate(3, ("tc",), (transform,), SMALL.model_copy(update={"likelihood": likelihood}), (bounds,))
    surrogate.fit(x, np.minimum(y, 60.0), seed=1)
    far = np.concatenate([x, 40 * x])  # inputs far outside the training data extrapolate wildly
    for draws in (surrogate.function_draws(far, 64, seed=2), surrogate.predictive_draws(far, 400, seed=3)):
        assert torch.isfinite(draws).all()
        assert float(draws.min()) >= 0.0 and float(draws.max()) <= 60.0
    predictive = surrogate.predictive_draws(far, 400, seed=3).numpy()[..., 0]
    for interval in candidate_intervals(predictive, 0.95, bounds):
        values = interval.model_dump(exclude={"n_draws", "level"}).values()
        assert all(0.0 <= value <= 60.0 for value in values if value is not None)
    # The censored model puts mass exactly at the bound where it expects "no transition".
    assert (predictive == 0.0).mean() > 0.05


def test_lower_bound_only_keeps_intervals_non_negative_where_unbounded_goes_below() -> None:
    x, y = _zero_heavy(seed=4)
    unbounded = BNNSurrogate(3, ("tc",), ("none",), SMALL)
    unbounded.fit(x, y, seed=0)
    bounded = BNNSurrogate(3, ("tc",), ("none",), SMALL, ((0.0, None),))
    bounded.fit(x, y, seed=0)
    assert bounded.bounds == ((0.0, None),)
    free = unbounded.predictive_draws(x, 300, seed=1).numpy()[..., 0]
    kept = bounded.predictive_draws(x, 300, seed=1).numpy()[..., 0]
    assert np.quantile(free, 0.025, axis=0).min() < 0  # the test could fail: without bounds it does go below 0
    assert kept.min() >= 0.0
    assert min(interval.lower for interval in candidate_intervals(kept, 0.95, (0.0, None))) >= 0.0


def test_acquisition_values_come_from_draws_inside_the_support() -> None:
    x, y = _zero_heavy(seed=5)
    surrogate = BNNSurrogate(3, ("tc",), ("none",), SMALL, ((0.0, None),))
    surrogate.fit(x, y, seed=0)
    model = BNNModel(surrogate, n_draws=32, seed=0)
    values = model.forward(torch.as_tensor(-30 * x[None, :20], dtype=torch.float64))  # 1 x S x 20 x 1
    assert values.shape == (1, 32, 20, 1)
    assert float(values.min()) >= 0.0


def test_targets_outside_the_support_are_refused() -> None:
    x, y = _zero_heavy()
    surrogate = BNNSurrogate(3, ("tc",), ("none",), SMALL, ((0.0, None),))
    with pytest.raises(ValueError, match="outside its bounds"):
        surrogate.fit(x, y - 5.0, seed=0)
    with pytest.raises(ValueError, match="infinite"):
        surrogate.fit(x, np.full_like(y, 1e39), seed=0)


def test_bounds_survive_a_checkpoint(tmp_path) -> None:
    x, y = _zero_heavy()
    surrogate = BNNSurrogate(3, ("tc",), ("none",), SMALL, ((0.0, 80.0),))
    surrogate.fit(x, y, seed=0)
    save_surrogate(surrogate, tmp_path / "ckpt")
    loaded = load_surrogate(tmp_path / "ckpt")
    assert loaded.bounds == ((0.0, 80.0),)
    assert torch.equal(loaded.predictive_draws(x, 50, seed=1), surrogate.predictive_draws(x, 50, seed=1))


def test_a_model_that_produces_non_finite_values_is_refused() -> None:
    x, y = _zero_heavy()
    surrogate = BNNSurrogate(3, ("tc",), ("none",), SMALL, ((0.0, None),))
    surrogate.fit(x, y, seed=0)
    with torch.no_grad():
        surrogate.y_std.fill_(float("nan"))
    with pytest.raises(ModelOutputError, match="non-finite"):
        surrogate.predictive_draws(x, 10, seed=0)
    with pytest.raises(ModelOutputError, match="y_std"):
        surrogate.check_finite()


def test_a_checkpoint_written_before_supports_existed_loads_unbounded(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    x, y = _zero_heavy()
    surrogate = BNNSurrogate(3, ("tc",), ("none",), SMALL)
    surrogate.fit(x, y, seed=0)
    save_surrogate(surrogate, tmp_path / "old")
    weights = tmp_path / "old" / "weights.safetensors"
    tensors = {k: v for k, v in load_file(str(weights)).items() if k not in BNNSurrogate.OPTIONAL_BUFFERS}
    save_file(tensors, str(weights))
    loaded = load_surrogate(tmp_path / "old")
    assert loaded.bounds == (None,) and float(loaded.spread_offset[0]) == 0.0

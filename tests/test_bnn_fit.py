"""The variational BNN learns a simple function and knows where it has no data."""

import numpy as np
import pytest
import torch

from sbin_loop.config import ModelConfig
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.checkpoint import CheckpointError, load_surrogate, save_surrogate
from sbin_loop.model.intervals import summarise_draws
from sbin_loop.model.surrogate import BNNSurrogate


def _fit_sine(seed: int = 0) -> BNNSurrogate:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(300, 1))
    y = np.sin(2 * x) + 0.05 * rng.normal(size=x.shape)
    config = ModelConfig(hidden=(64, 64), epochs=200, min_steps=3000, ensemble_size=1)
    model = BNNSurrogate(1, ("y",), ("none",), config)
    model.fit(x, y, seed=seed)
    return model


@pytest.fixture(scope="module")
def sine_model() -> BNNSurrogate:
    return _fit_sine()


def test_fits_a_simple_function(sine_model):
    grid = np.linspace(-1.8, 1.8, 50)[:, None]
    mean = sine_model.function_draws(grid, 200, seed=1).mean(dim=0).numpy()[:, 0]
    rmse = np.sqrt(np.mean((mean - np.sin(2 * grid[:, 0])) ** 2))
    assert rmse < 0.15, rmse


def test_intervals_widen_away_from_data(sine_model):
    inside = np.array([[0.0], [0.5], [-0.5]])
    outside = np.array([[5.0], [6.0], [-6.0]])
    draws = sine_model.predictive_draws(np.vstack([inside, outside]), 500, seed=2).numpy()[..., 0]
    widths = np.array([interval.width for interval in summarise_draws(draws)])
    assert widths[3:].min() > 2 * widths[:3].max(), widths


def test_same_seed_same_model_and_draws():
    a, b = _fit_sine(seed=5), _fit_sine(seed=5)
    x = np.array([[0.3], [1.1]])
    torch.testing.assert_close(a.predictive_draws(x, 50, 9), b.predictive_draws(x, 50, 9))


def test_missing_targets_are_masked():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 3))
    y = np.stack([x[:, 0], x[:, 1]], axis=1)
    y[:40, 1] = np.nan  # second target measured for half of the rows only
    model = BNNSurrogate(3, ("a", "b"), ("none", "none"), ModelConfig(hidden=(16,), min_steps=100, epochs=5))
    report = model.fit(x, y, seed=0)
    assert np.isfinite(report.final_nll)
    assert model.function_draws(x[:5], 10, 0).shape == (10, 5, 2)
    with pytest.raises(ValueError, match="no observed value"):
        model.fit(x, np.full((80, 2), np.nan), seed=0)


def test_log1p_targets_must_be_non_negative():
    model = BNNSurrogate(1, ("Tc",), ("log1p",), ModelConfig(min_steps=1, epochs=1))
    with pytest.raises(ValueError, match="negative"):
        model.fit(np.zeros((3, 1)), np.array([[1.0], [-2.0], [3.0]]), seed=0)


def test_checkpoint_round_trip_without_pickle(sine_model, tmp_path):
    save_surrogate(sine_model, tmp_path / "m", ["x"])
    loaded, metadata = load_surrogate(tmp_path / "m")
    assert metadata["feature_names"] == ["x"]
    x = np.array([[0.2]])
    torch.testing.assert_close(loaded.predictive_draws(x, 20, 3), sine_model.predictive_draws(x, 20, 3))
    (tmp_path / "m" / "model.json").write_text('{"format_version": 99}')
    with pytest.raises(CheckpointError, match="format_version"):
        load_surrogate(tmp_path / "m")


def test_botorch_model_shapes(sine_model):
    model = BNNModel(sine_model, n_draws=16, seed=0)
    posterior = model.posterior(torch.zeros(7, 3, 1, dtype=torch.float64))  # batch x q x d
    assert posterior.values.shape == (7, 16, 3, 1)  # batch x S x q x m
    assert posterior.mean.shape == (7, 3, 1)

"""The peer surrogates (random forest, GP): consistent function draws, supports, calibration, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbin_loop.model.config import ModelConfig
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.surrogates import ForestSettings, ForestSurrogate, GPSurrogate, Surrogate
from sbin_loop.surrogates.conformal import LEVELS, conformal_factors


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    tc = np.clip(6 * x[:, 0] + 2 * x[:, 1] ** 2 + rng.normal(size=n), 0, None)  # a censored, Tc-like target
    energy = x[:, 2] - x[:, 3] + 0.1 * rng.normal(size=n)
    return x, np.c_[tc, energy]


def _peers() -> list:
    bounds = ((0.0, None), None)
    return [
        ForestSurrogate(6, ("Tc_K", "Ef"), bounds, ForestSettings(n_trees=60, calibration_trees=30)),
        GPSurrogate(6, ("Tc_K", "Ef"), ("none", "none"), bounds),
    ]


@pytest.mark.parametrize("index", [0, 1], ids=["forest", "gp"])
def test_peer_draws_are_functions_within_support(index: int) -> None:
    x, y = _data(80, 0)
    y[::2, 1] = np.nan  # the second objective measured on half the rows only
    surrogate = _peers()[index]
    assert isinstance(surrogate, Surrogate)
    surrogate.fit(x, y, seed=1)
    pool = np.random.default_rng(5).normal(size=(300, 6))
    draws = surrogate.function_draws(pool, 32, seed=7)  # S x n x m
    assert draws.shape == (32, 300, 2)
    # The same seed gives the same functions whichever rows they are evaluated on (a pool scored in chunks).
    assert torch.allclose(draws[:, 100:150], surrogate.function_draws(pool[100:150], 32, seed=7))
    assert not torch.allclose(draws, surrogate.function_draws(pool, 32, seed=8))
    predictive = surrogate.predictive_draws(pool, 200, seed=3)
    assert float(draws[..., 0].min()) >= 0.0 and float(predictive[..., 0].min()) >= 0.0
    assert torch.isfinite(draws).all() and torch.isfinite(predictive).all()
    assert float(draws[..., 1].std(dim=0).mean()) > 0  # the draws are spread, not one function repeated


def test_forest_conformal_intervals_cover_new_rows() -> None:
    x, y = _data(200, 0)
    test_x, test_y = _data(1000, 1)
    forest = ForestSurrogate(6, ("Tc_K",), ((0.0, None),), ForestSettings(n_trees=100, calibration_trees=50))
    forest.fit(x, y[:, :1], seed=0)
    draws = forest.predictive_draws(test_x, 400, seed=2)[..., 0].numpy()
    low, high = np.quantile(draws, [0.025, 0.975], axis=0)
    coverage = ((test_y[:, 0] >= low) & (test_y[:, 0] <= high)).mean()
    assert 0.90 <= coverage <= 0.99
    mae = np.abs(np.median(draws, axis=0) - test_y[:, 0]).mean()
    assert mae < 0.5 * np.abs(test_y[:, 0] - test_y[:, 0].mean()).mean()  # it learned something


def test_conformal_factors_cover_their_levels() -> None:
    rng = np.random.default_rng(0)
    spreads = rng.uniform(0.5, 2.0, 5000)
    residuals = spreads * rng.normal(size=5000)
    factors = conformal_factors(residuals, spreads)
    assert np.all(np.diff(factors) >= 0)
    assert factors[list(LEVELS).index(0.95)] == pytest.approx(1.96, abs=0.1)


@pytest.mark.parametrize("index", [0, 1], ids=["forest", "gp"])
def test_peer_save_load_refits_the_same_model(tmp_path, index: int) -> None:
    x, y = _data(60, 2)
    surrogate = _peers()[index]
    surrogate.fit(x, y, seed=4)
    surrogate.save(tmp_path / "model")
    loaded = type(surrogate).load(tmp_path / "model", seed=4)
    assert loaded.bounds == surrogate.bounds and loaded.target_names == surrogate.target_names
    pool = x[:7]
    assert torch.allclose(loaded.function_draws(pool, 8, seed=1), surrogate.function_draws(pool, 8, seed=1))
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.joblib"))


@pytest.mark.parametrize("index", [0, 1], ids=["forest", "gp"])
def test_peer_refuses_targets_outside_support(index: int) -> None:
    x, y = _data(30, 3)
    y[4, 0] = -2.0
    with pytest.raises(ValueError, match=r"Tc_K.*outside its bounds"):
        _peers()[index].fit(x, y, seed=0)


def test_the_bnn_meets_the_same_protocol() -> None:
    assert isinstance(BNNSurrogate(6, ("Tc_K",), ("none",), ModelConfig()), Surrogate)


@pytest.mark.parametrize("index", [0, 1], ids=["forest", "gp"])
def test_peer_picks_through_the_product_policy(index: int) -> None:
    """A peer's draws go through the same pool scoring and qLogEI batch selection as the BNN's."""
    from sbin_loop.policies import build_policy, draw_pool_scores
    from sbin_loop.policies.config import PolicyConfig
    from sbin_loop.surrogates.botorch_model import FunctionDrawsModel

    x, y = _data(200, 0)
    measured = np.arange(40)
    surrogate = _peers()[index]
    surrogate.fit(x[measured], y[measured], seed=0)
    model = FunctionDrawsModel(surrogate, 64, seed=3)
    available = x[40:]
    scores = draw_pool_scores(model, available, x[measured], y[measured], (1.0, -1.0))
    policy = build_policy(PolicyConfig(kind="expected_improvement", batch_size=5, mc_samples=64))
    selection = policy.select(scores, len(available), np.random.default_rng(0))
    assert len(set(selection.indices)) == 5
    picked_truth = y[40:][selection.indices, 0]
    assert picked_truth.mean() > np.median(y[40:, 0])  # EI on a learnable target picks better than a coin


@pytest.mark.parametrize("kind", ["forest", "gp"])
def test_a_campaign_learns_with_a_peer_and_resumes_with_the_same_model(kind: str, tmp_path, pool_csv) -> None:
    """``surrogate: forest|gp`` runs a campaign through the engine; a restart reloads the stored peer, same picks."""
    from conftest import campaign_config

    from sbin_loop.loop import Campaign
    from sbin_loop.surrogates.registry import load_model

    objectives = [{"name": "Tc_K", "unit": "K", "bounds": [0, None]}]
    config = campaign_config(pool_csv, surrogate=kind, objectives=objectives, budget={"initial": 6, "rounds": 2})
    first = Campaign.from_config(config, tmp_path / "a")
    first.run()
    rounds = first.store.rounds()
    assert [doc.state for doc in rounds] == ["complete"] * 3
    assert all((doc.training or {}).get("kind") == kind for doc in rounds)
    stored = load_model(tmp_path / "a" / rounds[-1].checkpoint)
    assert type(stored).__name__ == {"forest": "ForestSurrogate", "gp": "GPSurrogate"}[kind]
    intervals = [c.interval for doc in rounds for group in doc.intervals.values() for c in group]
    assert intervals and all(i.lower >= 0 and i.lower <= i.median <= i.upper for i in intervals)
    first.store.close()

    # The same campaign, stopped after round 1 and resumed: round 2 picks with round 1's reloaded model.
    partial = Campaign.from_config(
        campaign_config(pool_csv, surrogate=kind, objectives=objectives, budget={"initial": 6, "rounds": 1}),
        tmp_path / "b",
    )
    partial.run()
    partial.store.close()
    resumed = Campaign.from_config(config, tmp_path / "b")
    resumed.run()
    picks = [[e.candidate_id for e in doc.selected] for doc in resumed.store.rounds()]
    assert picks == [[e.candidate_id for e in doc.selected] for doc in rounds]

import numpy as np
import pytest
import torch
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.acquisition.monte_carlo import qUpperConfidenceBound
from conftest import campaign_config

from sbin_loop.config import ConfigError
from sbin_loop.model.botorch_model import BNNModel, EnsembleMemberSampler
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.policies import BatchPolicy, PoolScores, RandomPolicy, build_policy
from sbin_loop.policies import batch as batch_module
from sbin_loop.policies.acquisitions import LogExpectedImprovement
from sbin_loop.policies.config import PolicyConfig


def scores(samples: torch.Tensor, best: float | None = None, **kwargs) -> PoolScores:
    """Pool scores of one objective ``y`` (``S x N`` draws), with ``best`` as the only measured value."""
    observed = torch.tensor([[best]]) if best is not None else torch.empty(0, 1)
    return PoolScores(samples.unsqueeze(-1), ("y",), observed=observed, **kwargs)


def select(samples: torch.Tensor, best: float | None = None, seed: int = 0, scored: dict | None = None, **policy):
    policy = PolicyConfig(**{"batch_size": 1, **policy})
    return BatchPolicy(policy).select(
        scores(samples, best, **(scored or {})), samples.shape[1], np.random.default_rng(seed)
    )


def shifted(shifts: list[float], n_draws: int = 64, seed: int = 0) -> torch.Tensor:
    """Draws with equal spread and the given means."""
    base = torch.randn(n_draws, 1, generator=torch.Generator().manual_seed(seed))
    return torch.cat([base + shift for shift in shifts], dim=1)


def scaled(scales: list[float], n_draws: int = 256, seed: int = 1) -> torch.Tensor:
    """Draws with equal (zero) mean and the given spreads."""
    z = torch.randn(n_draws, 1, generator=torch.Generator().manual_seed(seed))
    z = z - z.mean()
    return torch.cat([scale * z for scale in scales], dim=1)


@pytest.mark.parametrize("kind", ["expected_improvement", "upper_confidence_bound", "greedy"])
def test_value_seeking_rules_prefer_high_mean_at_equal_spread(kind):
    selection = select(shifted([0.0, 1.0, 3.0, 2.0]), best=0.5, kind=kind)
    assert selection.indices == [2]
    assert selection.policies == [kind]


def test_noisy_ei_prefers_high_mean_and_uses_the_baseline_draws():
    samples = shifted([0.0, 1.0, 3.0, 2.0])
    baseline = shifted([2.5], seed=3).unsqueeze(-1)
    selection = select(samples, best=2.5, kind="noisy_expected_improvement", scored={"baseline": baseline})
    assert selection.indices == [2] and selection.acquisitions == ["qLogNEI"]
    with pytest.raises(ValueError, match="evaluated candidates"):
        select(samples, best=2.5, kind="noisy_expected_improvement")


@pytest.mark.parametrize("kind", ["expected_improvement", "uncertainty"])
def test_ei_and_uncertainty_prefer_spread_at_equal_mean(kind):
    selection = select(scaled([0.1, 2.0, 0.5]), best=1.0, kind=kind)
    assert selection.indices == [1]


def test_uncertainty_conditions_on_earlier_picks():
    """A candidate that duplicates the first pick loses its variance; an independent one keeps it."""
    z = torch.randn(512, 2, generator=torch.Generator().manual_seed(4))
    samples = torch.stack([3.0 * z[:, 0], 2.9 * z[:, 0], 1.0 * z[:, 1]], dim=1)
    selection = select(samples, kind="uncertainty", batch_size=2)
    assert selection.indices == [0, 2]
    assert selection.acquisition_values[1] < 1.5


@pytest.mark.parametrize(
    "kind", ["expected_improvement", "noisy_expected_improvement", "upper_confidence_bound", "uncertainty", "thompson"]
)
def test_batches_have_no_duplicates(kind):
    samples = torch.randn(64, 40, generator=torch.Generator().manual_seed(2))
    baseline = torch.randn(64, 5, 1, generator=torch.Generator().manual_seed(3))
    selection = select(samples, best=1.0, kind=kind, batch_size=10, scored={"baseline": baseline})
    assert len(set(selection.indices)) == 10
    assert len(selection.acquisition_values) == len(selection.reasons) == len(selection.details) == 10
    assert all(kind in reason for reason in selection.reasons)


def test_batch_is_cut_short_when_the_pool_runs_out():
    selection = select(torch.randn(16, 3, generator=torch.Generator().manual_seed(0)), best=0.0, batch_size=5)
    assert sorted(selection.indices) == [0, 1, 2]


def test_thompson_draws_are_seeded():
    samples = torch.randn(32, 200, generator=torch.Generator().manual_seed(5))
    a, b, c = (select(samples, kind="thompson", batch_size=5, seed=seed).indices for seed in (7, 7, 8))
    assert a == b and a != c
    first_draws = {int(torch.argmax(samples[s])) for s in range(32)}
    assert set(a) <= first_draws


def test_constraints_exclude_infeasible_candidates():
    """Objective y is maximised; constraint on defect (minimised) keeps only candidates with defect <= 1."""
    y = shifted([5.0, 4.0, 1.0, 0.0])
    defect = shifted([3.0, 0.0, 0.2, 2.0], seed=9) * 0.1 + torch.tensor([3.0, 0.0, 0.2, 2.0])
    samples = torch.stack([y, -defect], dim=-1)
    pool = PoolScores(samples, ("y", "defect"), observed=torch.tensor([[0.0, -1.0]]), signs=(1.0, -1.0))
    policy = PolicyConfig(batch_size=2, constraints=[{"objective": "defect", "upper": 1.0}])
    selection = BatchPolicy(policy).select(pool, 4, np.random.default_rng(0))
    assert selection.indices == [1, 2]
    assert all(details["p_feasible"] >= 0.5 for details in selection.details)


def test_constraints_fall_back_to_the_most_probably_feasible():
    samples = torch.stack([shifted([1.0, 2.0]), shifted([5.0, 6.0])], dim=-1)
    pool = PoolScores(samples, ("y", "defect"), observed=torch.empty(0, 2))
    policy = PolicyConfig(kind="greedy", batch_size=1, constraints=[{"objective": "defect", "upper": 5.5}])
    assert BatchPolicy(policy).select(pool, 2, np.random.default_rng(0)).indices == [0]


def test_composite_split_and_weighted_scalarisation():
    tc = shifted([0.0, 3.0, 2.9, 2.8, 0.1])
    defect = scaled([0.1, 0.1, 0.1, 0.1, 5.0], n_draws=64)
    pool = PoolScores(torch.stack([tc, defect], dim=-1), ("Tc", "defect"), observed=torch.tensor([[1.0, 0.0]]))
    policy = PolicyConfig(
        kind="composite",
        batch_size=3,
        components=[
            {"kind": "expected_improvement", "objective": "Tc", "count": 2},
            {"kind": "uncertainty", "objective": "defect", "count": 1},
        ],
    )
    selection = BatchPolicy(policy).select(pool, 5, np.random.default_rng(0))
    assert selection.indices == [1, 2, 4]
    assert selection.policies == ["expected_improvement"] * 2 + ["uncertainty"]
    assert selection.acquisitions == ["qLogEI", "qLogEI", "posterior_variance"]
    weighted = PolicyConfig(kind="greedy", weights={"Tc": 1.0, "defect": 1.0}, batch_size=1)
    assert BatchPolicy(weighted).select(pool, 5, np.random.default_rng(0)).indices == [1]


def test_distance_penalty_spreads_the_batch():
    samples = shifted([3.0, 2.9, 1.0])
    features = np.array([[0.0, 0.0], [0.01, 0.0], [1.0, 1.0]])
    plain = select(samples, kind="greedy", batch_size=2, scored={"features": features})
    spread = select(samples, kind="greedy", batch_size=2, min_distance=0.5, scored={"features": features})
    assert plain.indices == [0, 1] and spread.indices == [0, 2]


def test_costs_turn_gains_into_gain_per_cost():
    samples = scaled([1.0, 0.9])
    cheap = {"costs": torch.tensor([10.0, 1.0])}
    assert select(samples, kind="uncertainty").indices == [0]
    assert select(samples, kind="uncertainty", scored=cheap).indices == [1]
    assert select(samples, best=0.0, kind="expected_improvement", scored=cheap).indices == [1]
    with pytest.raises(ValueError, match="gain-type"):
        select(samples, kind="thompson", scored=cheap)


@pytest.mark.parametrize("lazy", [4, 64])
@pytest.mark.parametrize(
    "policy",
    [
        {"kind": "expected_improvement"},
        {"kind": "noisy_expected_improvement"},
        {"kind": "expected_improvement", "constraints": [{"objective": "y", "upper": 2.5}], "min_feasibility": 0.6},
    ],
)
def test_lazy_ei_batches_equal_full_evaluation(monkeypatch, policy, lazy):
    """EI values only fall as picks are added: valuing the best-bounded candidates first picks what valuing all does."""
    generator = torch.Generator().manual_seed(11)
    means = torch.randn(1, 3000, generator=generator)
    samples = means + (0.2 + torch.rand(1, 3000, generator=generator)) * torch.randn(64, 3000, generator=generator)
    scored = {"baseline": samples[:, :5, None], "costs": 1 + torch.rand(3000, generator=generator)}
    full_values = []
    original = LogExpectedImprovement.values
    monkeypatch.setattr(LogExpectedImprovement, "values", lambda self, *a: full_values.append(1) or original(self, *a))

    def batch(k: int, **extra):
        monkeypatch.setattr(batch_module, "LAZY_CANDIDATES", k)
        full_values.clear()
        chosen = select(samples, best=1.0, batch_size=10, scored={**scored, **extra}, **policy)
        return chosen.indices, chosen.acquisition_values, len(full_values)

    for extra in ({}, {"costs": None}):
        reference, reference_values, _ = batch(10**6, **extra)
        picks, values, full_passes = batch(lazy, **extra)
        assert picks == reference and len(set(picks)) == 10
        assert values == pytest.approx(reference_values, rel=1e-12)
        assert full_passes < 10  # most picks valued only a few candidates


def _bnn_and_pool() -> tuple[np.ndarray, BNNModel, torch.Tensor]:
    """A small BNN fitted on 40 measured points (returned), as a 32-member BoTorch model, and a 200-point pool."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    surrogate = BNNSurrogate(2, ("y",), ("none",), ModelConfig(hidden=(16,), min_steps=200, epochs=10))
    surrogate.fit(x, (x[:, :1] ** 2), seed=0)
    pool = torch.as_tensor(rng.normal(size=(200, 2)), dtype=torch.float64)
    return x, BNNModel(surrogate, n_draws=32, seed=4), pool


def test_cached_selection_matches_botorch_on_the_bnn():
    """The first pick on cached draws equals BoTorch's qLogEI argmax evaluated through the network itself."""
    _, model, pool = _bnn_and_pool()
    samples = model.posterior(pool).values[..., 0]  # S x N
    selection = select(samples, best=1.0)
    direct = qLogExpectedImprovement(model, best_f=1.0, sampler=EnsembleMemberSampler(32))(pool.unsqueeze(1))
    assert selection.indices[0] == int(direct.argmax())
    assert selection.acquisition_values[0] == pytest.approx(float(direct.max()), rel=1e-6)
    ucb = select(samples, kind="upper_confidence_bound", beta=2.0)
    direct = qUpperConfidenceBound(model, beta=2.0, sampler=EnsembleMemberSampler(32))(pool.unsqueeze(1))
    assert ucb.indices[0] == int(direct.argmax())
    assert ucb.acquisition_values[0] == pytest.approx(float(direct.max()), rel=1e-6)


def test_botorch_noisy_ei_and_optimize_acqf_discrete_run_on_the_bnn():
    """BoTorch's own qLogNEI (incumbent: the measured candidates' posterior) and ``optimize_acqf_discrete`` work on the
    BNN model unchanged: the batch comes from the pool without repeats, and its first pick is the cached policy's."""
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.optim import optimize_acqf_discrete

    x, model, pool = _bnn_and_pool()
    measured = torch.as_tensor(x, dtype=torch.float64)
    acquisition = qLogNoisyExpectedImprovement(
        model, X_baseline=measured, sampler=EnsembleMemberSampler(32), prune_baseline=False, cache_root=False
    )
    batch, _ = optimize_acqf_discrete(acquisition, q=3, choices=pool)  # q x d
    rows = [int(torch.nonzero((pool == point).all(dim=1))[0, 0]) for point in batch]
    assert len(set(rows)) == 3
    baseline = model.posterior(measured).values  # S x n x 1: the measured candidates' draws
    cached = select(
        model.posterior(pool).values[..., 0], kind="noisy_expected_improvement", scored={"baseline": baseline}
    )
    assert cached.indices[0] == rows[0] == int(acquisition(pool.unsqueeze(1)).argmax())


def test_random_policy_is_seeded_and_distinct():
    a = RandomPolicy(5).select(None, 20, np.random.default_rng(7))
    b = RandomPolicy(5).select(None, 20, np.random.default_rng(7))
    assert a.indices == b.indices and len(set(a.indices)) == 5
    assert a.acquisition_values == [None] * 5
    assert isinstance(build_policy(PolicyConfig(kind="random")), RandomPolicy)
    assert isinstance(
        build_policy(PolicyConfig(kind="random", constraints=[{"objective": "y", "upper": 1}])), BatchPolicy
    )


def test_policy_config_validation(pool_csv):
    with pytest.raises(ValueError, match="add up to 3"):
        PolicyConfig(kind="composite", batch_size=4, components=[{"kind": "greedy", "count": 3}])
    with pytest.raises(ValueError, match="only used with kind 'composite'"):
        PolicyConfig(components=[{"kind": "greedy", "count": 10}])
    with pytest.raises(ValueError, match="either objective or weights"):
        PolicyConfig(objective="Tc_K", weights={"Tc_K": 1.0})
    with pytest.raises(ConfigError, match=r"constraints\.0\.objective: .E_def. is not one of the objectives"):
        campaign_config(pool_csv, policy={"constraints": [{"objective": "E_def", "upper": 1.0}]})

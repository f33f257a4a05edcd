import numpy as np
import pytest
import torch
from botorch.acquisition.logei import qLogExpectedImprovement

from sbin_loop.config import ModelConfig
from sbin_loop.model.botorch_model import BNNModel, EnsembleMemberSampler
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.policies import ExpectedImprovementPolicy, PoolScores, RandomPolicy


def test_ei_prefers_high_mean_at_equal_spread():
    base = torch.randn(64, 1, generator=torch.Generator().manual_seed(0))
    samples = torch.cat([base + shift for shift in (0.0, 1.0, 3.0, 2.0)], dim=1)  # S x 4, same spread
    selection = ExpectedImprovementPolicy(batch_size=1).select(PoolScores(samples, 0.5), 4, np.random.default_rng(0))
    assert selection.indices == [2]
    assert selection.acquisition == "qLogEI"


def test_ei_prefers_spread_at_equal_mean():
    z = torch.randn(256, 1, generator=torch.Generator().manual_seed(1))
    samples = torch.cat([0.1 * z, 2.0 * z], dim=1)
    selection = ExpectedImprovementPolicy(batch_size=1).select(PoolScores(samples, 1.0), 2, np.random.default_rng(0))
    assert selection.indices == [1]


def test_batch_has_no_duplicates_and_decreasing_marginal_value():
    samples = torch.randn(128, 50, generator=torch.Generator().manual_seed(2))
    selection = ExpectedImprovementPolicy(batch_size=10).select(PoolScores(samples, 1.0), 50, np.random.default_rng(0))
    assert len(set(selection.indices)) == 10
    assert len(selection.acquisition_values) == 10


def test_cached_selection_matches_botorch_on_the_bnn():
    """The first pick on cached draws equals BoTorch's qLogEI argmax evaluated through the network itself."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    surrogate = BNNSurrogate(2, ("y",), ("none",), ModelConfig(hidden=(16,), min_steps=200, epochs=10))
    surrogate.fit(x, (x[:, :1] ** 2), seed=0)
    model = BNNModel(surrogate, n_draws=32, seed=4)
    pool = torch.as_tensor(rng.normal(size=(200, 2)), dtype=torch.float64)
    samples = model.posterior(pool).values[..., 0]  # S x N
    selection = ExpectedImprovementPolicy(batch_size=1).select(PoolScores(samples, 1.0), 200, rng)
    direct = qLogExpectedImprovement(model, best_f=1.0, sampler=EnsembleMemberSampler(32))(pool.unsqueeze(1))
    assert selection.indices[0] == int(direct.argmax())
    assert selection.acquisition_values[0] == pytest.approx(float(direct.max()), rel=1e-6)


def test_random_policy_is_seeded_and_distinct():
    a = RandomPolicy(5).select(None, 20, np.random.default_rng(7))
    b = RandomPolicy(5).select(None, 20, np.random.default_rng(7))
    assert a.indices == b.indices and len(set(a.indices)) == 5
    assert a.acquisition_values == [None] * 5

"""Neighbour-target inputs: statistics, leave-one-out, missing targets, and the surrogate that uses them."""

import math

import numpy as np
import pytest
import torch

from sbin_loop.config import ModelConfig
from sbin_loop.model.checkpoint import load_surrogate, save_surrogate
from sbin_loop.model.neighbours import NEIGHBOUR_STATISTICS, neighbour_statistics
from sbin_loop.model.surrogate import BNNSurrogate

WEIGHTED, NEAREST, LOG_NEAREST, LOG_MEAN, SPREAD = range(len(NEIGHBOUR_STATISTICS))


def test_statistics_equal_a_brute_force_lookup():
    rng = np.random.default_rng(0)
    bank_x, bank_y, queries = rng.normal(size=(40, 3)), rng.normal(size=(40, 1)), rng.normal(size=(6, 3))
    result = neighbour_statistics(
        torch.as_tensor(queries, dtype=torch.float32),
        torch.as_tensor(bank_x, dtype=torch.float32),
        torch.as_tensor(bank_y, dtype=torch.float32),
        k=4,
        leave_one_out=False,
    )
    for row, query in enumerate(queries):
        distance = np.linalg.norm(bank_x - query, axis=1) / math.sqrt(3)
        order = np.argsort(distance)[:4]
        weights = 1 / distance[order]
        values = bank_y[order, 0]
        expected = [
            (weights * values).sum() / weights.sum(),
            values[0],
            math.log(distance[order[0]] + 1e-3),
            math.log(distance[order].mean() + 1e-3),
            values.std(),
        ]
        np.testing.assert_allclose(result[row, 0].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_a_training_row_never_sees_its_own_target():
    # Two rows at the same place with different targets: leave-one-out, each one's nearest is the other.
    bank_x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    bank_y = torch.tensor([[1.0], [2.0], [9.0]])
    loo = neighbour_statistics(bank_x, bank_x, bank_y, k=1, leave_one_out=True)
    assert loo[:, 0, NEAREST].tolist() == [2.0, 1.0, 1.0]
    plain = neighbour_statistics(bank_x, bank_x, bank_y, k=1, leave_one_out=False)
    assert plain[2, 0, NEAREST] == 9.0  # a candidate at a measured point sees that measurement
    with pytest.raises(ValueError, match="bank's 3 rows"):
        neighbour_statistics(bank_x[:2], bank_x, bank_y, k=1, leave_one_out=True)


def test_unmeasured_rows_are_not_neighbours_and_sparse_outputs_get_zeros():
    bank_x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    bank_y = torch.tensor([[10.0, 5.0], [float("nan"), float("nan")], [30.0, float("nan")], [40.0, float("nan")]])
    result = neighbour_statistics(torch.tensor([[1.1]]), bank_x, bank_y, k=1, leave_one_out=False)
    assert result[0, 0, NEAREST] == 30.0  # row 1 is nearer but has no first target
    assert torch.all(result[0, 1] == 0)  # one measured row: no leave-one-out neighbour exists, so no statistics
    assert not torch.isnan(result).any()


def _series(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 'doping series' target: piecewise constant in x0 with jumps a smooth network blurs."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    y = np.floor(4 * x[:, :1]) * 2.0 + 0.05 * rng.normal(size=(n, 1))
    return x, y


@pytest.fixture(scope="module")
def neighbour_model() -> BNNSurrogate:
    torch.set_num_threads(1)
    x, y = _series(300, seed=0)
    config = ModelConfig(hidden=(32, 32), ensemble_size=2, min_steps=400, max_steps=800, neighbour_inputs=3)
    surrogate = BNNSurrogate(3, ("y",), ("none",), config)
    surrogate.fit(x, y, seed=1)
    return surrogate


def test_surrogate_with_neighbour_inputs_keeps_its_fitting_rows_as_bank(neighbour_model):
    assert neighbour_model.bank_x.shape == (255, 3)  # 300 rows less the 15% validation share
    assert neighbour_model.members[0].layers[0].weight_mu.shape[0] == 3 + len(NEIGHBOUR_STATISTICS)
    x, y = _series(200, seed=5)
    median = neighbour_model.predictive_draws(x, 200, seed=0).median(dim=0).values[:, 0].numpy()
    # Measured: 0.70 with neighbour inputs, 0.55 without (on a low-dimensional target the network alone does well;
    # the inputs must not break the fit). A model fed mismatched training and candidate inputs errs by steps of 2.
    assert np.abs(median - y[:, 0]).mean() < 1.0


def test_neighbour_checkpoint_round_trip(neighbour_model, tmp_path):
    x, _ = _series(20, seed=6)
    save_surrogate(neighbour_model, tmp_path / "model")
    loaded = load_surrogate(tmp_path / "model")
    torch.testing.assert_close(loaded.bank_y, neighbour_model.bank_y)
    torch.testing.assert_close(loaded.predictive_draws(x, 30, seed=2), neighbour_model.predictive_draws(x, 30, seed=2))


def test_a_model_without_neighbour_inputs_has_no_bank():
    surrogate = BNNSurrogate(3, ("y",), ("none",), ModelConfig())
    assert not hasattr(surrogate, "bank_x")
    with pytest.raises(ValueError, match="no neighbour inputs"):
        surrogate.resize_neighbour_bank(5)

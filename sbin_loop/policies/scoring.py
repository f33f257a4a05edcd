"""Posterior draws of a pool, once per round, in the form every policy reads (shared by campaigns and benchmarks)."""

from __future__ import annotations

import numpy as np
import torch

from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.policies.base import PoolScores


def draw_pool_scores(
    surrogate: BNNSurrogate,
    features: np.ndarray,
    available: np.ndarray,
    evaluated: np.ndarray,
    observed: np.ndarray,
    signs: tuple[float, ...],
    n_draws: int,
    seed: int,
) -> PoolScores:
    """Draw ``S`` posterior functions once and evaluate them on the available and the evaluated candidates.

    Args:
        surrogate: The trained model.
        features: ``P x d`` descriptors of the whole pool.
        available: Rows of the pool that may be picked (``N``).
        evaluated: Rows of the pool already measured (``n``).
        observed: ``n x m`` measured values of the evaluated rows in target units (NaN where missing).
        signs: ``+1`` per maximised and ``-1`` per minimised objective, in the surrogate's output order.
        n_draws: ``S``.
        seed: Seed of the posterior draws.
    """
    model = BNNModel(surrogate, n_draws, seed)
    rows = np.concatenate([available, evaluated]).astype(np.int64)
    orientation = torch.tensor(signs, dtype=torch.float64)
    with torch.no_grad():
        draws = model.posterior(torch.as_tensor(features[rows])).values.to(torch.float64) * orientation
    oriented = torch.as_tensor(np.asarray(observed, dtype=np.float64)).reshape(len(evaluated), len(signs))
    return PoolScores(
        samples=draws[:, : len(available)],
        objectives=tuple(surrogate.target_names),
        observed=oriented * orientation,
        baseline=draws[:, len(available) :],
        signs=tuple(signs),
        features=features[available],
    )

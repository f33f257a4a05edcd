"""Posterior draws of a pool, once per round, in the form every policy reads (shared by campaigns and benchmarks)."""

from __future__ import annotations

import numpy as np
import torch

from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.policies.base import PoolScores


def draw_pool_scores(
    model: BNNModel,
    features: np.ndarray,
    evaluated_features: np.ndarray,
    observed: np.ndarray,
    signs: tuple[float, ...],
    descriptors: np.ndarray | None = None,
) -> PoolScores:
    """Evaluate the model's ``S`` posterior functions on the available and the evaluated candidates.

    The same ``model`` (same weight sets) gives every candidate the same draws whichever others it is scored with,
    so a pool may be scored in chunks.

    Args:
        model: The trained surrogate's ``S`` posterior functions.
        features: ``N x d`` descriptors of the candidates that may be picked.
        evaluated_features: ``n x d`` descriptors of the candidates already measured.
        observed: ``n x m`` measured values of the evaluated candidates in target units (NaN where missing).
        signs: ``+1`` per maximised and ``-1`` per minimised objective, in the surrogate's output order.
        descriptors: ``N x d'`` descriptors that batch diversity is measured on; ``features`` if not given.
    """
    orientation = torch.tensor(signs, dtype=torch.float64)
    inputs = torch.as_tensor(np.concatenate([features, evaluated_features]))
    with torch.no_grad():
        draws = model.posterior(inputs).values.to(torch.float64) * orientation  # S x (N + n) x m
    oriented = torch.as_tensor(np.asarray(observed, dtype=np.float64)).reshape(len(evaluated_features), len(signs))
    return PoolScores(
        samples=draws[:, : len(features)],
        objectives=tuple(model.surrogate.target_names),
        observed=oriented * orientation,
        baseline=draws[:, len(features) :],
        signs=tuple(signs),
        features=features if descriptors is None else descriptors,
    )

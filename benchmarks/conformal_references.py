"""Small-data reference models: a random forest and a GP, each with normalised split-conformal intervals.

Both are fitted to the same rows as sbin. Each gives a point prediction and a spread per row (the forest: the standard
deviation of its trees; the GP: its posterior standard deviation). Out-of-fold residuals of ``folds`` refits, divided
by their spreads, set one factor per central level: the smallest that covers ``ceil(level (n + 1))`` of the ``n``
residuals (``sbin_loop.surrogates.conformal``, the factors sbin's forest peer uses). Intervals are ``point ± factor x
spread``, clipped to the support (Tc >= 0). Draws for CRPS are taken from the piecewise-linear quantile function of
those intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sbin_loop.surrogates.conformal import conformal_factors, quantile_offsets

Fitter = Callable[[np.ndarray, np.ndarray, int], Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]
"""``fit(x, y, seed)`` -> ``predict(x) -> (point, spread)``."""


def forest(x: np.ndarray, y: np.ndarray, seed: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A 200-tree random forest (minimum leaf 2); spread: the standard deviation over its trees."""
    model = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1).fit(x, y)

    def predict(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_tree = np.stack([tree.predict(rows) for tree in model.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)

    return predict


def gaussian_process(x: np.ndarray, y: np.ndarray, seed: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A GP (Matern 5/2 with one length scale, plus white noise) on standardised inputs and targets."""
    scale = float(np.std(y)) or 1.0
    centre = float(np.mean(y))
    kernel = ConstantKernel(1.0) * Matern(length_scale=math.sqrt(x.shape[1]), nu=2.5) + WhiteKernel(0.1)
    model = make_pipeline(
        StandardScaler(), GaussianProcessRegressor(kernel, normalize_y=False, random_state=seed, n_restarts_optimizer=2)
    ).fit(x, (y - centre) / scale)

    def predict(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = model.predict(rows, return_std=True)
        return centre + scale * mean, scale * std

    return predict


def conformal_draws(
    fit: Fitter, x: np.ndarray, y: np.ndarray, test: np.ndarray, levels: np.ndarray, seed: int, folds: int = 5
) -> np.ndarray:
    """``S x n_test`` draws of a normalised split-conformal predictive distribution, clipped at 0.

    Args:
        fit: The reference model.
        x: Training inputs; ``y`` their targets.
        y: Training targets.
        test: Inputs to predict.
        levels: Central levels whose factors are fitted (e.g. 0.05 ... 0.99).
        seed: Seeds the folds and the model.
        folds: Out-of-fold refits that give the residuals.
    """
    residuals, spreads = [], []
    for train, held in KFold(min(folds, len(y)), shuffle=True, random_state=seed).split(x):
        point, spread = fit(x[train], y[train], seed)(x[held])
        residuals.append(y[held] - point)
        spreads.append(spread)
    factors = conformal_factors(np.concatenate(residuals), np.concatenate(spreads), levels)
    point, spread = fit(x, y, seed)(test)
    uniform = np.random.default_rng(seed).uniform(size=(500, 1))
    quantile = quantile_offsets(factors, uniform, levels)  # S x 1: a shared unit-free draw per row
    return np.clip(point + quantile * np.maximum(spread, 1e-6), 0.0, None)

"""The fixed SuperCon Tc holdout of the model probes (``kl_weight_probe.py``, ``input_scaling_probe.py``).

2,000 rows of the bundled SuperCon split, drawn by a seeded permutation, are held out; the probes train the product's
``BNNSurrogate`` on the other rows (or on subsets of them) and score it here.
"""

from __future__ import annotations

import time

import numpy as np

from sbin_loop.features import composition_input_names, fraction_columns
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.sites import formula_inputs
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.space import read_formula_table

HOLDOUT_ROWS = 2000


def supercon_holdout(seed: int, element_fractions: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, test, pool)``: product inputs and Tc of the bundled split, held-out rows, and the others in order."""
    frame = read_formula_table("bundled:supercon", value_columns=("Tc_K",)).frame
    x, y = formula_inputs(frame["formula"], element_fractions), frame["Tc_K"].to_numpy(float)
    order = np.random.default_rng(seed).permutation(len(y))
    return x, y, order[:HOLDOUT_ROWS], order[HOLDOUT_ROWS:]


def crps_of_draws(draws: np.ndarray, observed: np.ndarray) -> float:
    """Mean CRPS of ``S x n`` predictive draws (the sorted-draw form of ``E|X - y| - E|X - X'| / 2``)."""
    ordered = np.sort(draws, axis=0)
    n_draws = ordered.shape[0]
    weights = (2 * np.arange(1, n_draws + 1) - n_draws - 1)[:, None]
    spread = (weights * ordered).sum(axis=0) / n_draws**2
    return float((np.abs(draws - observed).mean(axis=0) - spread).mean())


def holdout_scores(surrogate: BNNSurrogate, x_test: np.ndarray, y_test: np.ndarray) -> str:
    """MAE of the predictive median, 95% coverage, mean 95% width and CRPS (1,000 draws), as one line of text."""
    draws = surrogate.predictive_draws(x_test, 1000, seed=1).numpy()[..., 0]  # S x n_test
    lower, upper = np.quantile(draws, [0.025, 0.975], axis=0)
    inside = ((y_test >= lower) & (y_test <= upper)).mean()
    return (
        f"MAE {np.abs(np.median(draws, axis=0) - y_test).mean():.2f} K, 95% coverage {inside:.3f}, "
        f"mean width {(upper - lower).mean():.1f} K, CRPS {crps_of_draws(draws, y_test):.2f} K"
    )


def fit_and_score(
    config: ModelConfig,
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    fraction_inputs: tuple[int, ...] | None = None,
    seed: int = 0,
) -> str:
    """Fit a ``BNNSurrogate`` with ``config`` (Tc on ``[0, inf)``, ``seed``) on ``train`` and score it on ``test``.

    ``fraction_inputs`` defaults to the product's: the positions of the element fractions when ``x`` holds them.
    """
    if fraction_inputs is None:
        fraction_inputs = (
            fraction_columns(composition_input_names(True)) if x.shape[1] == len(composition_input_names(True)) else ()
        )
    surrogate = BNNSurrogate(x.shape[1], ("Tc_K",), ("none",), config, ((0.0, None),), fraction_inputs)
    start = time.perf_counter()
    surrogate.fit(x[train], y[train, None], seed=seed)
    return f"{holdout_scores(surrogate, x[test], y[test])} ({time.perf_counter() - start:.0f} s)"

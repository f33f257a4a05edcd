"""The fixed SuperCon Tc holdout of the model probes (``kl_weight_probe.py``, ``input_scaling_probe.py``).

2,000 rows of the bundled SuperCon split, drawn by a seeded permutation, are held out; the probes train the product's
``BNNSurrogate`` on the other rows (or on subsets of them) and score it here.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import numpy as np
import torch

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


ProbeData = tuple[argparse.Namespace, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(args, x, y, test, pool)`` of ``probe_setup``."""


def probe_setup(description: str, rows: str, sets: int) -> ProbeData:
    """A probe's command line and data: ``(args, x, y, test, pool)``, one torch thread.

    The options are ``--rows`` (comma-separated sizes, default ``rows``), ``--sets`` per size (default ``sets``),
    ``--seed`` of the fits and ``--holdout-seed``; the data are ``supercon_holdout`` with the element fractions.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", default=rows, help="comma-separated training sizes")
    parser.add_argument("--sets", type=int, default=sets, help="disjoint training sets per size (as the pool allows)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fits")
    parser.add_argument("--holdout-seed", type=int, default=12345, help="seed of the holdout permutation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    return (args, *supercon_holdout(args.holdout_seed, element_fractions=True))


def training_sets(pool: np.ndarray, rows: str, sets: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(n, k, train)``: the ``k``-th disjoint block of ``n`` pool rows, for each size of ``rows`` and ``k < sets``.

    A size larger than the pool gives the whole pool once.
    """
    for n in (int(value) for value in rows.split(",")):
        for k in range(min(sets, max(1, len(pool) // n))):
            yield n, k, pool[k * n : (k + 1) * n]


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

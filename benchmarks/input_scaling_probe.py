"""Standardised against quantile-scaled descriptors on SuperCon Tc, by training-set size (a probe, not a protocol).

Trains the product's ``BNNSurrogate`` (``ModelConfig()`` defaults, default composition inputs, Tc on ``[0, inf)``)
on disjoint training sets of each size drawn from all but a fixed 2,000-row holdout of the bundled SuperCon split,
once with ``quantile_rows: 1`` (always quantile-scaled) and once with ``quantile_rows: null`` (always standardised),
and prints MAE of the median, 95% coverage, mean width and CRPS on the holdout. ``ModelConfig.quantile_rows`` was
chosen from its output.

Usage: ``PYTHONPATH=. python benchmarks/input_scaling_probe.py --rows 120,200,1000 --sets 2``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sbin_loop.model.config import ModelConfig
from sbin_loop.model.sites import formula_inputs
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.space import read_formula_table

SETTINGS = {"quantile": 1, "standardise": None}


def crps_of_draws(draws: np.ndarray, observed: np.ndarray) -> float:
    """Mean CRPS of ``S x n`` predictive draws (the sorted-draw form of ``E|X - y| - E|X - X'| / 2``)."""
    ordered = np.sort(draws, axis=0)
    n_draws = ordered.shape[0]
    weights = (2 * np.arange(1, n_draws + 1) - n_draws - 1)[:, None]
    spread = (weights * ordered).sum(axis=0) / n_draws**2
    return float((np.abs(draws - observed).mean(axis=0) - spread).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="30,120,200,300,1000,3000", help="comma-separated training-set sizes")
    parser.add_argument("--sets", type=int, default=2, help="disjoint training sets per size")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the holdout permutation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    frame = read_formula_table("bundled:supercon", value_columns=("Tc_K",)).frame
    x, y = formula_inputs(frame["formula"], False), frame["Tc_K"].to_numpy(float)
    order = np.random.default_rng(args.seed).permutation(len(y))
    test, pool = order[:2000], order[2000:]
    for n_rows in (int(value) for value in args.rows.split(",")):
        for index in range(min(args.sets, len(pool) // n_rows)):
            train = pool[index * n_rows : (index + 1) * n_rows]
            for name, quantile_rows in SETTINGS.items():
                config = ModelConfig(quantile_rows=quantile_rows)
                surrogate = BNNSurrogate(x.shape[1], ("Tc_K",), ("none",), config, ((0.0, None),))
                start = time.perf_counter()
                surrogate.fit(x[train], y[train, None], seed=0)
                draws = surrogate.predictive_draws(x[test], 1000, seed=1).numpy()[..., 0]  # S x n_test
                lower, upper = np.quantile(draws, [0.025, 0.975], axis=0)
                inside = ((y[test] >= lower) & (y[test] <= upper)).mean()
                print(
                    f"{n_rows} rows, set {index}, {name}: MAE {np.abs(np.median(draws, axis=0) - y[test]).mean():.2f} "
                    f"K, 95% coverage {inside:.3f}, mean width {(upper - lower).mean():.1f} K, CRPS "
                    f"{crps_of_draws(draws, y[test]):.2f} K ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""What the hurdle at 0 K does at a given training size on the fixed SuperCon holdout (a probe, not a protocol).

Trains the product's ``BNNSurrogate`` with ``ModelConfig()`` defaults (the hurdle from ``floor_mass_rows`` results on:
a random-forest classifier of Tc = 0 beside networks trained on the values above 0 K) and with ``floor_mass_rows:
null`` (networks on every row, censored at 0 K) on the same rows of the bundled SuperCon split outside a fixed
2,000-row holdout (``holdout.py``; the default inputs, Tc on ``[0, inf)``). Prints, per fit, the MAE of the predictive
median, the 95% coverage and mean width, the CRPS and the miscalibration area of the randomised probability integral
transform (``scoring.py``; a central interval whose lower end is 0 K also holds the mass at 0 K, so it covers more
than its level even for a calibrated predictive), and the mean over the training sets. Training sets of ``n`` rows
are the ``k``-th disjoint block of the remaining rows (``--sets``).

Usage: ``PYTHONPATH=. python benchmarks/hurdle_probe.py --rows 300,1000,3000 --sets 2 --seed 0``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.holdout import supercon_holdout
from benchmarks.scoring import draws_prediction, metrics
from sbin_loop.features import composition_input_names, fraction_columns
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.surrogate import BNNSurrogate

SETTINGS = {"hurdle": ModelConfig(), "censored": ModelConfig(floor_mass_rows=None)}
"""The product's defaults, and the same without the hurdle."""

COLUMNS = ("mae", "coverage_95", "interval_width_95", "crps", "miscalibration_area_pit")


def scores(config: ModelConfig, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> dict:
    """Fit ``config`` on ``train`` (Tc on ``[0, inf)``) and score 1,000 predictive draws on ``test``."""
    surrogate = BNNSurrogate(
        x.shape[1], ("Tc_K",), ("none",), config, ((0.0, None),), fraction_columns(composition_input_names(True))
    )
    start = time.perf_counter()
    surrogate.fit(x[train], y[train, None], seed=seed)
    seconds = time.perf_counter() - start
    draws = surrogate.predictive_draws(x[test], 1000, seed=1).numpy()[..., 0]  # S x n_test
    return {**metrics(y[test], draws_prediction(draws, y[test]), None), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="300,1000,3000", help="comma-separated training sizes")
    parser.add_argument("--sets", type=int, default=2, help="disjoint training sets per size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fits")
    parser.add_argument("--holdout-seed", type=int, default=12345, help="seed of the holdout permutation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y, test, pool = supercon_holdout(args.holdout_seed, element_fractions=True)
    header = "  ".join(f"{name:>10}" for name in ("MAE", "cov95", "width", "CRPS", "PIT area", "fit s"))
    print(f"{'rows':>6} {'set':>4} {'setting':<9} {header}")
    for n in (int(value) for value in args.rows.split(",")):
        runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
        for k in range(min(args.sets, max(1, len(pool) // n))):
            train = pool[k * n : (k + 1) * n]
            for name, config in SETTINGS.items():
                runs[name].append(scores(config, x, y, train, test, args.seed))
                row = runs[name][-1]
                values = "  ".join(f"{row[key]:10.3f}" for key in (*COLUMNS, "seconds"))
                print(f"{len(train):>6} {k:>4} {name:<9} {values}", flush=True)
        for name, rows in runs.items():
            values = "  ".join(f"{np.mean([row[key] for row in rows]):10.3f}" for key in (*COLUMNS, "seconds"))
            print(f"{n:>6} {'mean':>4} {name:<9} {values}", flush=True)


if __name__ == "__main__":
    main()

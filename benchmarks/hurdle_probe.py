"""What the hurdle at 0 K does at a given training size on the fixed SuperCon holdout (a probe, not a protocol).

Trains the product's ``BNNSurrogate`` with ``ModelConfig()`` defaults (the hurdle from ``floor_mass_rows`` results on:
a random-forest classifier of Tc = 0 beside networks trained on the values above 0 K) and with ``floor_mass_rows:
null`` (networks on every row, censored at 0 K) on the same rows of the bundled SuperCon split outside a fixed
2,000-row holdout (``holdout.py``; the default inputs, Tc on ``[0, inf)``). Prints, per fit, the MAE of the predictive
median, the 95% coverage and mean width of the interval sbin reports (``intervals.bounded_quantiles``: from 0 K to
the 95% quantile where 2.5% of the draws are at 0 K), the CRPS and the miscalibration area of the randomised
probability integral transform (``scoring.py``, which measures calibration at every level and counts the mass at 0 K
as it should), and the mean over the training sets. Training sets of ``n`` rows
are the ``k``-th disjoint block of the remaining rows (``--sets``).

Usage: ``PYTHONPATH=. python benchmarks/hurdle_probe.py --rows 300,1000,3000 --sets 2 --seed 0``.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.holdout import probe_setup, training_sets
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
    return {**metrics(y[test], draws_prediction(draws, y[test], (0.0, None)), None), "seconds": seconds}


def main() -> None:
    args, x, y, test, pool = probe_setup(__doc__.splitlines()[0], "300,1000,3000", 2)
    header = "  ".join(f"{name:>10}" for name in ("MAE", "cov95", "width", "CRPS", "PIT area", "fit s"))
    print(f"{'rows':>6} {'set':>4} {'setting':<9} {header}")
    runs: dict[tuple[int, str], list[dict]] = {}
    for n, k, train in training_sets(pool, args.rows, args.sets):
        for name, config in SETTINGS.items():
            row = scores(config, x, y, train, test, args.seed)
            runs.setdefault((n, name), []).append(row)
            values = "  ".join(f"{row[key]:10.3f}" for key in (*COLUMNS, "seconds"))
            print(f"{len(train):>6} {k:>4} {name:<9} {values}", flush=True)
    for (n, name), rows in runs.items():
        values = "  ".join(f"{np.mean([row[key] for row in rows]):10.3f}" for key in (*COLUMNS, "seconds"))
        print(f"{n:>6} {'mean':>4} {name:<9} {values}", flush=True)


if __name__ == "__main__":
    main()

"""Interval calibration of the BNN trained on a few SuperCon rows, as at the start of every campaign.

Below ``min_validation_rows / validation_fraction`` rows (200 by default) there is no validation split, so the spread
is either left as trained (``calibration_folds=0``) or recalibrated on out-of-fold predictions (the default). For each
training-set size and seed, random rows of the bundled SuperCon Tc split train the model and 2,000 other random rows
are scored: MAE of the predictive median (and of the training mean, the baseline to beat), coverage of the central
95% interval (and how often the value falls below or above it), miscalibration area over 99 levels, mean 95% width
and the fit time.

Usage: ``python benchmarks/small_data_calibration.py [--sizes 30,60,120] [--seeds 3] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from model_accuracy import draws_prediction, metrics, supercon_task

from sbin_loop.config import ModelConfig
from sbin_loop.model.surrogate import BNNSurrogate

SETTINGS = {"uncalibrated": {"calibration_folds": 0}, "out_of_fold": {}}
"""Model settings compared: the spread as trained, and the default (out-of-fold recalibration)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,60,120", help="training-set sizes (below 200: no validation split)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-rows", type=int, default=2000)
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = supercon_task(False, 0, None)
    x, y = task.features, task.target
    results = []
    for size in (int(value) for value in args.sizes.split(",")):
        for seed in range(args.seeds):
            order = np.random.default_rng(1000 + seed).permutation(len(y))
            train, test = order[:size], order[size : size + args.test_rows]
            for name, update in SETTINGS.items():
                surrogate = BNNSurrogate(x.shape[1], ("Tc_K",), ("none",), ModelConfig(**update))
                report = surrogate.fit(x[train], y[train, None], seed=seed)
                draws = surrogate.predictive_draws(x[test], 500, seed=seed + 1).numpy()[:, :, 0]
                lower, upper = np.quantile(draws, [0.025, 0.975], axis=0)
                row = {
                    "setting": name,
                    "n_train": size,
                    "seed": seed,
                    **metrics(y[test], draws_prediction(draws, y[test]), None),
                    "mae_train_mean": float(np.abs(y[test] - y[train].mean()).mean()),  # baseline to beat
                    "below_95": float((y[test] < lower).mean()),
                    "above_95": float((y[test] > upper).mean()),
                    "interval_factor_95": float(surrogate.tail_factor[0, -1]),  # widening of the 95% interval
                    "fit_seconds": report.seconds,
                }
                results.append(row)
                print(
                    f"n={size:<4} seed {seed} {name:<13} MAE {row['mae']:6.2f} K  "
                    f"95% coverage {row['coverage_95']:.3f} (below {row['below_95']:.3f}, above {row['above_95']:.3f})"
                    f"  miscal. {row['miscalibration_area']:.3f}  width {row['interval_width_95']:6.1f} K"
                    f"  fit {row['fit_seconds']:5.1f} s",
                    flush=True,
                )
    print(
        f"\n{'n':<5}{'setting':<14}{'MAE':>8}{'cov. 95%':>10}{'miscal.':>9}{'width':>8}{'fit s':>7}  (mean over seeds)"
    )
    summary = {}
    for size in sorted({row["n_train"] for row in results}):
        for name in SETTINGS:
            rows = [row for row in results if row["n_train"] == size and row["setting"] == name]
            mean = {
                key: float(np.mean([row[key] for row in rows]))
                for key in ("mae", "coverage_95", "miscalibration_area", "interval_width_95", "fit_seconds")
            }
            summary[f"{name}_{size}"] = mean
            print(
                f"{size:<5}{name:<14}{mean['mae']:8.2f}{mean['coverage_95']:10.3f}{mean['miscalibration_area']:9.3f}"
                f"{mean['interval_width_95']:8.1f}{mean['fit_seconds']:7.1f}"
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"runs": results, "summary": summary}, handle, indent=2)


if __name__ == "__main__":
    main()

"""O-vacancy formation energies of ABO3 through the product path: ``sbin model train/predict --sites``.

Protocol: the bundled Emery-Wolverton table (both site assignments of each composition), 5 folds grouped by
composition (seeded), so both assignments of a composition are held out together. Each fold runs the real commands,
``sbin model train --sites "atom a,atom b" --target "e_form oxygen"`` on the other folds and ``sbin model predict
--sites`` on the held-out rows, and scores the physical assignment (``is_lowest_ehull_assignment``) only, as the
published figures do. A random forest (300 trees) on the same inputs is fitted to the same folds beside it.

Usage: ``PYTHONPATH=. python benchmarks/vacancy_sites.py [--folds 5] [--json benchmarks/results/vacancy_sites.json]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import GroupKFold

from sbin_loop.data import bundled_path
from sbin_loop.model.sites import site_inputs

TARGET = "e_form oxygen"
SITES = ("atom a", "atom b")


def sbin(*args: str) -> None:
    """Run ``sbin ARGS`` as a user would; raise on failure."""
    subprocess.run([sys.executable, "-m", "sbin_loop", *args], check=True, capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    table = pd.read_csv(bundled_path("emery_wolverton"))
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    folds = list(GroupKFold(args.folds).split(shuffled, groups=shuffled["composition_key"]))
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for k, (train, test) in enumerate(folds):
            shuffled.iloc[train].to_csv(work / "train.csv", index=False)
            held = shuffled.iloc[test]
            held.to_csv(work / "test.csv", index=False)
            start = time.perf_counter()
            sbin(
                "model",
                "train",
                "--data",
                str(work / "train.csv"),
                "--target",
                TARGET,
                "--out",
                str(work / "m"),
                "--sites",
                ",".join(SITES),
                "--seed",
                str(k),
            )
            fit_seconds = time.perf_counter() - start
            sbin(
                "model",
                "predict",
                "--model",
                str(work / "m"),
                "--input",
                str(work / "test.csv"),
                "--output",
                str(work / "p.csv"),
                "--sites",
                ",".join(SITES),
                "--seed",
                str(k),
            )
            predicted = pd.read_csv(work / "p.csv")
            physical = held["is_lowest_ehull_assignment"].to_numpy(bool)
            y = held[TARGET].to_numpy(float)
            mean = predicted[f"{TARGET}_mean"].to_numpy(float)
            lower, upper = (predicted[f"{TARGET}_{end}"].to_numpy(float) for end in ("lower", "upper"))
            forest = RandomForestRegressor(n_estimators=300, min_samples_leaf=1, random_state=k, n_jobs=2)
            forest.fit(site_inputs(shuffled.iloc[train], "formula", SITES), shuffled.iloc[train][TARGET])
            forest_mean = forest.predict(site_inputs(held, "formula", SITES))
            run = {
                "fold": k,
                "n_train_rows": len(train),
                "n_test_physical": int(physical.sum()),
                "sbin_mae": float(np.abs(mean - y)[physical].mean()),
                "sbin_coverage_95": float(((y >= lower) & (y <= upper))[physical].mean()),
                "sbin_mean_width_95": float((upper - lower)[physical].mean()),
                "forest_mae": float(np.abs(forest_mean - y)[physical].mean()),
                "train_mean_mae": float(np.abs(shuffled.iloc[train][TARGET].mean() - y)[physical].mean()),
                "fit_seconds": fit_seconds,
            }
            runs.append(run)
            print(", ".join(f"{key} {value:.4g}" for key, value in run.items()), flush=True)
    summary = {key: float(np.mean([run[key] for run in runs])) for key in runs[0] if key != "fold"}
    print("mean:", ", ".join(f"{key} {value:.4g}" for key, value in summary.items()))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()

"""O-vacancy formation energies of ABO3 through the product path: ``sbin model train/predict --sites``.

Protocol: the bundled Emery-Wolverton table (both site assignments of each composition), 5 folds grouped by
composition (seeded), so both assignments of a composition are held out together. Each fold runs the real commands,
``sbin model train --sites "atom a,atom b" --target "e_form oxygen"`` on the other folds and ``sbin model predict
--sites`` on the held-out rows, and scores the physical assignment (``is_lowest_ehull_assignment``) only, as the
published figures do. The ``sbin_..._all_rows`` scores take both site assignments of the held-out compositions: the
model is trained, and its intervals calibrated, on both. A random forest (300 trees) on the same inputs is fitted to
the same folds beside it.

Filtered-pool row: the table as a campaign pool with a ``perovskite_filter`` (``sbin_loop.space.pool_perovskites``)
places each composition on its A and B sites itself, and its feature matrix (composition descriptors, the perovskite
rule descriptors, the occupancy-weighted A- and B-site elemental properties) is exactly what a campaign's model sees.
On the same folds, sbin's default ``BNNSurrogate`` (and a 300-tree forest) trains on the physical-assignment rows of
the training compositions the filter keeps, one row per composition as in a campaign, and is scored on the held-out
kept compositions. For comparison the ``--sites`` model above is scored on that subset too, and a default
``BNNSurrogate`` is trained on the ``--sites`` inputs of the same kept rows (the tabulated A and B elements in
place of the filter's placement), and one on the pool's features without the elemental site properties.

``sbin model train`` decides on the element fractions (the atomic fraction of every element after the composition
descriptors) as it does for a user: on by default. With
``--element-fractions`` or ``--no-element-fractions`` both commands get that flag. The forest gets the inputs the
trained model records; the filtered-pool rows are computed without the fractions either way.

Usage: ``PYTHONPATH=. python benchmarks/vacancy_sites.py [--folds 5] [--[no-]element-fractions] [--json
benchmarks/results/vacancy_sites.json]``.
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

from sbin_loop.candidates import CandidatePool
from sbin_loop.data import bundled_path
from sbin_loop.extra_descriptors import site_descriptor_names
from sbin_loop.model.checkpoint import read_metadata
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.intervals import candidate_intervals
from sbin_loop.model.sites import input_names, site_inputs
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.space import parse_formula
from sbin_loop.space.config import PoolPerovskiteFilter, PoolSpaceConfig
from sbin_loop.space.pool import composition_key
from sbin_loop.space.pool_perovskites import pool_extra_names
from sbin_loop.space.spaces import PoolSpace

TARGET = "e_form oxygen"
SITES = ("atom a", "atom b")


def sbin(*args: str) -> None:
    """Run ``sbin ARGS`` as a user would; raise on failure."""
    subprocess.run([sys.executable, "-m", "sbin_loop", *args], check=True, capture_output=True, text=True)


def pool_features(formulas: pd.Series) -> np.ndarray:
    """Each row's features in the bundled table as a perovskite-filtered campaign pool (NaN rows where not kept)."""
    config = PoolSpaceConfig(source="bundled:emery_wolverton", perovskite_filter=PoolPerovskiteFilter())
    kept = PoolSpace(config).frame
    pool = CandidatePool.from_frame(kept, pool_extra_names(config))
    block = pool.take(np.arange(len(pool)))
    row_of = {composition_key(parse_formula(formula)): row for row, formula in enumerate(block.formulas)}
    features = np.full((len(formulas), block.features.shape[1]), np.nan, dtype=np.float32)
    for position, formula in enumerate(formulas):
        row = row_of.get(composition_key(parse_formula(str(formula))))
        if row is not None:
            features[position] = block.features[row]
    return features


def bnn_scores(features: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> dict:
    """MAE, 95% coverage and mean width of the default ``BNNSurrogate`` (intervals as ``sbin model predict``)."""
    surrogate = BNNSurrogate(features.shape[1], (TARGET,), ("none",), ModelConfig())
    report = surrogate.fit(features[train], y[train, None], seed)
    draws = surrogate.predictive_draws(features[test], 1000, seed).numpy()[..., 0]
    intervals = candidate_intervals(draws, 0.95, surrogate.bounds[0])
    mean, lower, upper = (np.array([getattr(i, end) for i in intervals]) for end in ("mean", "lower", "upper"))
    return {
        "mae": float(np.abs(mean - y[test]).mean()),
        "coverage_95": float(((y[test] >= lower) & (y[test] <= upper)).mean()),
        "mean_width_95": float((upper - lower).mean()),
        "fit_seconds": report.seconds,
    }


def pool_scores(
    pool: np.ndarray, sites: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int
) -> dict:
    """The filtered-pool row: sbin and a forest on the pool's features, sbin on the same rows' ``--sites`` inputs.

    The ``--sites`` inputs hold the tabulated A and B elements of each row in place of the filter's placement; the
    pool's features without its elemental site properties measure what those add.
    """
    forest = RandomForestRegressor(n_estimators=300, min_samples_leaf=1, random_state=seed, n_jobs=2)
    forest.fit(pool[train], y[train])
    n_elemental = len(site_descriptor_names())
    return {
        "n_pool_train": len(train),
        "n_pool_test": len(test),
        **{f"pool_sbin_{key}": value for key, value in bnn_scores(pool, y, train, test, seed).items()},
        "pool_forest_mae": float(np.abs(forest.predict(pool[test]) - y[test]).mean()),
        "pool_rows_sites_sbin_mae": bnn_scores(sites, y, train, test, seed)["mae"],
        "pool_without_site_elements_sbin_mae": bnn_scores(pool[:, :-n_elemental], y, train, test, seed)["mae"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--element-fractions",
        action=argparse.BooleanOptionalAction,
        help="pass this flag to both commands (default: neither, sbin model train's own choice)",
    )
    args = parser.parse_args()
    fractions = (
        [] if args.element_fractions is None else [f"--{'' if args.element_fractions else 'no-'}element-fractions"]
    )
    table = pd.read_csv(bundled_path("emery_wolverton"))
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    folds = list(GroupKFold(args.folds).split(shuffled, groups=shuffled["composition_key"]))
    features = pool_features(shuffled["formula"])
    sites = site_inputs(shuffled, "formula", SITES)
    pool_rows = shuffled["is_lowest_ehull_assignment"].to_numpy(bool) & np.isfinite(features).all(axis=1)
    n_physical = int(shuffled["is_lowest_ehull_assignment"].sum())
    print(f"filtered pool: {pool_rows.sum()} of {n_physical} physical-assignment rows kept", flush=True)
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
                *fractions,
            )
            fit_seconds = time.perf_counter() - start
            with_fractions = read_metadata(work / "m")["feature_names"] == input_names(True, True)
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
                *fractions,
            )
            predicted = pd.read_csv(work / "p.csv")
            physical = held["is_lowest_ehull_assignment"].to_numpy(bool)
            y = held[TARGET].to_numpy(float)
            mean = predicted[f"{TARGET}_mean"].to_numpy(float)
            lower, upper = (predicted[f"{TARGET}_{end}"].to_numpy(float) for end in ("lower", "upper"))
            forest = RandomForestRegressor(n_estimators=300, min_samples_leaf=1, random_state=k, n_jobs=2)
            forest_train = site_inputs(shuffled.iloc[train], "formula", SITES, with_fractions)
            forest.fit(forest_train, shuffled.iloc[train][TARGET])
            forest_mean = forest.predict(site_inputs(held, "formula", SITES, with_fractions))
            run = {
                "fold": k,
                "element_fractions": with_fractions,
                "n_train_rows": len(train),
                "n_test_physical": int(physical.sum()),
                "sbin_mae": float(np.abs(mean - y)[physical].mean()),
                "sbin_coverage_95": float(((y >= lower) & (y <= upper))[physical].mean()),
                "sbin_mean_width_95": float((upper - lower)[physical].mean()),
                "sbin_mae_all_rows": float(np.abs(mean - y).mean()),
                "sbin_coverage_95_all_rows": float(((y >= lower) & (y <= upper)).mean()),
                "sbin_mean_width_95_all_rows": float((upper - lower).mean()),
                "forest_mae": float(np.abs(forest_mean - y)[physical].mean()),
                "train_mean_mae": float(np.abs(shuffled.iloc[train][TARGET].mean() - y)[physical].mean()),
                "fit_seconds": fit_seconds,
                "sbin_mae_pool_kept": float(np.abs(mean - y)[pool_rows[test]].mean()),
            }
            pool_train, pool_test = train[pool_rows[train]], test[pool_rows[test]]
            target = shuffled[TARGET].to_numpy(float)
            run |= pool_scores(features, sites, target, pool_train, pool_test, k)
            runs.append(run)
            print(", ".join(f"{key} {value:.4g}" for key, value in run.items()), flush=True)
    summary = {
        key: float(np.mean([run[key] for run in runs])) for key in runs[0] if key not in ("fold", "element_fractions")
    }
    print("mean:", ", ".join(f"{key} {value:.4g}" for key, value in summary.items()))
    if args.json:
        document = {"fractions_flag": fractions[0] if fractions else "default", "runs": runs, "summary": summary}
        args.json.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()

"""Accuracy and calibration of sbin's BNN surrogate against baselines, on the same cross-validation folds.

Tasks:
- ``tc_random`` / ``tc_grouped``: superconducting Tc of the bundled SuperCon training split (unique compositions,
  median Tc of duplicates), 5-fold CV with shuffled folds, and with folds grouped by element set (extrapolation to
  unseen chemical systems). Inputs: sbin's composition descriptors (``featurize_compositions``, what ``sbin model
  train`` and pool campaigns give the model). Tc is modelled in kelvin on its support ``[0, inf)`` (``--bounds 0,``,
  as in the shipped configs).
- ``vacancy``: O-vacancy formation energy of ABO3 perovskites (Emery & Wolverton), 5-fold CV grouped by composition
  (both site assignments of a composition stay in one fold). Inputs: those of ``sbin model train --sites`` (the
  composition descriptors, then the A- and B-site elements' properties, ``sbin_loop.model.sites.site_inputs``). Every
  training row is used (the site inputs tell the two assignments apart); only rows with
  ``is_lowest_ehull_assignment`` are scored.

Every task's inputs hold the atomic fraction of every element after the composition descriptors (before the site
columns), as ``sbin model train`` and campaigns do by default (``features.element_fractions``); ``--no-element-
fractions`` leaves them out. They are built by the product's functions (``sbin_loop.model.sites.formula_inputs``
and ``site_inputs``), and every model sees them; sbin gets their positions (``BNNSurrogate``'s ``fraction_inputs``).

Models: sbin (``ModelConfig()`` defaults, as ``sbin run`` and ``sbin model train`` use them: every row of a training
fold trains the cross-fitted members, whose out-of-fold predictions inside that training fold choose the stopping
point, noise level and recalibration; the test fold is never seen), random forest (scikit-learn), gradient-boosted
trees (LightGBM; the number of trees and the loss, squared or absolute error, chosen on a 10% split of the training
fold, then refitted on all of it), exact GP (BoTorch
``SingleTaskGP`` on a random subsample of each training fold), k nearest neighbours on standardised descriptors (k
chosen by 3-fold CV inside each training fold), ridge regression (empirical linear model) and the training mean.
Point predictions are predictive medians (optimal for absolute error); intervals are central predictive quantiles;
NLL uses a Gaussian with the predictive mean and standard deviation. The random forest, boosted trees and nearest
neighbours give points only. Every model sees the same inputs.

With ``--models`` only the named models are fitted; ``--merge PATH`` then keeps every other model's result, and every
task not in ``--tasks``, from an earlier JSON of the same protocol (same seed, inputs, ``--quick`` and ``--rows``,
which is checked), so a change to sbin is re-measured without refitting what it does not affect. The JSON's
``merged_from`` lists the models taken over, and their seconds are those of the run that produced them.

Usage: ``python benchmarks/model_accuracy.py [--quick] [--[no-]element-fractions] [--models sbin --merge PATH] [--json
PATH]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scoring import Prediction, draws_prediction, gaussian_prediction, metrics
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sbin_loop.data import bundled_path
from sbin_loop.features import fraction_columns
from sbin_loop.features.config import FeaturesConfig
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.sites import formula_inputs, input_names, site_inputs
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.space import parse_formula, read_formula_table

SEED_CONFIG = ModelConfig(
    fan_in_scaling=False,
    kl_weight=1.0,
    kl_rows=None,
    quantile_rows=None,
    boosted_input_rows=None,
    learning_rate=1e-3,
    learning_rate_schedule="constant",
    batch_size=32,
    noise="homoscedastic",
    nll_beta=0.0,
    ensemble_size=1,
    recalibrate=False,
)
"""The seed's model (plain ELBO, unit prior, batch 32, one network), to report what the defaults change."""


@dataclass
class Task:
    """One regression problem: descriptors, target, CV folds and which test rows are scored."""

    name: str
    features: np.ndarray
    target: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    scored: np.ndarray
    groups: np.ndarray | None
    unit: str
    bounds: tuple[float | None, float | None] | None = None
    fraction_inputs: tuple[int, ...] = ()  # positions of the element fractions (BNNSurrogate's fraction_inputs)


def fit_sbin(task: Task, train: np.ndarray, test: np.ndarray, seed: int, n_draws: int) -> tuple[Prediction, float]:
    surrogate = BNNSurrogate(
        task.features.shape[1], (task.name,), ("none",), ModelConfig(), (task.bounds,), task.fraction_inputs
    )
    groups = task.groups[train] if task.groups is not None else None
    report = surrogate.fit(task.features[train], task.target[train, None], seed=seed, groups=groups)
    draws = surrogate.predictive_draws(task.features[test], n_draws, seed=seed + 1).numpy()[:, :, 0]
    return draws_prediction(draws, task.target[test], task.bounds or (None, None)), report.seconds


def fit_forest(task: Task, train: np.ndarray, test: np.ndarray, seed: int, n_trees: int) -> Prediction:
    forest = RandomForestRegressor(n_trees, max_features=0.33, n_jobs=2, random_state=seed)
    forest.fit(task.features[train], task.target[train])
    return Prediction(forest.predict(task.features[test]))


def fit_boosting(task: Task, train: np.ndarray, test: np.ndarray, seed: int, threads: int) -> Prediction:
    """LightGBM; trees and loss chosen by early stopping on a 10% split of the training fold, then refitted on all."""
    import lightgbm

    rng = np.random.default_rng(seed)
    inner = rng.permutation(train)
    held, fitted = inner[: max(1, len(inner) // 10)], inner[max(1, len(inner) // 10) :]
    settings = dict(
        learning_rate=0.03, num_leaves=63, min_child_samples=5, subsample=0.8, subsample_freq=1,
        colsample_bytree=0.5, n_jobs=threads, random_state=seed, verbose=-1,
    )  # fmt: skip
    best = None
    for objective in ("regression", "regression_l1"):
        model = lightgbm.LGBMRegressor(n_estimators=5000, objective=objective, **settings)
        model.fit(
            task.features[fitted], task.target[fitted],
            eval_X=(task.features[held],), eval_y=(task.target[held],), eval_metric="l1",
            callbacks=[lightgbm.early_stopping(200, verbose=False)],
        )  # fmt: skip
        error = float(np.abs(model.predict(task.features[held]) - task.target[held]).mean())
        if best is None or error < best[0]:
            best = (error, objective, max(1, model.best_iteration_ or 5000))
    _, objective, n_trees = best
    model = lightgbm.LGBMRegressor(n_estimators=n_trees, objective=objective, **settings)
    model.fit(task.features[train], task.target[train])
    return Prediction(model.predict(task.features[test]))


def fit_neighbours(task: Task, train: np.ndarray, test: np.ndarray) -> Prediction:
    """Distance-weighted k-NN; on random folds of SuperCon most test compositions have a near twin (a doping series)."""
    search = GridSearchCV(
        make_pipeline(StandardScaler(), KNeighborsRegressor(weights="distance")),
        {"kneighborsregressor__n_neighbors": [1, 2, 3, 5, 8]},
        scoring="neg_mean_absolute_error",
        cv=3,
    )
    search.fit(task.features[train], task.target[train])
    return Prediction(search.predict(task.features[test]))


def fit_gp(task: Task, train: np.ndarray, test: np.ndarray, seed: int, subsample: int) -> Prediction:
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    rows = np.random.default_rng(seed).permutation(train)[:subsample]
    x = task.features[rows].astype(np.float64)
    varying = x.std(axis=0) > 1e-8
    train_x = torch.as_tensor(x[:, varying])
    train_y = torch.as_tensor(task.target[rows, None].astype(np.float64))
    model = SingleTaskGP(
        train_x, train_y, input_transform=Normalize(train_x.shape[1]), outcome_transform=Standardize(1)
    )
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    test_x = torch.as_tensor(task.features[test][:, varying].astype(np.float64))
    with torch.no_grad():
        posterior = model.posterior(test_x, observation_noise=True)
        mean = posterior.mean[:, 0].numpy()
        std = posterior.variance[:, 0].clamp_min(1e-12).sqrt().numpy()
    return gaussian_prediction(mean, std, task.target[test])


def fit_ridge(task: Task, train: np.ndarray, test: np.ndarray) -> Prediction:
    mean, std = task.features[train].mean(axis=0), task.features[train].std(axis=0) + 1e-8
    model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit((task.features[train] - mean) / std, task.target[train])
    residual = task.target[train] - model.predict((task.features[train] - mean) / std)
    prediction = model.predict((task.features[test] - mean) / std)
    return gaussian_prediction(prediction, np.full(len(test), residual.std()), task.target[test])


def fit_mean(task: Task, train: np.ndarray, test: np.ndarray) -> Prediction:
    values = task.target[train]
    return gaussian_prediction(np.full(len(test), values.mean()), np.full(len(test), values.std()), task.target[test])


def supercon_task(grouped: bool, seed: int, limit: int | None, with_fractions: bool = False) -> Task:
    frame = read_formula_table("bundled:supercon", value_columns=("Tc_K",)).frame
    if limit is not None:
        frame = frame.sample(n=min(limit, len(frame)), random_state=seed).reset_index(drop=True)
    compositions = [parse_formula(formula) for formula in frame["formula"]]
    features = formula_inputs(frame["formula"], with_fractions)
    groups = np.array(["-".join(sorted(element.symbol for element in c.elements)) for c in compositions])
    if grouped:
        folds = list(GroupKFold(5).split(features, groups=groups))
    else:
        folds = list(KFold(5, shuffle=True, random_state=seed).split(features))
    return Task(
        "tc_grouped" if grouped else "tc_random",
        features,
        frame["Tc_K"].to_numpy(dtype=np.float64),
        folds,
        np.ones(len(frame), dtype=bool),
        groups if grouped else None,
        "K",
        (0.0, None),
        fraction_columns(input_names(False, with_fractions)),
    )


def vacancy_task(seed: int, limit: int | None, with_fractions: bool = False) -> Task:
    frame = pd.read_csv(bundled_path("emery_wolverton"))
    if limit is not None:
        keys = frame["composition_key"].drop_duplicates().sample(frac=1.0, random_state=seed)[: limit // 2]
        frame = frame[frame["composition_key"].isin(keys)].reset_index(drop=True)
    features = site_inputs(frame, "formula", ("atom a", "atom b"), with_fractions)
    groups = frame["composition_key"].to_numpy()
    folds = list(GroupKFold(5).split(features, groups=groups))
    return Task(
        "vacancy",
        features,
        frame["e_form oxygen"].to_numpy(dtype=np.float64),
        folds,
        frame["is_lowest_ehull_assignment"].to_numpy(dtype=bool),
        groups,
        "eV",
        None,
        fraction_columns(input_names(True, with_fractions)),
    )


MODELS = ("sbin", "random_forest", "boosted_trees", "gp_subsample", "neighbours", "ridge", "train_mean")


def run_task(task: Task, args: argparse.Namespace) -> dict:
    high = 77.0 if task.name.startswith("tc") else None
    pooled: dict[str, list[tuple[np.ndarray, Prediction]]] = {}
    seconds: dict[str, float] = {}
    for fold, (train, test) in enumerate(task.folds):
        seed = args.seed + fold
        test = test[task.scored[test]]
        y = task.target[test]
        runners = {
            "sbin": lambda train=train, test=test, seed=seed: fit_sbin(task, train, test, seed, args.draws)[0],
            "random_forest": lambda train=train, test=test, seed=seed: fit_forest(task, train, test, seed, args.trees),
            "boosted_trees": lambda train=train, test=test, seed=seed: fit_boosting(task, train, test, seed, 2),
            "gp_subsample": lambda train=train, test=test, seed=seed: fit_gp(task, train, test, seed, args.gp_rows),
            "neighbours": lambda train=train, test=test: fit_neighbours(task, train, test),
            "ridge": lambda train=train, test=test: fit_ridge(task, train, test),
            "train_mean": lambda train=train, test=test: fit_mean(task, train, test),
        }
        for name, runner in runners.items():
            if name not in args.models:
                continue
            start = time.perf_counter()
            prediction = runner()
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            pooled.setdefault(name, []).append((y, prediction))
            print(f"  {task.name} fold {fold} {name}: MAE {np.abs(prediction.point - y).mean():.3f}", flush=True)
    results = {}
    for name, parts in pooled.items():
        folds = [metrics(y, prediction, high) for y, prediction in parts]
        summary = {key: float(np.mean([fold[key] for fold in folds])) for key in folds[0]}
        summary["mae_fold_std"] = float(np.std([fold["mae"] for fold in folds]))
        summary["seconds_all_folds"] = seconds[name]
        results[name] = summary
    return results


def print_table(task: str, unit: str, results: dict) -> None:
    columns = [
        "mae", "rmse", "r2", "pearson_r", "coverage_95", "interval_width_95", "median_width_95", "winkler_95",
        "miscalibration_area", "miscalibration_area_pit", "nll_gaussian", "crps", "sharpness", "within_5pct",
        "within_5pct_tc_gt_10K", "mae_tc_gt_77K", "seconds_all_folds",
    ]  # fmt: skip
    short = {"miscalibration_area": "miscal", "miscalibration_area_pit": "miscal_pit"}
    present = [c for c in columns if any(c in r for r in results.values())]
    print(f"\n{task} (errors in {unit}, mean over 5 folds)")
    print(f"{'model':<15}" + "".join(f"{short.get(c, c)[:13]:>14}" for c in present))
    for name, result in results.items():
        print(f"{name:<15}" + "".join(f"{result.get(c, float('nan')):>14.3f}" for c in present))


def load_earlier(path: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """An earlier result JSON whose baselines ``--merge`` keeps; refused unless its protocol matches this run's."""
    with open(path) as handle:
        earlier = json.load(handle)
    mine = {"quick": args.quick, "rows": args.rows, "element_fractions": args.element_fractions, "seed": args.seed}
    theirs = {key: earlier.get(key, {"element_fractions": False, "seed": 0}.get(key)) for key in mine}
    if mine != theirs:
        parser.error(f"--merge: {path} was run with {theirs}, this run is {mine}")
    return earlier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="subsample data and baselines (CI-sized run)")
    parser.add_argument("--json", help="write all results to this JSON file")
    parser.add_argument("--rows", type=int, help="subsample size of each task in --quick mode (default 1500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--element-fractions",
        action=argparse.BooleanOptionalAction,
        default=FeaturesConfig().element_fractions,
        help="add the element fractions to every task's inputs, or not (default: the product's default, on)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (more can be slower on a busy machine)")
    parser.add_argument("--tasks", default="tc_random,tc_grouped,vacancy", help="comma-separated tasks to run")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models to fit")
    parser.add_argument("--merge", help="earlier JSON of the same protocol whose other models' results are kept")
    args = parser.parse_args()
    args.models = args.models.split(",")
    if set(args.models) - set(MODELS):
        parser.error(f"--models: unknown {sorted(set(args.models) - set(MODELS))}; known: {', '.join(MODELS)}")
    limit = (args.rows or 1500) if args.quick else None
    earlier = load_earlier(args.merge, args, parser) if args.merge else None
    torch.set_num_threads(args.threads)
    args.draws = 200 if args.quick else 500
    args.trees = 50 if args.quick else 200
    args.gp_rows = 200 if args.quick else 500

    config = ModelConfig()
    changed = {k: v for k, v in config.model_dump().items() if v != getattr(SEED_CONFIG, k)}
    print(f"sbin model: ModelConfig() defaults; changed from the seed's model: {changed}")
    output = {
        "config": config.model_dump(mode="json"),
        "changed_from_seed": changed,
        "quick": args.quick,
        "element_fractions": args.element_fractions,
        "seed": args.seed,
        "rows": args.rows,
    }
    start = time.perf_counter()
    builders = {
        "tc_random": lambda: supercon_task(False, args.seed, limit, args.element_fractions),
        "tc_grouped": lambda: supercon_task(True, args.seed, limit, args.element_fractions),
        "vacancy": lambda: vacancy_task(args.seed, limit, args.element_fractions),
    }
    unknown = set(args.tasks.split(",")) - set(builders)
    if unknown:
        parser.error(f"--tasks: unknown {sorted(unknown)}; known: {', '.join(builders)}")
    for name in args.tasks.split(","):
        task = builders[name]()
        results = run_task(task, args)
        if earlier is not None:
            kept = {name: result for name, result in earlier.get(task.name, {}).items() if name not in results}
            merged = {**kept, **results}
            results = {name: merged[name] for name in MODELS if name in merged}
            output.setdefault("merged_from", {})[task.name] = {"path": args.merge, "models": sorted(kept)}
        print_table(task.name, task.unit, results)
        output[task.name] = results
    for name in builders if earlier is not None else ():
        if name not in output and name in earlier:  # a task not run keeps every model's earlier result
            output[name] = earlier[name]
            output.setdefault("merged_from", {})[name] = {"path": args.merge, "models": sorted(earlier[name])}

    if not args.quick and "sbin" in args.models:
        full = supercon_task(False, args.seed, None, args.element_fractions)
        surrogate = BNNSurrogate(
            full.features.shape[1], ("Tc_K",), ("none",), config, (full.bounds,), full.fraction_inputs
        )
        report = surrogate.fit(full.features, full.target[:, None], seed=args.seed)
        output["tc_full_train_seconds"] = report.seconds
        print(f"\nsbin training time on the full Tc split ({len(full.target)} rows): {report.seconds:.1f} s")
    output["total_seconds"] = time.perf_counter() - start
    print(f"total time {output['total_seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(output, handle, indent=2)


if __name__ == "__main__":
    main()

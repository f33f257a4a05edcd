"""``sbin model train`` and ``sbin model predict``; the main app mounts them with ``app.add_typer(model_app)``."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from pydantic import ValidationError

from sbin_loop.cli_errors import reports_errors
from sbin_loop.config import ConfigError, ObjectiveConfig
from sbin_loop.config_base import Bounds
from sbin_loop.features.config import FeaturesConfig
from sbin_loop.limits import MAX_SEED
from sbin_loop.logs import configure_logging
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.intervals import candidate_intervals, summarise_draws
from sbin_loop.model.sites import (
    formula_inputs,
    input_names,
    merged_site_rows,
    parse_sites,
    site_inputs,
    site_problem,
    site_rows,
)
from sbin_loop.model.splits import held_out_split
from sbin_loop.space import DataSourceError, InvalidFormulaError, parse_formula, read_formula_table
from sbin_loop.space.pool import composition_key

model_app = typer.Typer(help="Train and apply the BNN surrogate outside a campaign.", no_args_is_help=True)

LARGEST_TARGET = float(np.finfo(np.float32).max)
"""Largest magnitude of a training target: the network computes in float32."""

MAX_LISTED_LINES = 10
"""Most line numbers named in one error; the rest are counted."""

Seed = Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED)]
Sites = Annotated[
    str | None,
    typer.Option(
        "--sites",
        help="A_COLUMN,B_COLUMN: columns naming the A- and B-site species of ABO3 rows; the model then takes both "
        "sites' elemental properties, and the site assignments of one composition are different inputs (kept "
        "together in one cross-fitting fold and on one side of --test-fraction).",
    ),
]
ElementFractions = Annotated[
    bool | None,
    typer.Option(
        "--element-fractions/--no-element-fractions",
        help="Add the atomic fraction of every element as inputs, after the composition descriptors (ElemNet's "
        "input). Train: on by default, as in campaigns (features.element_fractions). Predict: by default as the "
        "model was trained.",
        show_default=False,
    ),
]


def _require_writable(path: Path, option: str, directory: bool) -> None:
    """Refuse an output path that exists as the wrong kind, or whose nearest existing folder cannot be written.

    Checked before training or predicting, so a bad path fails at once instead of after the work.

    Raises:
        ConfigError: Naming the option and the path.
    """
    if path.exists():
        if directory != path.is_dir():
            raise ConfigError(f"{option}: {path} exists and is {'not ' if directory else ''}a directory")
        existing = path if directory else path.parent
    else:
        existing = path.parent
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"{option}: {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: {path}: {existing} is not writable")


def _lines(positions: np.ndarray) -> str:
    """CSV line numbers (header is line 1) of rows by position, the first ``MAX_LISTED_LINES`` of them."""
    listed = ", ".join(str(int(position) + 2) for position in positions[:MAX_LISTED_LINES])
    more = len(positions) - MAX_LISTED_LINES
    return listed + (f" and {more} more" if more > 0 else "")


def parse_bounds(text: str | None) -> Bounds | None:
    """``--bounds LOW,HIGH`` (either may be empty: ``0,``) as a validated support, or None for ``,`` or no option.

    Raises:
        ConfigError: Naming ``--bounds`` and what is wrong.
    """
    if text is None:
        return None
    ends = text.split(",")
    if len(ends) != 2:
        raise ConfigError(f"--bounds: expected LOW,HIGH (either may be empty, e.g. 0,), got {text!r}")
    try:
        bounds = tuple(float(end) if end.strip() else None for end in ends)
        return ObjectiveConfig(name="target", bounds=bounds).bounds
    except ValueError as error:
        reason = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
        raise ConfigError(f"--bounds: {reason} (got {text!r})") from None


def check_targets(path: Path, target: str, bounds: Bounds | None = None) -> None:
    """Refuse a table whose target column holds values the model cannot learn.

    Infinite values, values beyond float32 range and values outside ``bounds`` are refused. Missing and non-numeric
    cells are not refused here: those rows are skipped like unparsable formulas.

    Raises:
        DataSourceError: Naming the CSV lines of the offending rows.
    """
    column = pd.read_csv(path, usecols=[target], dtype=str, keep_default_na=False)[target]
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    present = ~np.isnan(values)
    bad = np.flatnonzero(present & ~(np.abs(values) <= LARGEST_TARGET))
    if len(bad):
        raise DataSourceError(
            f"{path}: {target} is infinite or beyond float32 range (±{LARGEST_TARGET:.3g}) on line(s) {_lines(bad)}; "
            "fix or remove those rows"
        )
    low, high = bounds or (None, None)
    outside = present & ((values < (-np.inf if low is None else low)) | (values > (np.inf if high is None else high)))
    if outside.any():
        raise DataSourceError(
            f"{path}: {target} lies outside --bounds [{low}, {high}] on line(s) {_lines(np.flatnonzero(outside))}; "
            "fix those rows or widen the bounds"
        )


@model_app.command("train")
@reports_errors
def model_train(
    data: Annotated[Path, typer.Option("--data", help="CSV with a formula column and the target column.")],
    target: Annotated[str, typer.Option("--target", help="Column to learn.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the model checkpoint.")],
    formula_column: Annotated[str, typer.Option("--formula-column")] = "formula",
    seed: Seed = 0,
    transform: Annotated[
        str, typer.Option("--transform", help="none, log1p, or auto (log1p if all values >= 0).")
    ] = "none",
    test_fraction: Annotated[
        float,
        typer.Option(
            "--test-fraction",
            min=0.0,
            max=0.5,
            help="Share held out (seeded) and never trained on, to report test MAE and interval coverage (default: "
            "none; every row is given to the model).",
        ),
    ] = 0.0,
    bounds: Annotated[
        str | None,
        typer.Option(
            "--bounds",
            help="The target's physical support LOW,HIGH; either may be empty (Tc: --bounds 0,). Stored with the "
            "model: every prediction and interval stays inside it.",
        ),
    ] = None,
    sites: Sites = None,
    element_fractions: ElementFractions = None,
) -> None:
    """Train the BNN on a table of formulas and measured values; duplicates are merged (median).

    Every row trains the model: its ensemble members are cross-fitted, and their out-of-fold predictions choose the
    stopping point, the noise level and the recalibration of the intervals. ``--test-fraction`` holds out a seeded
    test share, never trained on, and prints its MAE and interval coverage. With ``--sites`` the rows of one
    composition (its site assignments) share a cross-fitting fold and a side of the test split, so the out-of-fold and
    test errors are errors on compositions the model has not seen. The inputs hold the element fractions unless
    ``--no-element-fractions`` is given, as a campaign's do by default. ``none`` is the default transform:
    modelling Tc as ``log1p`` was measured to raise the MAE in kelvin (benchmarks/model_accuracy.py). Rows with an
    infinite target, one beyond float32 range or one outside ``--bounds`` are refused with their line numbers; a
    model whose training diverged is not saved.
    """
    configure_logging(None)
    if transform not in ("log1p", "none", "auto"):
        raise ConfigError(f"--transform: must be none, log1p or auto, got {transform!r}")
    support = parse_bounds(bounds)
    _require_writable(out, "--out", directory=True)
    site_columns = parse_sites(sites)
    table = read_formula_table(str(data), formula_column, (target,), require_values=True)
    source = table.source or data
    check_targets(source, target, support)
    if site_columns is None:
        frame, n_rejected, n_merged = table.frame.dropna(subset=[target]), len(table.rejected), table.n_duplicate_rows
    else:
        raw = pd.read_csv(source, dtype=str, keep_default_na=False)
        usable, skipped = site_rows(raw, formula_column, site_columns, source)
        for line in skipped[:MAX_LISTED_LINES]:
            typer.secho(f"{source.name} {line}: skipped", fg=typer.colors.YELLOW, err=True)
        frame, n_merged = merged_site_rows(usable, formula_column, target, site_columns)
        n_rejected = len(skipped)
    if len(frame) < 2:
        raise DataSourceError(f"{data}: fewer than 2 usable rows with a numeric {target!r}")
    values = frame[target].to_numpy(dtype=float)
    if transform == "auto":
        transform = "log1p" if (values >= 0).all() else "none"
    groups = None  # without --sites the rows are one per composition (duplicates merged)
    if site_columns is not None:  # both site assignments of a composition: one fold, one side of the test split
        groups = np.array([composition_key(parse_formula(str(formula))) for formula in frame[formula_column]])
    test, train = held_out_split(len(values), test_fraction, seed, groups)
    n_test = len(test)
    config = ModelConfig()
    if element_fractions is None:
        element_fractions = FeaturesConfig().element_fractions
    if site_columns is None:
        features = formula_inputs(frame["formula"], element_fractions)
    else:
        features = site_inputs(frame, formula_column, site_columns, element_fractions)
    names = input_names(site_columns is not None, element_fractions)
    from sbin_loop.features import fraction_columns  # torch loads here, once the arguments and rows are checked
    from sbin_loop.model.checkpoint import save_surrogate
    from sbin_loop.model.surrogate import BNNSurrogate

    surrogate = BNNSurrogate(features.shape[1], (target,), (transform,), config, (support,), fraction_columns(names))
    try:
        report = surrogate.fit(features[train], values[train, None], seed, None if groups is None else groups[train])
    except ValueError as error:
        raise ConfigError(f"{target}: {error}") from None
    save_surrogate(surrogate, out, names)
    typer.echo(
        f"trained on {report.n_train} compositions (all of them; {report.n_held_out} out-of-fold predictions chose "
        f"the stopping point and noise level, {report.n_calibration} recalibrated the spread) ({n_rejected} rows "
        f"rejected, {n_merged} duplicates merged), transform {transform}, support "
        f"{list(support) if support else 'unbounded'}, inputs "
        f"{'quantile-scaled' if surrogate.x_quantile else 'standardised'} (model.quantile_rows), element fractions "
        f"{'on' if element_fractions else 'off'} (--element-fractions), boosted-tree inputs "
        f"{'on' if any(surrogate.boosted.fitted) else 'off'} (model.boosted_input_rows), classifier of values at "
        f"the lower bound {'on' if any(surrogate.floor_mass.fitted) else 'off'} (model.floor_mass_rows), "
        f"{report.steps} steps in {report.seconds:.1f} s; saved to {out}"
    )
    if n_test:
        draws = surrogate.predictive_draws(features[test], 1000, seed).numpy()[..., 0]  # S x n_test
        summary = summarise_draws(draws, 0.95, surrogate.bounds[0])
        lower, upper = summary.quantile_interval
        measured = values[test]
        typer.echo(
            f"held-out test ({n_test} compositions): MAE {np.abs(summary.median - measured).mean():.3g}, "
            f"95% interval coverage {((measured >= lower) & (measured <= upper)).mean():.3f}"
        )


def _check_inputs(model: Path, feature_names: list[str] | None, sites: bool, fractions: bool | None) -> bool:
    """Whether to compute element fractions for a model; refuses one whose inputs this sbin cannot compute so.

    ``fractions`` None (neither ``--element-fractions`` flag) takes whatever the model was trained with; a flag given
    must match it. A checkpoint that records no input names is not checked (and takes no fractions unless asked).

    Raises:
        ConfigError: Naming ``--sites`` when it is given for a model trained without site columns or missing for one
            trained with them, and ``--element-fractions`` when the flag given contradicts the model.
        CheckpointError: If the model was trained on other descriptors altogether.
    """
    if feature_names is None:
        return bool(fractions)
    for trained_sites, trained_fractions in itertools.product((False, True), repeat=2):
        if feature_names != input_names(trained_sites, trained_fractions):
            continue
        problems = []
        if trained_sites != sites:
            needed = "give --sites A_COLUMN,B_COLUMN" if trained_sites else "leave --sites out"
            trained = "with" if trained_sites else "without"
            problems.append(f"--sites: {model} was trained {trained} site columns; {needed}")
        if fractions is not None and trained_fractions != fractions:
            flag = "--element-fractions" if trained_fractions else "--no-element-fractions"
            trained = "with" if trained_fractions else "without"
            problems.append(
                f"--element-fractions: {model} was trained {trained} element fractions; give {flag} or neither flag"
            )
        if problems:
            raise ConfigError("; ".join(problems))
        return trained_fractions
    from sbin_loop.model.checkpoint import CheckpointError

    raise CheckpointError(f"{model}: trained on other descriptors than this sbin computes; retrain it")


def _read_queries(input_csv: Path, formula_column: str) -> pd.DataFrame:
    """The prediction input table, as text.

    Raises:
        DataSourceError: If it is not a readable CSV with ``formula_column``.
    """
    if not input_csv.is_file():
        raise DataSourceError(f"{input_csv}: no such file" if not input_csv.exists() else f"{input_csv}: not a file")
    try:
        frame = pd.read_csv(input_csv, dtype={formula_column: str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataSourceError(f"{input_csv}: cannot read as CSV: {error}") from None
    if formula_column not in frame.columns:
        raise DataSourceError(f"{input_csv}: no column {formula_column!r}; columns are {list(frame.columns)}")
    return frame


@model_app.command("predict")
@reports_errors
def model_predict(
    model: Annotated[Path, typer.Option("--model", help="Directory written by `sbin model train` or a campaign.")],
    input_csv: Annotated[Path, typer.Option("--input", help="CSV with a formula column.")],
    output: Annotated[Path, typer.Option("--output", help="CSV to write.")],
    formula_column: Annotated[str, typer.Option("--formula-column")] = "formula",
    draws: Annotated[int, typer.Option("--draws", min=2, max=100_000, help="Posterior predictive draws.")] = 1000,
    level: Annotated[float, typer.Option("--level", min=0.5, max=0.999)] = 0.95,
    seed: Seed = 0,
    sites: Sites = None,
    element_fractions: ElementFractions = None,
) -> None:
    """Predict every input row, in order: mean, std and central predictive interval per target.

    A target with a lower bound (``--bounds``, e.g. Tc >= 0) also gets ``<target>_p_at_low``: the share of the
    predictive draws at that bound, the probability that a measurement sits there (Tc = 0: no transition found).

    Rows whose formula (or, with ``--sites``, site species) cannot be used get empty values and the reason in an
    ``error`` column.
    """
    configure_logging(None)
    from sbin_loop.model.checkpoint import load_surrogate, read_metadata  # torch loads here

    surrogate = load_surrogate(model)
    site_columns = parse_sites(sites)
    feature_names = read_metadata(model).get("feature_names")
    element_fractions = _check_inputs(model, feature_names, site_columns is not None, element_fractions)
    frame = _read_queries(input_csv, formula_column)
    _require_writable(output, "--output", directory=False)
    if site_columns is not None:
        missing = [column for column in site_columns if column not in frame.columns]
        if missing:
            raise DataSourceError(f"{input_csv}: no column(s) {missing} for --sites")
    valid, errors = [], [""] * len(frame)
    for position, formula in enumerate(frame[formula_column]):
        if site_columns is None:
            try:
                parse_formula(formula)
                problem = None
            except InvalidFormulaError as error:
                problem = str(error)
        else:
            a_symbol, b_symbol = (str(frame[column].iloc[position]).strip() for column in site_columns)
            problem = site_problem(formula, a_symbol, b_symbol)
        if problem is None:
            valid.append(position)
        else:
            errors[position] = problem
            typer.secho(f"line {position + 2}: {formula!r}: {problem}", fg=typer.colors.YELLOW, err=True)
    out = pd.DataFrame({"formula": frame[formula_column]})
    floors = [None if bounds is None else bounds[0] for bounds in surrogate.bounds]
    for name, floor in zip(surrogate.target_names, floors, strict=True):
        for suffix in ("mean", "std", "lower", "upper") + (("p_at_low",) if floor is not None else ()):
            out[f"{name}_{suffix}"] = np.nan
    if valid:
        rows = frame.iloc[valid]
        if site_columns is None:
            inputs = formula_inputs(rows[formula_column], element_fractions)
        else:
            inputs = site_inputs(rows, formula_column, site_columns, element_fractions)
        predictive = surrogate.predictive_draws(inputs, draws, seed).numpy()
        for j, name in enumerate(surrogate.target_names):
            intervals = candidate_intervals(predictive[..., j], level, surrogate.bounds[j])
            for suffix in ("mean", "std", "lower", "upper"):
                out.loc[valid, f"{name}_{suffix}"] = [getattr(interval, suffix) for interval in intervals]
            if floors[j] is not None:
                out.loc[valid, f"{name}_p_at_low"] = (predictive[..., j] <= floors[j]).mean(axis=0)
    if any(errors):
        out["error"] = errors
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output, index=False)
    typer.echo(f"wrote {len(out)} predictions ({len(valid)} valid) to {output}")

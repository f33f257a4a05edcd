"""The ``sbin`` command line: run and inspect campaigns, train and apply models."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from tqdm import tqdm

from sbin_loop.candidates import PoolCacheError
from sbin_loop.config import ConfigError, ModelConfig, load_config
from sbin_loop.daemon import DaemonError, start_daemon, stop_daemon
from sbin_loop.features import descriptor_names, featurize_compositions
from sbin_loop.inspection.cli import report
from sbin_loop.locking import CampaignLock, CampaignLockedError, lock_holder
from sbin_loop.logs import LOG_FILE, configure_logging
from sbin_loop.loop import Campaign, CampaignError, RoundSummary
from sbin_loop.model.checkpoint import CheckpointError, load_surrogate, read_metadata, save_surrogate
from sbin_loop.model.intervals import candidate_intervals
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.space import DataSourceError, InvalidFormulaError, parse_formula, read_formula_table
from sbin_loop.space.cli import space_app
from sbin_loop.status import NotACampaignError, campaign_status
from sbin_loop.stores import StoreError

app = typer.Typer(help="sbin: closed-loop active-learning materials discovery.", no_args_is_help=True)
model_app = typer.Typer(help="Train and apply the BNN surrogate outside a campaign.", no_args_is_help=True)
app.add_typer(model_app, name="model")
daemon_app = typer.Typer(help="Run campaigns detached from the terminal.", no_args_is_help=True)
app.add_typer(daemon_app, name="daemon")
app.command("report")(report)
app.add_typer(space_app, name="space")

USER_ERRORS = (
    ConfigError,
    DataSourceError,
    CampaignError,
    StoreError,
    CheckpointError,
    NotACampaignError,
    PoolCacheError,
    CampaignLockedError,
    DaemonError,
)
"""Errors caused by input or state the user controls: reported as one clear message, exit code 2."""


def _fail(error: Exception) -> typer.Exit:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Campaign directory (default: campaigns/<name>).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to the terminal.")] = False,
) -> None:
    """Run a campaign, or resume it where it stopped, in the foreground."""
    try:
        campaign_config, base_dir = load_config(config)
        directory = directory or Path("campaigns") / campaign_config.name
        configure_logging(directory / LOG_FILE, logging.INFO if verbose else logging.WARNING)
        with CampaignLock(directory):
            _run_in_foreground(Campaign(campaign_config, directory, base_dir))
    except USER_ERRORS as error:
        raise _fail(error) from None


def _run_in_foreground(campaign: Campaign) -> None:
    """Run with a progress bar and one summary line per round; say so and do nothing if already finished."""
    name, directory = campaign.config.name, campaign.directory
    first = campaign.next_round()
    if first is None:
        campaign.run()  # no round left: records the stop reason a run killed after its last round could not write
        state = campaign_status(directory)
        typer.echo(
            f"campaign {name!r} in {directory} is finished ({campaign.stop_reason()}; "
            f"{state['rounds_complete']} rounds, {state['n_evaluations']} evaluations); nothing to do. "
            "Raise the budget in the config to continue it."
        )
        return
    objective = campaign.config.policy_objective
    typer.echo(f"campaign {name!r}: {len(campaign.pool)} candidates, directory {directory}")
    with tqdm(total=campaign.last_round + 1, initial=first, desc="rounds", unit="round", file=sys.stderr) as bar:

        def report(summary: RoundSummary) -> None:
            bar.update(1)
            tqdm.write(summary.line(objective.name, objective.unit))

        campaign.run(on_round=report)
    typer.echo(f"finished: {campaign.stop_reason()}. Inspect with: sbin status {directory}")


def _format_status(state: dict) -> str:
    lines = [
        f"campaign {state['campaign']}: {state['state']}, {state['rounds_complete']}/{state['rounds_planned']} rounds, "
        f"{state['n_evaluations']} evaluations, {state['n_failed']} failed jobs",
    ]
    for title, key in (("best measured", "best"), ("best predicted, not yet measured", "top_predicted")):
        if state[key]:
            lines.append(f"{title} (mean [{state['interval_level'] * 100:g}% interval]):")
        for row in state[key]:
            observed = "" if row["observed"] is None else f"measured {row['observed']:.2f}, "
            lines.append(
                f"  {row['candidate_id']:<24} {row['objective']}: {observed}model {row['mean']:.2f} "
                f"[{row['lower']:.2f}, {row['upper']:.2f}]"
            )
    lines.append("rounds:")
    for row in state["rounds"]:
        best = "" if row["best_observed"] is None else f", best {row['best_observed']:.2f} ({row['best_candidate']})"
        lines.append(f"  {row['round']:3d} {row['state']:<9} {len(row['selected'])} picks{best}")
    return "\n".join(lines)


@app.command()
def status(
    directory: Annotated[Path, typer.Argument(help="Campaign directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show a campaign's state, evaluations, best candidates with intervals, and rounds."""
    try:
        state = campaign_status(directory)
    except USER_ERRORS as error:
        raise _fail(error) from None
    typer.echo(json.dumps(state, indent=2) if as_json else _format_status(state))


@model_app.command("train")
def model_train(
    data: Annotated[Path, typer.Option("--data", help="CSV with a formula column and the target column.")],
    target: Annotated[str, typer.Option("--target", help="Column to learn.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the model checkpoint.")],
    formula_column: Annotated[str, typer.Option("--formula-column")] = "formula",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    transform: Annotated[
        str, typer.Option("--transform", help="none, log1p, or auto (log1p if all values >= 0).")
    ] = "none",
    test_fraction: Annotated[
        float,
        typer.Option(
            "--test-fraction",
            min=0.0,
            max=0.5,
            help="Share held out (seeded) and never trained on, to report test MAE and interval coverage.",
        ),
    ] = 0.15,
) -> None:
    """Train the BNN on a table of formulas and measured values; duplicates are merged (median).

    With the default ``--test-fraction 0.15`` and the model's own 15% validation share, the rows split 70/15/15 into
    training, validation (early stopping, recalibration) and test, and the test figures are printed. ``none`` is the
    default transform: modelling Tc as ``log1p`` was measured to raise the MAE in kelvin (benchmarks/model_accuracy.py).
    """
    configure_logging(None)
    try:
        table = read_formula_table(str(data), formula_column, (target,), require_values=True)
    except USER_ERRORS as error:
        raise _fail(error) from None
    frame = table.frame.dropna(subset=[target])
    if len(frame) < 2:
        raise _fail(DataSourceError(f"{data}: fewer than 2 usable rows with a numeric {target!r}"))
    values = frame[target].to_numpy(dtype=float)
    if transform == "auto":
        transform = "log1p" if (values >= 0).all() else "none"
    if transform not in ("log1p", "none"):
        raise _fail(ConfigError(f"--transform: must be none, log1p or auto, got {transform!r}"))
    features = featurize_compositions([parse_formula(formula) for formula in frame["formula"]])
    order = np.random.default_rng(seed).permutation(len(values))
    n_test = round(test_fraction * len(values))
    test, train = order[:n_test], order[n_test:]
    config = ModelConfig(validation_fraction=ModelConfig().validation_fraction / (1 - test_fraction))
    surrogate = BNNSurrogate(features.shape[1], (target,), (transform,), config)
    try:
        report = surrogate.fit(features[train], values[train, None], seed)
    except ValueError as error:
        raise _fail(ConfigError(f"{target}: {error}")) from None
    save_surrogate(surrogate, out, descriptor_names())
    typer.echo(
        f"trained on {report.n_train} compositions, validated on {report.n_validation}, spread recalibrated on "
        f"{report.n_calibration} held-out predictions ({len(table.rejected)} rows "
        f"rejected, {table.n_duplicate_rows} duplicates merged), transform {transform}, {report.steps} steps in "
        f"{report.seconds:.1f} s; saved to {out}"
    )
    if n_test:
        draws = surrogate.predictive_draws(features[test], 1000, seed).numpy()[..., 0]  # S x n_test
        lower, upper = np.quantile(draws, [0.025, 0.975], axis=0)
        measured = values[test]
        typer.echo(
            f"held-out test ({n_test} compositions): MAE {np.abs(np.median(draws, axis=0) - measured).mean():.3g}, "
            f"95% interval coverage {((measured >= lower) & (measured <= upper)).mean():.3f}"
        )


@model_app.command("predict")
def model_predict(
    model: Annotated[Path, typer.Option("--model", help="Directory written by `sbin model train` or a campaign.")],
    input_csv: Annotated[Path, typer.Option("--input", help="CSV with a formula column.")],
    output: Annotated[Path, typer.Option("--output", help="CSV to write.")],
    formula_column: Annotated[str, typer.Option("--formula-column")] = "formula",
    draws: Annotated[int, typer.Option("--draws", min=2, help="Posterior predictive draws.")] = 1000,
    level: Annotated[float, typer.Option("--level", min=0.5, max=0.999)] = 0.95,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Predict every input row, in order: mean, std and central predictive interval per target.

    Rows whose formula cannot be used get empty values and the reason in an ``error`` column.
    """
    configure_logging(None)
    try:
        surrogate = load_surrogate(model)
        if read_metadata(model).get("feature_names") not in (None, descriptor_names()):
            raise CheckpointError(f"{model}: trained on other descriptors than this sbin computes; retrain it")
        frame = pd.read_csv(input_csv, dtype={formula_column: str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as error:
        raise _fail(DataSourceError(f"{input_csv}: cannot read: {error}")) from None
    except USER_ERRORS as error:
        raise _fail(error) from None
    if formula_column not in frame.columns:
        raise _fail(DataSourceError(f"{input_csv}: no column {formula_column!r}; columns are {list(frame.columns)}"))
    compositions, valid, errors = [], [], [""] * len(frame)
    for position, formula in enumerate(frame[formula_column]):
        try:
            compositions.append(parse_formula(formula))
            valid.append(position)
        except InvalidFormulaError as error:
            errors[position] = str(error)
            typer.secho(f"line {position + 2}: {formula!r}: {error}", fg=typer.colors.YELLOW, err=True)
    out = pd.DataFrame({"formula": frame[formula_column]})
    for name in surrogate.target_names:
        for suffix in ("mean", "std", "lower", "upper"):
            out[f"{name}_{suffix}"] = np.nan
    if valid:
        predictive = surrogate.predictive_draws(featurize_compositions(compositions), draws, seed).numpy()
        for j, name in enumerate(surrogate.target_names):
            intervals = candidate_intervals(predictive[..., j], level)
            for suffix in ("mean", "std", "lower", "upper"):
                out.loc[valid, f"{name}_{suffix}"] = [getattr(interval, suffix) for interval in intervals]
    if any(errors):
        out["error"] = errors
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output, index=False)
    typer.echo(f"wrote {len(out)} predictions ({len(valid)} valid) to {output}")


@daemon_app.command("start")
def daemon_start(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Campaign directory (default: campaigns/<name>).")
    ] = None,
) -> None:
    """Start (or resume) a campaign in the background; it logs to DIR/sbin.log."""
    try:
        campaign_config, _ = load_config(config)
        directory = directory or Path("campaigns") / campaign_config.name
        pid = start_daemon(config.resolve(), directory.resolve())
    except USER_ERRORS as error:
        raise _fail(error) from None
    typer.echo(f"campaign {campaign_config.name!r} running as process {pid}; log: {directory / LOG_FILE}")


@daemon_app.command("stop")
def daemon_stop(directory: Annotated[Path, typer.Argument(help="Campaign directory.")]) -> None:
    """Stop a background campaign after its current step (it stays resumable)."""
    try:
        pid = stop_daemon(directory)
    except USER_ERRORS as error:
        raise _fail(error) from None
    typer.echo(f"no process is driving {directory}" if pid is None else f"process {pid} stopped")


@daemon_app.command("status")
def daemon_status(
    directory: Annotated[Path, typer.Argument(help="Campaign directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Whether a process drives the campaign, and the campaign's state."""
    try:
        state = {"pid": lock_holder(directory), **campaign_status(directory)}
    except USER_ERRORS as error:
        raise _fail(error) from None
    if as_json:
        typer.echo(json.dumps(state, indent=2))
        return
    running = "not running" if state["pid"] is None else f"running as process {state['pid']}"
    typer.echo(f"daemon {running}\n{_format_status(state)}")

"""The ``sbin`` command line: run and inspect campaigns, train and apply models."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from tqdm import tqdm

from sbin_loop import __version__
from sbin_loop.asktell_cli import campaign_directory, register
from sbin_loop.cli_errors import naming_path, reports_errors
from sbin_loop.config import load_config
from sbin_loop.daemon import start_daemon, stop_daemon
from sbin_loop.engine.errors import CampaignError
from sbin_loop.extras import require_extras
from sbin_loop.inspection.cli import report
from sbin_loop.locking import CampaignLock, lock_holder
from sbin_loop.logs import LOG_FILE, configure_logging
from sbin_loop.model.cli import model_app
from sbin_loop.space.cli import space_app
from sbin_loop.status import campaign_status

if TYPE_CHECKING:
    from sbin_loop.campaign import Campaign, RoundSummary

app = typer.Typer(help="sbin: closed-loop active-learning materials discovery.", no_args_is_help=True)
app.add_typer(model_app, name="model")
daemon_app = typer.Typer(help="Run campaigns detached from the terminal.", no_args_is_help=True)
app.add_typer(daemon_app, name="daemon")
app.command("report")(report)
app.add_typer(space_app, name="space")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sbin {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """sbin: closed-loop active-learning materials discovery."""


@app.command()
@reports_errors
def run(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Campaign directory (default: campaigns/<name>).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to the terminal.")] = False,
) -> None:
    """Run a campaign, or resume it where it stopped, in the foreground."""
    campaign_config, base_dir = load_config(config)
    directory = campaign_directory(directory, campaign_config)
    require_extras(campaign_config)
    configure_logging(directory / LOG_FILE, logging.INFO if verbose else logging.WARNING)
    if campaign_config.manual:
        raise CampaignError(f"{config}: oracle kind manual: results arrive by sbin tell; create it with sbin init")
    from sbin_loop.campaign import Campaign  # torch and the model stack load here, not for every command

    with naming_path(directory), CampaignLock(directory):
        _run_in_foreground(Campaign.from_config(campaign_config, directory, base_dir))


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
@reports_errors
def status(
    directory: Annotated[Path, typer.Argument(help="Campaign directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show a campaign's state, evaluations, best candidates with intervals, and rounds."""
    state = campaign_status(directory)
    typer.echo(json.dumps(state, indent=2) if as_json else _format_status(state))


@daemon_app.command("start")
@reports_errors
def daemon_start(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Campaign directory (default: campaigns/<name>).")
    ] = None,
) -> None:
    """Start (or resume) a campaign in the background; it logs to DIR/sbin.log."""
    campaign_config, _ = load_config(config)
    directory = campaign_directory(directory, campaign_config)
    if campaign_config.manual:
        raise CampaignError(f"{config}: oracle kind manual: nothing runs by itself; use sbin ask and sbin tell")
    require_extras(campaign_config)
    pid = start_daemon(config.resolve(), directory.resolve())
    typer.echo(f"campaign {campaign_config.name!r} running as process {pid}; log: {directory / LOG_FILE}")


@daemon_app.command("stop")
@reports_errors
def daemon_stop(directory: Annotated[Path, typer.Argument(help="Campaign directory.")]) -> None:
    """Stop a background campaign after its current step (it stays resumable)."""
    pid = stop_daemon(directory)
    typer.echo(f"no process is driving {directory}" if pid is None else f"process {pid} stopped")


@daemon_app.command("status")
@reports_errors
def daemon_status(
    directory: Annotated[Path, typer.Argument(help="Campaign directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Whether a process drives the campaign, and the campaign's state."""
    state = {"pid": lock_holder(directory), **campaign_status(directory)}
    if as_json:
        typer.echo(json.dumps(state, indent=2))
        return
    running = "not running" if state["pid"] is None else f"running as process {state['pid']}"
    typer.echo(f"daemon {running}\n{_format_status(state)}")


register(app)

"""``sbin init``, ``sbin ask`` and ``sbin tell``: a campaign driven by hand, for a lab without a robot.

``init`` creates a campaign without running it; ``ask`` proposes candidates (a table, or ``--json``); ``tell`` stores
a CSV of measurements. Each holds the campaign lock while it works, so two of them never write one campaign at once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sbin_loop.cli_errors import naming_path, reports_errors
from sbin_loop.config import CampaignConfig, ConfigError, load_config
from sbin_loop.extras import require_extras
from sbin_loop.locking import CampaignLock
from sbin_loop.logs import LOG_FILE, configure_logging
from sbin_loop.status import read_marker

if TYPE_CHECKING:
    from sbin_loop.stores import SelectionEntry

DirectoryOption = Annotated[Path | None, typer.Option("--dir", help="Campaign directory (default: campaigns/<name>).")]


def campaign_directory(directory: Path | None, config: CampaignConfig) -> Path:
    """The campaign directory (``campaigns/<name>`` by default), checked before anything is written to it.

    Raises:
        ConfigError: If it exists and is not a directory.
        NotACampaignError: If its ``campaign.json`` is not a campaign marker.
    """
    directory = directory or Path("campaigns") / config.name
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--dir: {directory} exists and is not a directory")
    read_marker(directory)
    return directory


def proposal_rows(entries: list[SelectionEntry]) -> list[dict]:
    """The picks as ``sbin ask --json`` prints them."""
    return [
        {
            "candidate_id": entry.candidate_id,
            "formula": entry.formula,
            "policy": entry.policy,
            "reason": entry.reason,
            "predictions": {
                name: {"mean": interval.mean, "lower": interval.lower, "upper": interval.upper}
                for name, interval in entry.predictions.items()
            },
        }
        for entry in entries
    ]


def proposal_table(rows: list[dict], objectives: list[str]) -> str:
    """The picks as a table: candidate, then each objective's predicted mean and interval, then the policy."""
    header = ["candidate", *(f"{name} mean [interval]" for name in objectives), "policy"]
    lines = [header]
    for row in rows:
        cells = [row["candidate_id"]]
        for name in objectives:
            p = row["predictions"].get(name)
            cells.append("-" if p is None else f"{p['mean']:.3g} [{p['lower']:.3g}, {p['upper']:.3g}]")
        lines.append([*cells, row["policy"]])
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)


def init(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    directory: DirectoryOption = None,
) -> None:
    """Create a campaign (and store budget.initial's measurements) without running it."""
    campaign_config, base_dir = load_config(config)
    directory = campaign_directory(directory, campaign_config)
    require_extras(campaign_config)
    configure_logging(directory / LOG_FILE, logging.WARNING)
    from sbin_loop.campaign import Campaign  # torch and the model stack load here, not for every command

    with naming_path(directory), CampaignLock(directory):
        campaign = Campaign.from_config(campaign_config, directory, base_dir)
        n_results = len(campaign.store.results())
    next_step = f"sbin ask {directory}" if campaign_config.manual else f"sbin run {config} --dir {directory}"
    typer.echo(
        f"campaign {campaign_config.name!r} in {directory}: {len(campaign.pool)} candidates, {n_results} "
        f"measurements; next: {next_step}"
    )


def ask(
    directory: Annotated[Path, typer.Argument(help="Campaign directory.")],
    n: Annotated[
        int | None, typer.Option("-n", min=1, help="Candidates to propose (default: policy.batch_size).")
    ] = None,
    new: Annotated[bool, typer.Option("--new", help="Propose more while earlier proposals are pending.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Propose candidates to measure, with predictions; pending proposals are shown again until told."""
    configure_logging(directory / LOG_FILE, logging.WARNING)
    from sbin_loop.campaign import Campaign

    with naming_path(directory), CampaignLock(directory):
        campaign = Campaign.open(directory)
        rows = proposal_rows(campaign.ask(n, new=new))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(proposal_table(rows, list(campaign.objective_names)))


def tell(
    directory: Annotated[Path, typer.Argument(help="Campaign directory.")],
    results: Annotated[Path, typer.Argument(help="CSV: formula or candidate_id, one column per objective, status.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Store measured results; a file with any bad row stores nothing."""
    configure_logging(directory / LOG_FILE, logging.ERROR)  # failures are listed below, not logged twice
    from sbin_loop.campaign import Campaign

    with naming_path(directory), CampaignLock(directory):
        report = Campaign.open(directory).tell(results)
    if as_json:
        typer.echo(json.dumps(vars(report), indent=2))
        return
    typer.echo(report.line())
    for error in report.errors:
        typer.echo(f"  failed: {error}")


def register(app: typer.Typer) -> None:
    """Add ``init``, ``ask`` and ``tell`` to the ``sbin`` app, each reporting errors as one line."""
    for command in (init, ask, tell):
        app.command(command.__name__)(reports_errors(command))

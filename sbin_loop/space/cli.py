"""``sbin space ...`` commands; the main app mounts them with ``app.add_typer(space_app, name="space")``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sbin_loop.config import ConfigError, load_config
from sbin_loop.space.pool import DataSourceError
from sbin_loop.space.summary import summarize_space

space_app = typer.Typer(help="Inspect a campaign's candidate space.", no_args_is_help=True)


@space_app.callback()
def space() -> None:
    """Inspect a campaign's candidate space."""


@space_app.command("summary")
def summary(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    sample: Annotated[int, typer.Option(min=0, help="Candidates shown in the random sample.")] = 10,
) -> None:
    """Stream the space once and print its size, rule rejections and a random sample of candidates."""
    try:
        campaign, base_dir = load_config(config)
        result = summarize_space(campaign.space, base_dir, sample_size=sample, seed=campaign.seed)
    except (ConfigError, DataSourceError, ValueError) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=2) from None
    typer.echo(result.render())

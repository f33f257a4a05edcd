"""``sbin space ...`` commands; the main app mounts them with ``app.add_typer(space_app, name="space")``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sbin_loop.cli_errors import reports_errors, user_error_classes
from sbin_loop.config import ConfigError, load_config
from sbin_loop.space.summary import DEFAULT_MAX_CANDIDATES, summarize_space

space_app = typer.Typer(help="Inspect a campaign's candidate space.", no_args_is_help=True)


@space_app.callback()
def space() -> None:
    """Inspect a campaign's candidate space."""


@space_app.command("summary")
@reports_errors
def summary(
    config: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    sample: Annotated[int, typer.Option(min=0, max=10_000, help="Candidates shown in the random sample.")] = 10,
    max_candidates: Annotated[
        int,
        typer.Option(min=1, help="Refuse a perovskite space that enumerates more candidates (counted up front)."),
    ] = DEFAULT_MAX_CANDIDATES,
) -> None:
    """Stream the space once and print its size, rule rejections and a random sample of candidates."""
    campaign, base_dir = load_config(config)
    try:
        result = summarize_space(
            campaign.space, base_dir, sample_size=sample, seed=campaign.seed, max_candidates=max_candidates
        )
    except ValueError as error:  # an element or oxidation state the space cannot use (``site_ions``)
        if isinstance(error, user_error_classes()):
            raise
        raise ConfigError(f"space: {error}") from None
    typer.echo(result.render())

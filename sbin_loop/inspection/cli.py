"""``sbin report``: the main app mounts it with ``app.command("report")(report)``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sbin_loop.cli_errors import reports_errors
from sbin_loop.inspection.frames import open_view
from sbin_loop.inspection.report import write_report


@reports_errors
def report(
    directory: Annotated[Path, typer.Argument(help="Campaign directory.")],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: DIR/report.html).")] = None,
) -> None:
    """Write a self-contained HTML report of a campaign, with a PNG of each plot beside it."""
    view = open_view(directory)
    files = write_report(view, out or directory / "report.html")
    typer.echo(f"wrote {files.html} and {len(files.images)} plots: {', '.join(map(str, files.images.values()))}")

"""``sbin report``: the main app mounts it with ``app.command("report")(report)``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sbin_loop.cli_errors import reports_errors


@reports_errors
def report(
    directory: Annotated[Path, typer.Argument(help="Campaign directory.")],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: DIR/report.html).")] = None,
) -> None:
    """Write a self-contained HTML report of a campaign, with a PNG of each plot beside it."""
    from sbin_loop.inspection.frames import open_view  # pandas and matplotlib load here, not for every command
    from sbin_loop.inspection.report import write_report

    view = open_view(directory)
    files = write_report(view, out or directory / "report.html")
    typer.echo(f"wrote {files.html} and {len(files.images)} plots: {', '.join(map(str, files.images.values()))}")

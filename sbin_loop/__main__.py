"""``python -m sbin_loop`` is the ``sbin`` command."""

from sbin_loop.cli import app

app()

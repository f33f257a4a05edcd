"""How every ``sbin`` command reports an error the user can fix: one line, exit code 1.

``reports_errors`` wraps a command. Errors caused by input or state the user controls (``USER_ERRORS``) and any
``OSError`` (a missing or unwritable path, a full disk, a file-size limit) become one line on stderr, ``error: ...``,
or a JSON object ``{"error": "..."}`` on stdout when the command was given ``--json``; the exit code is 1. Usage errors
(an unknown option, a missing argument) stay Click's own, exit code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer

from sbin_loop.campaign import CampaignError, MeasurementError
from sbin_loop.candidates import PoolCacheError
from sbin_loop.config import ConfigError
from sbin_loop.daemon import DaemonError
from sbin_loop.inspection.report import ReportError
from sbin_loop.locking import CampaignLockedError
from sbin_loop.model.checkpoint import CheckpointError
from sbin_loop.model.surrogate import ModelOutputError
from sbin_loop.plugins import PluginError
from sbin_loop.space.pool import DataSourceError
from sbin_loop.status import NotACampaignError
from sbin_loop.stores import StoreError

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    DataSourceError,
    CampaignError,
    MeasurementError,
    PluginError,
    StoreError,
    CheckpointError,
    NotACampaignError,
    PoolCacheError,
    CampaignLockedError,
    DaemonError,
    ReportError,
    ModelOutputError,
)
"""Errors caused by input or state the user controls, or a model that produced a non-finite value: reported as one
clear message, exit code 1."""

USER_ERROR_CODE = 1
MAX_MESSAGE = 1000
"""Longest error message printed; a longer one is cut with ``...``."""

P = ParamSpec("P")
R = TypeVar("R")


def describe_os_error(error: OSError) -> str:
    """``PATH: reason`` for an ``OSError`` (both paths of a rename), without Python's ``[Errno N]`` prefix."""
    reason = error.strerror or str(error)
    paths = [os.fsdecode(path) for path in (error.filename, error.filename2) if path is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


@contextlib.contextmanager
def naming_path(path: Path) -> Iterator[None]:
    """Give an ``OSError`` that names no file (a write cut short by a full disk or ``ulimit -f``) ``path`` as where.

    Used around work inside a campaign directory, so the error says at least which campaign it concerns.
    """
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        reason = error.strerror or f"{error} (disk full or file-size limit reached?)"
        raise OSError(error.errno, f"cannot write in this directory: {reason}", str(path)) from error


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """A message on one line (its lines joined by ``; ``), cut to ``limit`` characters with ``...``."""
    text = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def user_error_message(error: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or ``None`` for anything else (a bug)."""
    if isinstance(error, USER_ERRORS):
        return one_line(str(error))
    if isinstance(error, OSError):
        return one_line(describe_os_error(error))
    return None


def fail(message: str, as_json: bool = False) -> typer.Exit:
    """Print ``message`` as the command's error (a JSON object on stdout with ``--json``) and return the exit."""
    if as_json:
        typer.echo(json.dumps({"error": message}))
    else:
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=USER_ERROR_CODE)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a Typer command so user errors and ``OSError`` end it with one line and exit code 1.

    The command's ``as_json`` parameter, if it has one, selects the JSON form.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (*USER_ERRORS, OSError) as error:
            raise fail(user_error_message(error) or "", as_json=bool(kwargs.get("as_json"))) from None

    return wrapper

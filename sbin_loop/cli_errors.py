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
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer

USER_ERRORS: tuple[tuple[str, str], ...] = (
    ("sbin_loop.config", "ConfigError"),
    ("sbin_loop.space.pool", "DataSourceError"),
    ("sbin_loop.engine.errors", "CampaignError"),
    ("sbin_loop.campaign.tell", "MeasurementError"),
    ("sbin_loop.plugins", "PluginError"),
    ("sbin_loop.stores.campaign_store", "StoreError"),
    ("sbin_loop.model.checkpoint", "CheckpointError"),
    ("sbin_loop.status", "NotACampaignError"),
    ("sbin_loop.candidates", "PoolCacheError"),
    ("sbin_loop.locking", "CampaignLockedError"),
    ("sbin_loop.daemon", "DaemonError"),
    ("sbin_loop.inspection.report", "ReportError"),
    ("sbin_loop.model.surrogate", "ModelOutputError"),
)
"""Errors caused by input or state the user controls, or a model that produced a non-finite value, by defining module
and class name: reported as one clear message, exit code 1."""


def user_error_classes() -> tuple[type[Exception], ...]:
    """The ``USER_ERRORS`` classes whose modules are loaded.

    An exception's class is loaded before anything can raise it, so a class whose module is not loaded cannot be the
    class of the error at hand. Looking the classes up this way spares this module (and every command) the imports of
    the modules that define them: ``sbin --help``, ``sbin status`` and a config error do not load torch.
    """
    return tuple(getattr(sys.modules[module], name) for module, name in USER_ERRORS if module in sys.modules)


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
    if isinstance(error, user_error_classes()):
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
        except Exception as error:
            message = user_error_message(error)
            if message is None:
                raise  # a bug: its traceback is kept
            raise fail(message, as_json=bool(kwargs.get("as_json"))) from None

    return wrapper

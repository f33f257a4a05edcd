"""Logging set-up shared by the foreground command and the daemon."""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOG_FILE = "sbin.log"
MAX_LOG_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5


def configure_logging(log_file: Path | None, console_level: int | None = logging.WARNING) -> None:
    """Send everything from INFO up to a rotating log file, and ``console_level`` and up to stderr.

    Args:
        log_file: The campaign's log (rotated at 10 MB, 5 files kept); ``None`` for no file.
        console_level: Threshold for the terminal; ``None`` for no terminal output (daemon).
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    if console_level is not None:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(console_level)
        console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(log_file, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)

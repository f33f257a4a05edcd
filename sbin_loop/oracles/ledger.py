"""Append-only JSON-lines ledgers: an oracle writes what it is about to send to disk before it sends it.

The dataset replay, the VASP oracle and the synthesis file queue each keep one, so a restarted campaign knows what
already left the process. An append is flushed and fsynced before the call returns. A crash in the middle of an
append leaves a last line without its newline; reading repairs the file (the next entry starts a line of its own)
and hands the cut-off line back like any other, so each reader decides what an unparsable line means.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append one line per entry (no newlines inside an entry) and fsync, creating the file and its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.writelines(line + "\n" for line in lines)
        handle.flush()
        os.fsync(handle.fileno())


def read_lines(path: Path) -> list[str]:
    """The ledger's non-empty lines in order (none if there is no file), after repairing a line cut off by a crash."""
    text = path.read_text() if path.is_file() else ""
    if text and not text.endswith("\n"):
        with path.open("a") as handle:
            handle.write("\n")
    return [line for line in text.splitlines() if line.strip()]


def read_json_objects(path: Path) -> list[dict]:
    """The ledger's entries as JSON objects; a line that is not one (a crash cut it off) is skipped with a warning."""
    entries = []
    for number, line in enumerate(read_lines(path), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            logger.warning("%s entry %d is not a JSON object; skipped", path, number)
    return entries

"""Reading small files whose path a user controls, without hanging or reading without bound."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class FileLimitError(ValueError):
    """A path that is not a regular file, or a file larger than allowed; the message says which (not the path)."""


def read_small_file(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    The file is opened non-blocking and checked on the open descriptor, so a FIFO or device in its place (or swapped
    in after a check) is refused instead of blocking or streaming forever.

    Raises:
        FileLimitError: If it is not a regular file or is larger than ``max_bytes``.
        OSError: If it cannot be opened or read.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise FileLimitError("not a regular file")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileLimitError(f"larger than the {max_bytes:,} bytes allowed")
    return data

"""The one atomic file write of sbin: a reader sees the old file or the new one, never half of one.

The content goes to a temporary file beside the target, is flushed to disk, and is renamed over the target. Campaign
state (pool metadata, checkpoints, the stop marker, peer surrogates) is written this way, so a crash or a full disk
mid-write leaves the previous version intact. Directories an outside party can write (the file-queue lab's) need
more than this: ``safe_files.write_file`` also refuses to follow links there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, content: bytes | str | Callable[[Path], None]) -> Path:
    """Replace ``path`` with ``content`` atomically.

    Args:
        path: The file to write.
        content: Bytes or text (UTF-8), or a function that writes the file at the path it is given (e.g. numpy's
            ``savez`` or safetensors' ``save_file``).

    Returns:
        ``path``.

    Raises:
        OSError: If the write fails (the error names ``path``); the previous file, if any, is unchanged.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        if callable(content):
            content(temporary)
        else:
            temporary.write_bytes(content.encode() if isinstance(content, str) else content)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
    except OSError as error:  # numpy and plain writes name no file when the disk or a file-size limit is full
        temporary.unlink(missing_ok=True)
        if error.filename is not None and str(error.filename) != str(temporary):
            raise
        raise OSError(error.errno, f"cannot write ({error.strerror or error})", str(path)) from error
    os.replace(temporary, path)
    return path

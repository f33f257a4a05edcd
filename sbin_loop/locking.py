"""One process drives a campaign at a time: an exclusive ``flock`` on ``sbin.lock`` in the campaign directory.

The operating system releases the lock when the holder exits, however it exits (``kill -9`` included), so a crashed
campaign never leaves a stale lock behind. The lock file holds the holder's pid for ``sbin daemon stop``/``status``.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK_FILE = "sbin.lock"


PROBE_RETRIES = 50
"""Attempts more to take the lock when it is held but no pid holds it: ``lock_holder`` (``sbin status``, a report)
takes a shared lock for a moment to test it, and a start landing in that moment must not fail."""

PROBE_WAIT_SECONDS = 0.01


class CampaignLockedError(RuntimeError):
    """The campaign directory is already driven by another process."""


class CampaignLock:
    """Exclusive lock on a campaign directory for the life of this object (or process).

    Args:
        directory: Campaign directory (created if needed).
    """

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and record this process's pid.

        Raises:
            CampaignLockedError: Naming the pid of the process that holds it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(PROBE_RETRIES + 1):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = lock_holder(self.path.parent)
                if attempt == PROBE_RETRIES or holder is not None:
                    os.close(fd)
                    raise CampaignLockedError(
                        f"{self.path.parent} is being driven by process {holder}; "
                        "stop it first (sbin daemon stop DIR) or wait for it to finish"
                    ) from None
                time.sleep(PROBE_WAIT_SECONDS)  # held only by a reader's probe (``lock_holder``): try again
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (also happens automatically when the process ends)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CampaignLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def lock_holder(directory: Path) -> int | None:
    """Pid of the process driving the campaign, or ``None`` if none is."""
    path = Path(directory) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = path.read_text().strip()
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)

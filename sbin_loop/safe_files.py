"""Files in a directory another party can write to: read, created and moved without following links.

A lab robot, its controller or a person writes into a file queue's directories, so it can plant a symbolic link, a
FIFO or a directory under any name sbin is about to read or write. Every helper here works on an open directory
descriptor and a plain entry name (never a path through the shared directory):

- reading opens with ``O_NOFOLLOW | O_NONBLOCK`` and checks the opened file is a regular file of bounded size, so a
  link to a system file is never read, and a FIFO never blocks the process;
- writing creates a fresh temporary file with ``O_CREAT | O_EXCL | O_NOFOLLOW``, fsyncs it and renames it over the
  name; a rename replaces a link at the destination instead of writing through it;
- moving picks a destination name that is free, so a planted entry is neither written through nor replaced.

Errors never quote a file's bytes, and names are meant to be shown with ``repr`` (a name may hold a line break).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

MAX_READ_BYTES = 1 << 20
"""Largest file read from a shared directory (1 MiB); a result or request document is a few hundred bytes."""

LONGEST_NAME = 200
"""Longest entry name (in bytes) kept as is when moving; longer ones are replaced by a digest (room for suffixes)."""

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeEntry(OSError):
    """An entry sbin will not read or use as it is: not a regular file (or directory), or too large."""


def entry_kind(mode: int) -> str:
    """What a file mode describes, in words (``a regular file``, ``a symbolic link``, ``a FIFO``...)."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((word for test, word in kinds if test(mode)), "a special file")


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped, so it cannot break or forge a log line."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


@contextlib.contextmanager
def open_directory(path: Path) -> Iterator[int]:
    """A descriptor of the directory ``path`` (not a link to one), closed on exit.

    Raises:
        UnsafeEntry: If ``path`` is a symbolic link or not a directory.
    """
    try:
        fd = os.open(path, _DIRECTORY_FLAGS)
    except FileNotFoundError:
        raise
    except OSError:  # ELOOP for a link, ENOTDIR for anything else
        kind = entry_kind(os.lstat(path).st_mode)
        if kind == "a directory":  # a real directory that cannot be opened (permissions): the error says why
            raise
        raise UnsafeEntry(f"{path} is {kind}, not a directory") from None
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def subdirectory(parent: int, name: str) -> Iterator[int]:
    """A descriptor of directory ``name`` in ``parent``, created if missing; anything else there is moved aside first.

    An entry of that name that is not a directory (a planted link, a file) is renamed to ``<name>.<ns>.aside``, which
    touches neither the entry nor what it points to, and a fresh directory takes its place.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, dir_fd=parent)
    try:
        fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
    except OSError:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):  # a real directory that cannot be opened: not ours to move
            raise
        aside = f"{name}.{time.time_ns()}.aside"
        os.rename(name, aside, src_dir_fd=parent, dst_dir_fd=parent)
        logger.warning("%r was %s, not a directory; renamed to %r and made again", name, entry_kind(mode), aside)
        os.mkdir(name, dir_fd=parent)
        fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
    try:
        yield fd
    finally:
        os.close(fd)


def read_regular(directory: int, name: str, limit: int = MAX_READ_BYTES, sync: bool = False) -> bytes:
    """The bytes of the regular file ``name`` in ``directory``, read without following a link or blocking on a FIFO.

    Args:
        directory: Descriptor of the directory holding the file.
        name: Entry name.
        limit: Largest size read; a larger file is refused.
        sync: Fsync the file before returning (its bytes reach the disk before it is renamed).

    Raises:
        FileNotFoundError: If there is no such entry (any more).
        UnsafeEntry: If the entry is not a regular file, or is larger than ``limit``; the message never holds its bytes.
    """
    kind = entry_kind(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
    if kind != "a regular file":
        raise UnsafeEntry(f"is {kind}, not a regular file")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
    except FileNotFoundError:
        raise
    except OSError as error:  # swapped for a link (ELOOP) or something unopenable since the check
        raise UnsafeEntry(f"cannot be opened as a regular file ({os.strerror(error.errno or 0)})") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise UnsafeEntry(f"is {entry_kind(status.st_mode)}, not a regular file")
        if status.st_size > limit:
            raise UnsafeEntry(f"is larger than {limit} bytes")
        chunks, size = [], 0
        while chunk := os.read(fd, min(limit + 1 - size, _CHUNK_BYTES)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UnsafeEntry(f"is larger than {limit} bytes")
        if sync:
            os.fsync(fd)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_file(directory: int, name: str, data: bytes) -> None:
    """Write ``name`` in ``directory`` atomically and durably, never through a link planted under any name used.

    The bytes go to a fresh temporary file (``O_EXCL | O_NOFOLLOW``), are fsynced, and the file is renamed to
    ``name``, replacing whatever entry had that name (a link is replaced, not followed). The directory itself is
    not fsynced: callers writing several files fsync it once.

    Raises:
        OSError: If ``name`` is a directory or the write fails; the temporary file is removed.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        temporary = f".{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(temporary, flags, 0o644, dir_fd=directory)
            break
        except FileExistsError:  # a planted entry: pick another name
            continue
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=directory)
        raise


def _exists(directory: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def free_name(directory: int, name: str, companions: tuple[str, ...] = ()) -> str:
    """A name in ``directory`` that no entry holds, nor ``name + suffix`` for each of ``companions``.

    ``name`` itself if free, else ``<stem>.<ns><suffix>``; a name longer than ``LONGEST_NAME`` bytes becomes a digest
    of it (keeping its suffix).
    """
    stem, suffix = os.path.splitext(name)
    if len(os.fsencode(name)) > LONGEST_NAME:
        stem = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
        suffix = suffix if len(os.fsencode(suffix)) <= 16 else ""
    candidate = stem + suffix
    while any(_exists(directory, candidate + companion) for companion in ("", *companions)):
        candidate = f"{stem}.{time.time_ns()}{suffix}"
    return candidate


def move_entry(source: int, name: str, target: int, new_name: str) -> None:
    """Rename entry ``name`` of ``source`` to ``new_name`` in ``target``: the entry itself moves, never its target."""
    os.rename(name, new_name, src_dir_fd=source, dst_dir_fd=target)

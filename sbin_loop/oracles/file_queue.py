"""The file-queue synthesis backend: requests written to an outbox directory, results read from an inbox directory.

The lab (a robot, its controller or a person) can write into both directories, so nothing there is trusted: entries
are read, written and moved with ``sbin_loop.safe_files`` (no link followed, no FIFO opened blocking, no planted
entry written through or replaced), and the request ledger lives in the campaign's own ``oracle/`` directory.

- ``outbox/<request_id>.json``: a request for the lab, written atomically (temporary file, fsync, rename). The lab may
  leave it or take it away.
- ``<campaign>/oracle/synthesis/<outbox>.jsonl``: the ledger of every request sent, one JSON line each, appended and
  fsynced after the request file is written. A request file whose line a crash cut off is added back from the outbox
  when the queue is opened. ``known`` answers from the ledger, so a request is never sent again once the lab could
  have seen it. A campaign started before the ledger moved kept it as ``outbox/sent.jsonl``: its valid lines are
  copied into the new ledger once, when the new ledger does not exist yet, and only if it is a regular file.
- ``inbox/*.json``: results the lab drops (written under another name, then renamed to ``.json``).
- ``inbox/processed/<request_id>.json``: an accepted result, moved there (rename, then the directory fsynced) and
  never deleted. It is returned by every poll that asks for its request, so a result the loop had not stored when the
  process died is delivered again after the restart; once stored, the loop's job is no longer running and the loop
  stops asking for it, so it is never ingested twice.
- ``inbox/rejected/<name>`` with ``<name>.reason``: an inbox entry that is not a regular file of at most 1 MiB, is not
  valid JSON, fails ``SynthesisResult`` validation, answers a request this outbox never sent, or repeats an accepted
  result. It is logged with its quoted name and never ingested; a regular file, fixed, can be moved back to retry.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from pydantic import ValidationError

from sbin_loop.config import ConfigError
from sbin_loop.oracles.config import FileQueueConfig, queue_directory_problem
from sbin_loop.oracles.ledger import append_lines, read_lines
from sbin_loop.oracles.synthesis import SynthesisRequest, SynthesisResult, safe_name
from sbin_loop.safe_files import (
    UnsafeEntry,
    free_name,
    move_entry,
    open_directory,
    printable,
    read_regular,
    subdirectory,
    write_file,
)

logger = logging.getLogger(__name__)

LEGACY_LEDGER = "sent.jsonl"
"""Where campaigns started before the ledger moved kept it, inside the outbox."""

LEGACY_LEDGER_LIMIT = 1 << 30
"""Largest legacy ledger migrated (1 GiB; a request line is under 1 kB)."""


def _describe(error: ValidationError) -> str:
    """Pydantic's complaints about a document, each naming its field, without echoing the document's bytes."""
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    return "; ".join(
        f"{'.'.join(printable(str(part)) for part in item['loc']) or 'document'}: {printable(item['msg'])}"
        for item in problems
    )


class FileQueueBackend:
    """Requests written to an outbox directory, results read from an inbox directory (layout: module docstring).

    Args:
        outbox: Directory requests are written to.
        inbox: Directory results are read from; holds ``processed/`` and ``rejected/``.
        ledger: The campaign's record of every request sent (outside both directories).
    """

    def __init__(self, outbox: Path, inbox: Path, ledger: Path) -> None:
        self.outbox, self.inbox, self.ledger = Path(outbox), Path(inbox), Path(ledger)
        for directory in (self.outbox, self.inbox):
            directory.mkdir(parents=True, exist_ok=True)
        with (
            open_directory(self.inbox) as inbox_fd,
            subdirectory(inbox_fd, "processed") as processed,
            subdirectory(inbox_fd, "rejected"),
        ):
            self._results = self._read_processed(processed)
        if not self.ledger.exists():
            self._migrate_legacy_ledger()
        self._sent = self._read_ledger()
        with open_directory(self.outbox) as outbox_fd:
            unrecorded = [request for request in self._read_requests(outbox_fd) if request.request_id not in self._sent]
        if unrecorded:
            logger.info("%d requests in %s were missing from its ledger; recorded", len(unrecorded), self.outbox)
            self._record(unrecorded)

    @property
    def processed(self) -> Path:
        """Where accepted results are kept."""
        return self.inbox / "processed"

    @property
    def rejected(self) -> Path:
        """Where refused inbox entries are moved, each with a ``.reason`` file."""
        return self.inbox / "rejected"

    @staticmethod
    def _documents(directory: int, what: str) -> list[tuple[str, bytes]]:
        """Name and bytes of each regular ``*.json`` file in ``directory``; other entries are skipped with a warning."""
        found = []
        for name in sorted(name for name in os.listdir(directory) if name.endswith(".json")):
            try:
                found.append((name, read_regular(directory, name)))
            except FileNotFoundError:  # the lab took it since the directory was listed
                continue
            except UnsafeEntry as problem:
                logger.warning("%s %r %s; ignored", what, name, problem)
        return found

    def _read_processed(self, processed: int) -> dict[str, SynthesisResult]:
        results: dict[str, SynthesisResult] = {}
        for name, data in self._documents(processed, f"{self.processed} entry"):
            try:
                result = SynthesisResult.model_validate_json(data)
            except ValidationError as error:
                logger.warning("%s entry %r is not a result (%s); ignored", self.processed, name, _describe(error))
                continue
            results.setdefault(result.request_id, result)
        return results

    def _read_requests(self, outbox: int) -> list[SynthesisRequest]:
        requests = []
        for name, data in self._documents(outbox, f"{self.outbox} entry"):
            try:
                requests.append(SynthesisRequest.model_validate_json(data))
            except ValidationError:
                logger.warning("%s entry %r is not a synthesis request; ignored", self.outbox, name)
        return requests

    def _migrate_legacy_ledger(self) -> None:
        """Start the ledger, from the outbox's ``sent.jsonl`` if an earlier version kept one there (a regular file)."""
        lines: list[str] = []
        with open_directory(self.outbox) as outbox:
            try:
                data = read_regular(outbox, LEGACY_LEDGER, limit=LEGACY_LEDGER_LIMIT)
            except FileNotFoundError:
                data = b""
            except UnsafeEntry as problem:
                logger.warning("%s %s; not migrated", self.outbox / LEGACY_LEDGER, problem)
                data = b""
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                lines.append(SynthesisRequest.model_validate_json(line).model_dump_json())
            except ValidationError:  # its request file, if written, is read back from the outbox
                logger.warning("%s entry %d is not a request; not migrated", self.outbox / LEGACY_LEDGER, number)
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        with open_directory(self.ledger.parent) as directory:
            write_file(directory, self.ledger.name, "".join(line + "\n" for line in lines).encode())
            os.fsync(directory)
        if lines:
            logger.info("%d requests migrated from %s to %s", len(lines), self.outbox / LEGACY_LEDGER, self.ledger)

    def _read_ledger(self) -> dict[str, SynthesisRequest]:
        sent = {}
        for number, line in enumerate(read_lines(self.ledger), 1):
            try:
                request = SynthesisRequest.model_validate_json(line)
            except ValidationError:  # its request file, if written, is read back from the outbox
                logger.warning("%s entry %d is not a request; skipped", self.ledger, number)
                continue
            sent.setdefault(request.request_id, request)
        return sent

    def _record(self, requests: list[SynthesisRequest]) -> None:
        append_lines(self.ledger, (request.model_dump_json() for request in requests))
        self._sent.update((request.request_id, request) for request in requests)

    def send(self, requests: list[SynthesisRequest]) -> None:
        """Write each request atomically and durably (a reader never sees half a file), then record it in the ledger.

        A request whose file name is held by a directory the lab left there is written under a free name instead.
        """
        if not requests:
            return
        with open_directory(self.outbox) as outbox:
            for request in requests:
                name, data = f"{safe_name(request.request_id)}.json", request.model_dump_json(indent=1).encode()
                try:
                    write_file(outbox, name, data)
                except IsADirectoryError:
                    free = free_name(outbox, name)
                    logger.warning("%s: %r is a directory; request written as %r", self.outbox, name, free)
                    write_file(outbox, free, data)
            os.fsync(outbox)
        self._record(requests)

    def sent(self) -> Mapping[str, SynthesisRequest]:
        """Every request in the ledger."""
        return self._sent

    def results(self) -> Mapping[str, SynthesisResult]:
        """Accept or reject every ``*.json`` entry of the inbox, then return every accepted result."""
        with (
            open_directory(self.inbox) as inbox,
            subdirectory(inbox, "processed") as processed,
            subdirectory(inbox, "rejected") as rejected,
        ):
            names = sorted(name for name in os.listdir(inbox) if name.endswith(".json"))
            moved = [self._take(inbox, name, processed, rejected) for name in names]
            if any(moved):
                os.fsync(processed)
                os.fsync(rejected)
                os.fsync(inbox)
        return self._results

    def _take(self, inbox: int, name: str, processed: int, rejected: int) -> bool:
        """Accept or reject inbox entry ``name``; whether it was moved."""
        try:
            data = read_regular(inbox, name, sync=True)  # the lab's bytes reach the disk before the file is renamed
        except FileNotFoundError:  # taken back by the lab since the inbox was listed
            return False
        except UnsafeEntry as problem:
            return self._reject(inbox, name, rejected, str(problem))
        try:
            result = SynthesisResult.model_validate_json(data)
        except ValidationError as error:
            return self._reject(inbox, name, rejected, f"is not a valid synthesis result: {_describe(error)}")
        if result.request_id not in self._sent:
            return self._reject(inbox, name, rejected, f"answers {result.request_id!r}, which was never sent")
        if result.request_id in self._results:
            return self._reject(inbox, name, rejected, f"answers {result.request_id!r}, which already has a result")
        move_entry(inbox, name, processed, free_name(processed, f"{safe_name(result.request_id)}.json"))
        self._results[result.request_id] = result
        return True

    def _reject(self, inbox: int, name: str, rejected: int, reason: str) -> bool:
        """Move entry ``name`` to ``rejected/`` with a ``.reason`` file beside it; log it with its name quoted."""
        logger.warning("synthesis result %r rejected: %s", name, reason)
        target = free_name(rejected, name, (".reason",))
        text = f"{name!r} {reason}\n"
        write_file(rejected, f"{target}.reason", text.encode("utf-8", "backslashreplace"))
        move_entry(inbox, name, rejected, target)
        return True


def campaign_file_queue(campaign_dir: Path, settings: FileQueueConfig, where: str) -> FileQueueBackend:
    """The file queue of a campaign, after checking that its directories really are the lab's own.

    The config has checked the paths as written; here they are resolved (following any link already on disk), and
    each must still lie inside the campaign directory, be none of its own entries, and be distinct from and outside
    the other. Nothing is created before the check; then each is created if missing.

    Args:
        campaign_dir: The campaign directory.
        settings: The configured directories.
        where: The backend's config field (``oracles.1.backend``), for the error.

    Raises:
        ConfigError: Naming the field whose directory resolves elsewhere.
    """
    root = campaign_dir.resolve()
    resolved: dict[str, Path] = {}
    for field, parts in settings.parts.items():
        path = root.joinpath(*parts).resolve()
        if path.is_relative_to(root):
            problem = queue_directory_problem(path.relative_to(root).parts)
        else:
            problem = f"is outside the campaign directory {str(root)!r}"
        if problem is not None:
            written = getattr(settings, field)
            raise ConfigError(f"{where}.{field}: {written!r} resolves to {str(path)!r}, which {problem}")
        resolved[field] = path
    outbox, inbox = resolved["outbox"], resolved["inbox"]
    if outbox.is_relative_to(inbox) or inbox.is_relative_to(outbox):
        raise ConfigError(f"{where}.inbox: {settings.inbox!r} resolves to the outbox or nests with it ({str(inbox)!r})")
    for field, path in resolved.items():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a file where a directory should be
            raise ConfigError(f"{where}.{field}: cannot make {str(path)!r}: {error.strerror}") from None
    ledger = f"{quote('/'.join(settings.parts['outbox']), safe='')}.jsonl"  # one per outbox, never in a lab's reach
    return FileQueueBackend(outbox, inbox, root / "oracle" / "synthesis" / ledger)

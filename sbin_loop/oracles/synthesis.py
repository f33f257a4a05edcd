"""Robot (or human) synthesis as an oracle: requests go out as documents, measured results come back as documents.

A ``SynthesisBackend`` carries documents and remembers them: ``FileQueueBackend`` writes each request as JSON into an
outbox directory and reads results that a lab robot, its controller or a person drops into an inbox directory;
``SimulatedLab`` replays a table with noise, delays and failures (seeded per request) so campaigns and tests can
rehearse the asynchronous path. ``SynthesisOracle`` turns jobs into requests and results into outcomes, and keeps no
state of its own: what was sent and what came back is whatever its backend holds.

The file queue keeps everything on disk, so a restarted process neither sends a request twice nor loses a result:

- ``outbox/<request_id>.json``: a request for the lab, written atomically (temporary file, fsync, rename). The lab may
  leave it or take it away.
- ``outbox/sent.jsonl``: the ledger of every request sent, one JSON line each, appended and fsynced after the request
  file is written. A request file whose line a crash cut off is added back from the outbox when the queue is opened.
  ``known`` answers from the ledger, so a request is never sent again once the lab could have seen it.
- ``inbox/*.json``: results the lab drops (written under another name, then renamed to ``.json``).
- ``inbox/processed/<request_id>.json``: an accepted result, moved there (``os.replace``, then the directory fsynced)
  and never deleted. It is returned by every poll that asks for its request, so a result the loop had not stored
  when the process died is delivered again after the restart; once stored, the loop's job is no longer running and
  the loop stops asking for it, so it is never ingested twice.
- ``inbox/rejected/<name>`` with ``<name>.reason``: a result file that is not valid JSON, fails ``SynthesisResult``
  validation, answers a request this outbox never sent, or repeats an accepted result. It is logged with its file
  name and never ingested; fixed, it can be moved back into the inbox.

The simulated lab keeps its requests and results in memory: after a restart it knows none of them, so the loop sends
the lost requests again, and being seeded per request they get the same answers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymatgen.core import Composition

from sbin_loop.config import SimulatedLabConfig, SynthesisConditions
from sbin_loop.oracles.base import JobRequest, OracleOutcome, rename_values
from sbin_loop.oracles.dataset import table_values
from sbin_loop.oracles.ledger import append_lines, read_lines
from sbin_loop.space import FormulaTable
from sbin_loop.stores.documents import elapsed_seconds, utc_now

logger = logging.getLogger(__name__)

VERSION = "1"


class SynthesisRequest(BaseModel):
    """What the lab is asked to make and measure.

    Attributes:
        request_id: Unique id of this request (job id and attempt); results must quote it.
        job_id: The campaign job.
        candidate_id: The candidate.
        formula: Target composition.
        target_mmol: Millimoles of each element to weigh in (``conditions.batch_mmol`` formula units).
        conditions: Firing temperature, dwell, atmosphere, batch size.
        created_at: When the request was issued (ISO 8601, UTC).
    """

    model_config = ConfigDict(extra="forbid")

    request_id: str
    job_id: str
    candidate_id: str
    formula: str
    target_mmol: dict[str, float]
    conditions: SynthesisConditions
    created_at: str = Field(default_factory=utc_now)


class SynthesisResult(BaseModel):
    """What the lab reports for one request.

    Attributes:
        request_id: The request answered.
        status: ``completed`` (measurements present) or ``failed`` (``failure_reason`` says why).
        measurements: Measured quantities, e.g. ``Tc_K`` (kelvin) and ``phase_purity`` (fraction, 0-1).
        failure_reason: Why the synthesis or measurement failed.
        operator: Robot or person who made the measurement.
        finished_at: When (ISO 8601, UTC).
    """

    model_config = ConfigDict(extra="forbid")

    request_id: str
    status: Literal["completed", "failed"]
    measurements: dict[str, float] = Field(default_factory=dict)
    failure_reason: str | None = None
    operator: str = ""
    finished_at: str = Field(default_factory=utc_now)


class SynthesisBackend(Protocol):
    """Carries requests to a lab and results back, and remembers both."""

    def send(self, requests: list[SynthesisRequest]) -> None:
        """Hand requests to the lab."""
        ...

    def sent(self) -> Mapping[str, SynthesisRequest]:
        """Every request the lab holds, answered or not, by request id."""
        ...

    def results(self) -> Mapping[str, SynthesisResult]:
        """Every result received so far, by request id; reading a result does not consume it."""
        ...


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _sync_directory(directory: Path) -> None:
    """Make the renames and new entries of ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileQueueBackend:
    """Requests written to an outbox directory, results read from an inbox directory (layout: module docstring).

    Args:
        outbox: Directory requests are written to; holds the ledger ``sent.jsonl``.
        inbox: Directory results are read from; holds ``processed/`` and ``rejected/``.
    """

    def __init__(self, outbox: Path, inbox: Path) -> None:
        self.outbox, self.inbox = Path(outbox), Path(inbox)
        self.ledger = self.outbox / "sent.jsonl"
        self.processed, self.rejected = self.inbox / "processed", self.inbox / "rejected"
        for directory in (self.outbox, self.processed, self.rejected):
            directory.mkdir(parents=True, exist_ok=True)
        self._sent = self._read_ledger()
        unrecorded = [
            request
            for request in map(self._read_request, sorted(self.outbox.glob("*.json")))
            if request is not None and request.request_id not in self._sent
        ]
        if unrecorded:
            logger.info("%d requests in %s were missing from its ledger; recorded", len(unrecorded), self.outbox)
            self._record(unrecorded)
        self._results = {
            result.request_id: result
            for result in (SynthesisResult.model_validate_json(p.read_text()) for p in self.processed.glob("*.json"))
        }

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

    @staticmethod
    def _read_request(path: Path) -> SynthesisRequest | None:
        try:
            return SynthesisRequest.model_validate_json(path.read_bytes())
        except FileNotFoundError:  # the lab took it since the outbox was listed
            return None
        except ValidationError:
            logger.warning("%s is not a synthesis request; ignored", path)
            return None

    def _record(self, requests: list[SynthesisRequest]) -> None:
        append_lines(self.ledger, (request.model_dump_json() for request in requests))
        self._sent.update((request.request_id, request) for request in requests)

    def send(self, requests: list[SynthesisRequest]) -> None:
        """Write each request atomically and durably (a reader never sees half a file), then record it in the ledger."""
        if not requests:
            return
        for request in requests:
            partial = self.outbox / f".{_safe_name(request.request_id)}.partial"
            with partial.open("w") as handle:
                handle.write(request.model_dump_json(indent=1))
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(self.outbox / f"{_safe_name(request.request_id)}.json")
        _sync_directory(self.outbox)
        self._record(requests)

    def sent(self) -> Mapping[str, SynthesisRequest]:
        """Every request in the ledger."""
        return self._sent

    def results(self) -> Mapping[str, SynthesisResult]:
        """Accept or reject every result file in the inbox, then return every accepted result."""
        accepted = False
        for path in sorted(self.inbox.glob("*.json")):
            try:
                result = SynthesisResult.model_validate_json(path.read_bytes())
            except ValidationError as error:
                self._reject(path, f"not a valid synthesis result: {error}")
                continue
            if result.request_id not in self._sent:
                self._reject(path, f"answers request {result.request_id!r}, which {self.outbox} never sent")
            elif result.request_id in self._results:
                self._reject(path, f"request {result.request_id!r} already has a result in {self.processed}")
            else:
                with path.open("rb") as handle:  # the lab's bytes reach the disk before the file is renamed
                    os.fsync(handle.fileno())
                path.replace(self.processed / f"{_safe_name(result.request_id)}.json")
                self._results[result.request_id] = result
                accepted = True
        if accepted:
            _sync_directory(self.processed)
            _sync_directory(self.inbox)
        return self._results

    def _reject(self, path: Path, reason: str) -> None:
        logger.warning("synthesis result %s rejected: %s", path.name, reason)
        target = self.rejected / path.name
        if target.exists():  # an earlier rejected file of the same name is kept
            target = self.rejected / f"{path.stem}.{time.time_ns()}{path.suffix}"
        Path(f"{target}.reason").write_text(reason + "\n")
        path.replace(target)


class SimulatedLab:
    """A lab that replays a table with Gaussian noise, uniform random delays and random failures.

    Randomness is drawn from the seed and the request id, so a request gets the same answer whatever the order.
    Requests and results live in memory only (see the module docstring).

    Args:
        table: Measured values to replay.
        columns: Measurement name -> table column.
        settings: Noise, delay, failure rate and seed.
        clock: Seconds since an arbitrary origin (``time.monotonic`` unless a test drives time).
    """

    def __init__(
        self,
        table: FormulaTable,
        columns: dict[str, str],
        settings: SimulatedLabConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._values = table_values(table, columns)
        self._settings = settings
        self._clock = clock
        self._sent: dict[str, SynthesisRequest] = {}
        self._due: dict[str, tuple[float, SynthesisResult]] = {}

    def send(self, requests: list[SynthesisRequest]) -> None:
        """Schedule each request's result."""
        for request in requests:
            self._sent[request.request_id] = request
            self._due[request.request_id] = (self._clock() + self._delay(request), self._result(request))

    def sent(self) -> Mapping[str, SynthesisRequest]:
        """Every request sent to this lab object."""
        return self._sent

    def results(self) -> Mapping[str, SynthesisResult]:
        """Results whose delay has passed."""
        now = self._clock()
        return {request_id: result for request_id, (due, result) in self._due.items() if due <= now}

    def _rng(self, request: SynthesisRequest) -> np.random.Generator:
        digest = hashlib.sha256(f"{self._settings.seed}:{request.request_id}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def _delay(self, request: SynthesisRequest) -> float:
        low, high = self._settings.delay_seconds
        return float(self._rng(request).uniform(low, high)) if high > low else low

    def _result(self, request: SynthesisRequest) -> SynthesisResult:
        rng = self._rng(request)
        rng.uniform()  # the delay's draw
        values = self._values.get(request.candidate_id)
        if values is None:
            return SynthesisResult(
                request_id=request.request_id, status="failed", failure_reason="composition not in the replayed table"
            )
        if rng.uniform() < self._settings.failure_rate:
            return SynthesisResult(
                request_id=request.request_id, status="failed", failure_reason="simulated synthesis failure"
            )
        noisy = {name: value + rng.normal(0.0, self._settings.noise_std) for name, value in values.items()}
        noisy["phase_purity"] = float(rng.uniform(0.8, 1.0))
        return SynthesisResult(request_id=request.request_id, status="completed", measurements=noisy, operator="sim")


def target_amounts(formula: str, batch_mmol: float) -> dict[str, float]:
    """Millimoles of each element for ``batch_mmol`` formula units of ``formula``."""
    return {str(el): float(amount * batch_mmol) for el, amount in Composition(formula).items()}


def _implausible(measurements: dict[str, float]) -> str | None:
    bad = [name for name, value in measurements.items() if not math.isfinite(value)]
    if bad:
        return f"non-finite measurements {bad}"
    if measurements.get("Tc_K", 0.0) < 0:
        return f"negative Tc_K {measurements['Tc_K']}"
    if not 0.0 <= measurements.get("phase_purity", 1.0) <= 1.0:
        return f"phase_purity {measurements['phase_purity']} outside [0, 1]"
    return None


class SynthesisOracle:
    """Jobs become synthesis requests; results become outcomes.

    Args:
        backend: Where requests go.
        conditions: Conditions sent with each request.
        values: Objective name -> measurement name.
    """

    name = "synthesis"
    version = VERSION

    def __init__(self, backend: SynthesisBackend, conditions: SynthesisConditions, values: dict[str, str]) -> None:
        self._backend = backend
        self._conditions = conditions
        self._values = values

    def submit(self, requests: list[JobRequest]) -> None:
        """Send one synthesis request per job attempt the lab does not hold yet (request id: the attempt's key)."""
        sent = self._backend.sent()
        self._backend.send(
            [
                SynthesisRequest(
                    request_id=job.key,
                    job_id=job.job_id,
                    candidate_id=job.candidate_id,
                    formula=job.formula,
                    target_mmol=target_amounts(job.formula, self._conditions.batch_mmol),
                    conditions=self._conditions,
                )
                for job in requests
                if job.key not in sent
            ]
        )

    def known(self, requests: list[JobRequest]) -> set[str]:
        """Job ids whose attempt the lab holds (for a file queue: from its ledger, so across restarts)."""
        sent = self._backend.sent()
        return {job.job_id for job in requests if job.key in sent}

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        """Outcomes, by job id, of the attempts among ``requests`` whose results arrived (again on every call)."""
        sent, results = self._backend.sent(), self._backend.results()
        return {job.job_id: self._outcome(sent[job.key], results[job.key]) for job in requests if job.key in results}

    def _outcome(self, request: SynthesisRequest, result: SynthesisResult) -> OracleOutcome:
        reason = result.failure_reason or "no reason given"
        if result.status == "completed":
            reason = _implausible(result.measurements)
        provenance = {
            "oracle": self.name,
            "version": self.version,
            "request": request.model_dump(mode="json"),
            "operator": result.operator,
            "finished_at": result.finished_at,
        }
        wall = elapsed_seconds(request.created_at)  # from the request to the campaign reading its result
        if reason is not None:
            return OracleOutcome(
                job_id=request.job_id, status="failed", error=reason, provenance=provenance, wall_seconds=wall
            )
        return OracleOutcome(
            job_id=request.job_id,
            status="completed",
            values=rename_values(result.measurements, self._values),
            document=result.model_dump(mode="json"),
            provenance=provenance,
            wall_seconds=wall,
        )

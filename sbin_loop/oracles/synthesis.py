"""Robot (or human) synthesis as an oracle: requests go out as documents, measured results come back as documents.

A ``SynthesisBackend`` moves documents: ``FileQueueBackend`` writes each request as JSON into an outbox directory and
reads results that a lab robot, its controller or a person drops into an inbox directory; ``SimulatedLab`` replays a
table with noise, delays and failures (seeded per request) so campaigns and tests can rehearse the asynchronous path.
``SynthesisOracle`` turns jobs into requests and results into outcomes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymatgen.core import Composition

from sbin_loop.config import SimulatedLabConfig, SynthesisConditions
from sbin_loop.oracles.base import JobRequest, OracleOutcome, rename_values
from sbin_loop.oracles.dataset import table_values
from sbin_loop.space import FormulaTable
from sbin_loop.stores.documents import utc_now

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
    """Carries requests to a lab and results back."""

    def send(self, requests: list[SynthesisRequest]) -> None:
        """Hand requests to the lab."""
        ...

    def receive(self) -> list[SynthesisResult]:
        """Results that arrived since the last call."""
        ...


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


class FileQueueBackend:
    """Requests as ``outbox/<request>.json``; results read from ``inbox/*.json`` and moved to ``inbox/done/``.

    A result file that is not a valid ``SynthesisResult`` is moved to ``inbox/rejected/`` with a ``.error`` note.

    Args:
        outbox: Directory requests are written to.
        inbox: Directory results are read from.
    """

    def __init__(self, outbox: Path, inbox: Path) -> None:
        self.outbox, self.inbox = Path(outbox), Path(inbox)
        for directory in (self.outbox, self.inbox / "done", self.inbox / "rejected"):
            directory.mkdir(parents=True, exist_ok=True)

    def send(self, requests: list[SynthesisRequest]) -> None:
        """Write each request atomically (a reader never sees a half-written file)."""
        for request in requests:
            target = self.outbox / f"{_safe_name(request.request_id)}.json"
            partial = target.with_suffix(".partial")
            partial.write_text(request.model_dump_json(indent=1))
            partial.replace(target)

    def receive(self) -> list[SynthesisResult]:
        """Parse and file away every result in the inbox."""
        results = []
        for path in sorted(self.inbox.glob("*.json")):
            try:
                results.append(SynthesisResult.model_validate_json(path.read_text()))
            except (ValidationError, ValueError) as error:
                logger.warning("rejected synthesis result %s: %s", path.name, error)
                (self.inbox / "rejected" / f"{path.name}.error").write_text(str(error))
                path.replace(self.inbox / "rejected" / path.name)
                continue
            path.replace(self.inbox / "done" / path.name)
        return results


class SimulatedLab:
    """A lab that replays a table with Gaussian noise, uniform random delays and random failures.

    Randomness is drawn from the seed and the request id, so a request gets the same answer whatever the order.

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
        self._due: dict[str, tuple[float, SynthesisResult]] = {}

    def send(self, requests: list[SynthesisRequest]) -> None:
        """Schedule each request's result."""
        for request in requests:
            self._due[request.request_id] = (self._clock() + self._delay(request), self._result(request))

    def receive(self) -> list[SynthesisResult]:
        """Results whose delay has passed."""
        now = self._clock()
        ready = [request_id for request_id, (due, _) in self._due.items() if due <= now]
        return [self._due.pop(request_id)[1] for request_id in ready]

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
        self._requests: dict[str, SynthesisRequest] = {}
        self._finished: dict[str, OracleOutcome] = {}
        self._sent_at: dict[str, float] = {}

    def submit(self, requests: list[JobRequest]) -> None:
        """Send one synthesis request per job attempt not sent yet (the request id is the attempt's key)."""
        batch = []
        for job in requests:
            if job.key in self._requests:
                continue
            request = SynthesisRequest(
                request_id=job.key,
                job_id=job.job_id,
                candidate_id=job.candidate_id,
                formula=job.formula,
                target_mmol=target_amounts(job.formula, self._conditions.batch_mmol),
                conditions=self._conditions,
            )
            self._requests[job.key] = request
            self._sent_at[job.key] = time.monotonic()
            batch.append(request)
        self._backend.send(batch)

    def known(self, requests: list[JobRequest]) -> set[str]:
        """Job ids whose attempt was sent."""
        return {job.job_id for job in requests if job.key in self._requests}

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        """Outcomes, by job id, of the attempts among ``requests`` whose results arrived."""
        for result in self._backend.receive():
            request = self._requests.get(result.request_id)
            if request is None:
                logger.warning("synthesis result for unknown request %s ignored", result.request_id)
                continue
            self._finished[result.request_id] = self._outcome(request, result)
        return {job.job_id: self._finished[job.key] for job in requests if job.key in self._finished}

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
        wall = time.monotonic() - self._sent_at[request.request_id]
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

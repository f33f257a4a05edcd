"""Robot (or human) synthesis as an oracle: requests go out as documents, measured results come back as documents.

A ``SynthesisBackend`` carries documents and remembers them: ``FileQueueBackend`` (``sbin_loop.oracles.file_queue``)
writes each request as JSON into an outbox directory and reads results that a lab robot, its controller or a person
drops into an inbox directory; ``SimulatedLab`` replays a table with noise, delays and failures (seeded per request)
so campaigns and tests can rehearse the asynchronous path. ``SynthesisOracle`` turns jobs into requests and results
into outcomes, and keeps no state of its own: what was sent and what came back is whatever its backend holds.

A result is checked twice. Its document must match ``SynthesisResult`` (measurements are JSON numbers, not strings or
booleans), or the file queue rejects the file and it never reaches the campaign. Its values must be plausible
(finite, at most ``MAX_MAGNITUDE`` in size, ``Tc_K`` not negative, ``phase_purity`` in [0, 1]), or the job fails with
the reason; the loop then fails any objective outside its ``bounds``, as for every oracle.

The simulated lab keeps its requests and results in memory: after a restart it knows none of them, so the loop sends
the lost requests again, and being seeded per request they get the same answers.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymatgen.core import Composition

from sbin_loop.oracles.base import JobRequest, OracleOutcome, rename_values
from sbin_loop.oracles.config import SimulatedLabConfig, SynthesisConditions
from sbin_loop.oracles.dataset import table_values
from sbin_loop.safe_files import printable
from sbin_loop.seeds import derived_rng
from sbin_loop.space import FormulaTable
from sbin_loop.space.pool import composition_key_of
from sbin_loop.stores.documents import elapsed_seconds, utc_now

VERSION = "1"

MAX_MAGNITUDE = 1e30
"""Largest measured magnitude taken as a value: beyond any quantity measured here, and far inside float32's range."""

MAX_NOTES = 2000
"""Longest ``notes`` (and ``failure_reason``) a lab may attach to a result, in characters."""


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
        measurements: Measured quantities as JSON numbers, e.g. ``Tc_K`` (kelvin) and ``phase_purity`` (fraction,
            0-1); a string or a boolean is refused, an integer too large for a float reads as infinite (and fails).
        failure_reason: Why the synthesis or measurement failed.
        operator: Robot or person who made the measurement.
        finished_at: When (ISO 8601, UTC).
        notes: The lab's free-text remarks, kept with the result.
    """

    model_config = ConfigDict(extra="forbid")

    request_id: str
    status: Literal["completed", "failed"]
    measurements: dict[str, float] = Field(default_factory=dict)
    failure_reason: str | None = Field(default=None, max_length=MAX_NOTES)
    operator: str = Field(default="", max_length=200)
    finished_at: str = Field(default_factory=utc_now, max_length=64)
    notes: str | None = Field(default=None, max_length=MAX_NOTES)

    @field_validator("measurements", mode="before")
    @classmethod
    def _json_numbers(cls, measurements: Any) -> Any:
        """Each measurement must be a number: ``true`` or ``"12.5"`` is a lab's mistake, not 1.0 K or 12.5 K."""
        if not isinstance(measurements, dict):
            return measurements  # the field's own validation names the problem
        numbers = {}
        for name, value in measurements.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"measurement {name!r} must be a JSON number, not {type(value).__name__}")
            try:
                numbers[name] = float(value)
            except OverflowError:
                numbers[name] = math.inf if value > 0 else -math.inf
        return numbers


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


def safe_name(text: str) -> str:
    """``text`` with every character but letters, digits, ``_``, ``.`` and ``-`` replaced by ``_`` (a file name)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


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
        return derived_rng(self._settings.seed, request.request_id)

    def _delay(self, request: SynthesisRequest) -> float:
        low, high = self._settings.delay_seconds
        return float(self._rng(request).uniform(low, high)) if high > low else low

    def _result(self, request: SynthesisRequest) -> SynthesisResult:
        rng = self._rng(request)
        rng.uniform()  # the delay's draw
        values = self._values.get(composition_key_of(request.candidate_id))
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
    """Why measurements cannot be values (non-finite, huge, a negative Tc, a purity outside [0, 1]), or None."""
    bad = [name for name, value in measurements.items() if not math.isfinite(value)]
    if bad:
        return f"non-finite measurements {bad}"
    huge = [name for name, value in measurements.items() if abs(value) > MAX_MAGNITUDE]
    if huge:
        return f"measurements {huge} exceed {MAX_MAGNITUDE:g} in magnitude"
    if measurements.get("Tc_K", 0.0) < 0:
        return f"negative Tc_K {measurements['Tc_K']}"
    if not 0.0 <= measurements.get("phase_purity", 1.0) <= 1.0:
        return f"phase_purity {measurements['phase_purity']} outside [0, 1]"
    return None


class SynthesisOracle:
    """Jobs become synthesis requests; results become outcomes.

    Measured objectives outside their ``bounds`` are failed by the loop (``sbin_loop.measurements``), as for every
    oracle's outcome.

    Args:
        backend: Where requests go.
        conditions: Conditions sent with each request.
        values: Objective name -> measurement name.
    """

    name = "synthesis"
    version = VERSION

    def __init__(
        self,
        backend: SynthesisBackend,
        conditions: SynthesisConditions,
        values: dict[str, str],
    ) -> None:
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
        values = rename_values(result.measurements, self._values)
        reason = printable(result.failure_reason or "no reason given")  # the loop logs it: one line
        if result.status == "completed":
            reason = _implausible(result.measurements)
        provenance = {
            "oracle": self.name,
            "version": self.version,
            "request": request.model_dump(mode="json"),
            "operator": result.operator,
            "finished_at": result.finished_at,
        }
        if result.notes is not None:
            provenance["notes"] = result.notes
        wall = elapsed_seconds(request.created_at)  # from the request to the campaign reading its result
        if reason is not None:
            return OracleOutcome(
                job_id=request.job_id, status="failed", error=reason, provenance=provenance, wall_seconds=wall
            )
        return OracleOutcome(
            job_id=request.job_id,
            status="completed",
            values=values,
            document=result.model_dump(mode="json"),
            provenance=provenance,
            wall_seconds=wall,
        )

    def close(self) -> None:
        """Nothing to release."""

"""The oracle contract: submit a batch of candidates, poll for outcomes, get validated results back.

Every oracle (dataset replay, force-field workflow, VASP on a cluster, a synthesis robot) implements ``Oracle``.
Outcomes are checked here, in one place, before anything reaches the store: a job whose values are missing, NaN or
infinite is turned into a failure with that reason, so it can never be ingested as data.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class JobRequest(BaseModel):
    """What an oracle is asked to evaluate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    candidate_id: str
    formula: str
    round: int
    attempt: int = 1

    @property
    def key(self) -> str:
        """Identity of this attempt of the job: a retry is a new submission of the same job."""
        return f"{self.job_id}@{self.attempt}"


class OracleOutcome(BaseModel):
    """What came back for one job: values on success, a reason on failure, provenance either way.

    Attributes:
        job_id: The job.
        status: ``completed`` or ``failed``.
        values: Scalar results keyed by objective name (what the model learns).
        error: Why the job failed.
        provenance: Oracle name and version, code versions, inputs, where the job ran.
        document: The oracle's full validated result (structures, per-site energies, densities...), JSON-ready.
        wall_seconds: Wall time of the computation.
    """

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    job_id: str
    status: Literal["completed", "failed"]
    values: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    provenance: dict = Field(default_factory=dict)
    document: dict | None = None
    wall_seconds: float = 0.0


class Oracle(Protocol):
    """A source of results for candidates."""

    name: str
    version: str

    def submit(self, requests: list[JobRequest]) -> None:
        """Start the jobs."""
        ...

    def known(self, requests: list[JobRequest]) -> set[str]:
        """Job ids among ``requests`` whose attempt this oracle has accepted (running or finished).

        The loop asks this after a restart before submitting an attempt whose submission it had not recorded, so a
        crash between submitting and recording never launches the same attempt twice.
        """
        ...

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        """Outcomes, by job id, of the finished attempts among ``requests``; running ones are absent."""
        ...

    def close(self) -> None:
        """Release what the oracle holds (worker processes, connections) once the campaign is finished."""
        ...


def checked_outcome(outcome: OracleOutcome, expected: tuple[str, ...]) -> OracleOutcome:
    """Turn a completed outcome with missing or non-finite expected values into a failure naming them.

    Args:
        outcome: Raw outcome from an oracle.
        expected: Names of the values the campaign needs; at least one must be present and finite.
    """
    if outcome.status != "completed":
        return outcome
    bad = {name: outcome.values[name] for name in expected if name in outcome.values}
    bad = {name: value for name, value in bad.items() if not math.isfinite(value)}
    present = [name for name in expected if name in outcome.values]
    if bad or not present:
        reason = f"non-finite values {bad}" if bad else f"none of the expected values {list(expected)} returned"
        return outcome.model_copy(update={"status": "failed", "values": {}, "document": None, "error": reason})
    return outcome.model_copy(update={"values": {name: outcome.values[name] for name in present}})


def rename_values(quantities: dict[str, float], mapping: dict[str, str]) -> dict[str, float]:
    """An oracle's quantities under their own names, plus each mapped quantity under its objective's name.

    Objectives whose quantity was not produced are left out (the loop then records the job as failed).

    Args:
        quantities: Scalar results by the oracle's names.
        mapping: Objective name -> quantity name.
    """
    renamed = {objective: quantities[quantity] for objective, quantity in mapping.items() if quantity in quantities}
    return {**quantities, **renamed}

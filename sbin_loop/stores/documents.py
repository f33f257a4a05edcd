"""Documents a campaign stores, one pydantic model each, validated on every write and read.

Every document carries ``schema_version``; a document written by an incompatible version is refused with a message
naming the collection and the version, rather than misread. Fields added later with a default (``stage`` of jobs,
results and rounds, ``predicted_means`` of picks) keep the version: documents written before them read unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sbin_loop.model.intervals import Interval

SCHEMA_VERSION = 1


def utc_now() -> str:
    """Current time as an ISO-8601 UTC string (stored as text so every backend round-trips it unchanged)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def elapsed_seconds(timestamp: str) -> float:
    """Seconds since a ``utc_now`` timestamp."""
    return (datetime.now(UTC) - datetime.fromisoformat(timestamp)).total_seconds()


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    campaign: str


class CampaignDoc(_Document):
    """The campaign itself: its validated config, where it came from, and why it stopped (if it did).

    ``initial_told`` records that the measurements of ``budget.initial: {from: FILE}`` are stored.
    """

    config: dict
    created_at: str = Field(default_factory=utc_now)
    sbin_version: str
    stop_reason: str | None = None
    initial_told: bool = False


TOLD = "told"
"""``oracle`` of the jobs and results of measurements told to a campaign (``Campaign.tell``, ``budget.initial: {from:
FILE}``) for candidates that were not a pending pick. Such jobs belong to the round that was open when they were told,
or to the next round (not stored yet) when none was."""

JobState = Literal["pending", "submitted", "completed", "failed"]


class JobDoc(_Document):
    """One oracle job: the evaluation of one candidate in one round by one oracle stage.

    The id is derived from (campaign, round, stage, candidate), so writing the intent to launch twice yields one job.
    ``stage`` is the index of the oracle in ``config.oracles`` and ``oracle`` its name. States: ``pending`` (intent
    written, not yet known to be submitted), ``submitted`` (the oracle accepted it), ``completed`` (its result is
    ingested) or ``failed`` (every allowed attempt failed; never ingested). ``submitted_at`` is when the current
    attempt was submitted, for timeouts.
    """

    job_id: str
    round: int
    candidate_id: str
    formula: str
    oracle: str
    stage: int = Field(default=0, ge=0)
    state: JobState
    attempts: int = 1
    errors: list[str] = Field(default_factory=list)
    submitted_at: str | None = None
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)


class ResultDoc(_Document):
    """A measured or computed result, keyed by the job that produced it (ingesting it twice changes nothing).

    ``document`` is the oracle's full validated output when it has one (relaxed structure, per-site defect
    energies, densities, code versions), kept beside the values the model learns from. ``oracle`` and ``stage`` are
    those of the job.
    """

    job_id: str
    round: int
    candidate_id: str
    formula: str
    values: dict[str, float]
    oracle: str
    stage: int = Field(default=0, ge=0)
    provenance: dict = Field(default_factory=dict)
    document: dict | None = None
    created_at: str = Field(default_factory=utc_now)


def merged_values(results: Iterable[ResultDoc]) -> dict[str, dict[str, float]]:
    """Measured values per candidate over all its results: what the model trains on.

    Where several oracle stages measured the same value of a candidate, the latest stage's value is kept (later stages
    are the higher-fidelity ones, e.g. synthesis after a force field); values only an earlier stage measured are kept
    too. Candidates appear in the order of their first result by stage, then in the order given.
    """
    merged: dict[str, dict[str, float]] = {}
    for result in sorted(results, key=lambda result: result.stage):
        merged.setdefault(result.candidate_id, {}).update(result.values)
    return merged


class CandidateInterval(BaseModel):
    """Model interval for one candidate and objective."""

    model_config = ConfigDict(extra="forbid")

    candidate_id: str
    formula: str
    objective: str
    interval: Interval
    observed: float | None = None


class SelectionEntry(BaseModel):
    """One pick of a round and why it was picked.

    Attributes:
        policy: Acquisition rule that chose it (a component's rule in a composite policy).
        acquisition: Acquisition function (e.g. ``qLogEI``).
        acquisition_value: Its value when chosen, given the earlier picks of the batch (``None`` for random picks).
        reason: One line: rule, objective, acquisition value and the posterior behind the choice.
        details: The numbers behind the choice (posterior ``mean``/``std`` of the rule's objective, ``p_feasible``,
            ``cost``).
        prediction: Interval predicted for the policy's objective before the result existed.
        predicted_means: Predicted mean of every objective at pick time (empty for random picks in round 0); later
            oracle stages rank picks by it where no earlier stage measured the value.
        predictions: Interval predicted for every objective at pick time (empty for random picks).
    """

    model_config = ConfigDict(extra="forbid")

    candidate_id: str
    formula: str
    policy: str
    acquisition: str
    acquisition_value: float | None
    reason: str | None = None
    details: dict[str, float] = Field(default_factory=dict)
    prediction: Interval | None = None
    predicted_means: dict[str, float] = Field(default_factory=dict)
    predictions: dict[str, Interval] = Field(default_factory=dict)


RoundState = Literal["proposed", "launched", "ingested", "trained", "complete"]


class RoundDoc(_Document):
    """A round: picks (written before anything is launched), then results, retraining and intervals.

    Attributes:
        state: ``proposed`` once the picks are stored, ``launched`` once every job of oracle stage ``stage`` is
            submitted, ``ingested`` once every job of every stage is completed or failed, ``trained`` once the
            retrained model's checkpoint is saved, ``complete`` once intervals are stored.
        stage: Index in ``config.oracles`` of the stage whose jobs are launched; a round goes through ``launched``
            once per stage, each stage launched after the previous one's jobs are all completed or failed.
        selected: Picks in the order they were chosen, with the prediction made before their results arrived.
        intervals: After retraining: ``selected``, ``best_observed`` and ``top_predicted`` candidate intervals.
    """

    round: int
    state: RoundState
    stage: int = Field(default=0, ge=0)
    seed: int
    selected: list[SelectionEntry]
    n_evaluations: int = 0
    n_failed: int = 0
    best_observed: CandidateInterval | None = None
    intervals: dict[str, list[CandidateInterval]] = Field(default_factory=dict)
    training: dict | None = None
    checkpoint: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)

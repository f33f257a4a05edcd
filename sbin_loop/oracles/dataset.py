"""Dataset replay: answers come from a table of measured values, as if each were an experiment.

Used for retrospective campaigns and benchmarks (how fast would the loop have found the best compounds in a known
table?) and as the quickstart's oracle. Duplicate measurements of one composition are replayed as their median.

With a ledger file the replay behaves like an external job queue: every submission is appended (and flushed to disk)
before ``submit`` returns, so a restarted campaign sees which attempts were already launched, and a duplicate launch
would be visible as a repeated key. Optional latency and Gaussian noise (seeded per job) exercise the loop's
asynchronous path and noisy observations.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sbin_loop.oracles.base import JobRequest, OracleOutcome
from sbin_loop.oracles.ledger import append_lines, read_json_objects
from sbin_loop.seeds import derived_rng
from sbin_loop.space import FormulaTable
from sbin_loop.space.pool import composition_key_of


def table_values(table: FormulaTable, columns: dict[str, str]) -> dict[str, dict[str, float]]:
    """Values of each composition of a table: ``composition_key`` -> {name: value} for ``columns`` (name -> column).

    Keyed by composition, not by candidate id, so a candidate spelled otherwise in the pool than in the replayed
    table (``TiSrO3`` against ``SrTiO3``) still finds its row.
    """
    frame = table.frame.set_index("composition_key")
    return {
        str(key): {name: float(row[column]) for name, column in columns.items()}
        for key, row in frame[list(columns.values())].iterrows()
    }


class DatasetReplayOracle:
    """Replays values from a ``FormulaTable``.

    Args:
        table: Unique compositions with value columns.
        columns: Mapping of objective name -> table column.
        ledger: JSON-lines file recording every submission; ``None`` keeps submissions in memory only.
        latency_seconds: An answer becomes available this long after its submission.
        noise_std: Standard deviation of Gaussian noise added to each replayed value (seeded by the job key).
        seed: Seed of the noise.
    """

    name = "dataset"
    version = "2"

    def __init__(
        self,
        table: FormulaTable,
        columns: dict[str, str],
        ledger: Path | None = None,
        latency_seconds: float = 0.0,
        noise_std: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._values = table_values(table, columns)
        self._source = str(table.source) if table.source is not None else None
        self._ledger = ledger
        self._latency = latency_seconds
        self._noise = noise_std
        self._seed = seed
        self._submitted: dict[str, float] = self._read_ledger()

    def _read_ledger(self) -> dict[str, float]:
        if self._ledger is None:
            return {}
        submitted = {}
        for entry in read_json_objects(self._ledger):
            submitted.setdefault(entry["key"], entry["time"])
        return submitted

    def submit(self, requests: list[JobRequest]) -> None:
        """Record the submissions (durably, with a ledger) and start their latency clocks."""
        now = time.time()
        if self._ledger is not None and requests:
            append_lines(self._ledger, (json.dumps({"key": request.key, "time": now}) for request in requests))
        for request in requests:
            self._submitted.setdefault(request.key, now)

    def known(self, requests: list[JobRequest]) -> set[str]:
        """Jobs whose attempt was submitted (from the ledger, so across restarts)."""
        return {request.job_id for request in requests if request.key in self._submitted}

    def _noisy(self, request: JobRequest, values: dict[str, float]) -> dict[str, float]:
        if self._noise == 0:
            return values
        rng = derived_rng(self._seed, request.key)
        return {name: value + float(rng.normal(0.0, self._noise)) for name, value in values.items()}

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        """Outcomes of submitted attempts whose latency has passed; a failure if the composition is not in the table."""
        outcomes = {}
        provenance = {"oracle": self.name, "version": self.version, "source": self._source}
        now = time.time()
        for request in requests:
            submitted = self._submitted.get(request.key)
            if submitted is None or now - submitted < self._latency:
                continue
            values = self._values.get(composition_key_of(request.candidate_id))
            if values is None:
                outcomes[request.job_id] = OracleOutcome(
                    job_id=request.job_id,
                    status="failed",
                    error=f"{request.candidate_id} is not in the replayed table",
                    provenance=provenance,
                )
            else:
                outcomes[request.job_id] = OracleOutcome(
                    job_id=request.job_id,
                    status="completed",
                    values=self._noisy(request, values),
                    provenance=provenance,
                    wall_seconds=now - submitted,
                )
        return outcomes

    def close(self) -> None:
        """Nothing to release."""

"""Dataset replay: answers come from a table of measured values, as if each were an experiment.

Used for retrospective campaigns and benchmarks (how fast would the loop have found the best compounds in a known
table?) and as the quickstart's oracle. Duplicate measurements of one composition are replayed as their median.
"""

from __future__ import annotations

import time
from pathlib import Path

from sbin_loop.oracles.base import JobRequest, OracleOutcome
from sbin_loop.space import FormulaTable


class DatasetReplayOracle:
    """Replays values from a ``FormulaTable``.

    Args:
        table: Unique compositions with value columns.
        columns: Mapping of objective name -> table column.
    """

    name = "dataset"
    version = "1"

    def __init__(self, table: FormulaTable, columns: dict[str, str]) -> None:
        self._columns = columns
        frame = table.frame.set_index("candidate_id")
        self._values = {
            candidate: {name: float(row[column]) for name, column in columns.items()}
            for candidate, row in frame[list(columns.values())].iterrows()
        }
        self._source = str(table.source) if isinstance(table.source, Path) else None
        self._submitted: dict[str, JobRequest] = {}

    def submit(self, requests: list[JobRequest]) -> None:
        """Record the jobs; replay answers are ready at once."""
        for request in requests:
            self._submitted[request.job_id] = request

    def poll(self, job_ids: list[str]) -> dict[str, OracleOutcome]:
        """Outcomes for submitted jobs: the table's values, or a failure if the composition is not in the table."""
        outcomes = {}
        for job_id in job_ids:
            request = self._submitted.get(job_id)
            if request is None:
                continue
            start = time.perf_counter()
            values = self._values.get(request.candidate_id)
            provenance = {"oracle": self.name, "version": self.version, "source": self._source}
            if values is None:
                outcomes[job_id] = OracleOutcome(
                    job_id=job_id,
                    status="failed",
                    error=f"{request.candidate_id} is not in the replayed table",
                    provenance=provenance,
                )
                continue
            outcomes[job_id] = OracleOutcome(
                job_id=job_id,
                status="completed",
                values=values,
                provenance=provenance,
                wall_seconds=time.perf_counter() - start,
            )
        return outcomes

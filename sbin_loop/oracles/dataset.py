"""Dataset replay: answers come from a table of measured values, as if each were an experiment.

Used for retrospective campaigns and benchmarks (how fast would the loop have found the best compounds in a known
table?) and as the quickstart's oracle. Duplicate measurements of one composition are replayed as their median.
"""

from __future__ import annotations

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
        self._submitted: set[str] = set()

    def submit(self, requests: list[JobRequest]) -> None:
        """Record the jobs; replay answers are ready at once."""
        self._submitted.update(request.key for request in requests)

    def known(self, requests: list[JobRequest]) -> set[str]:
        """Jobs submitted to this replay (process-local: a restarted campaign resubmits, which costs nothing)."""
        return {request.job_id for request in requests if request.key in self._submitted}

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        """Outcomes for submitted jobs: the table's values, or a failure if the composition is not in the table."""
        outcomes = {}
        provenance = {"oracle": self.name, "version": self.version, "source": self._source}
        for request in requests:
            if request.key not in self._submitted:
                continue
            values = self._values.get(request.candidate_id)
            if values is None:
                outcomes[request.job_id] = OracleOutcome(
                    job_id=request.job_id,
                    status="failed",
                    error=f"{request.candidate_id} is not in the replayed table",
                    provenance=provenance,
                )
            else:
                outcomes[request.job_id] = OracleOutcome(
                    job_id=request.job_id, status="completed", values=values, provenance=provenance
                )
        return outcomes

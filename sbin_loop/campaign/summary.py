"""The per-round summary a user reads: progress, the best measured value and how certain the model is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sbin_loop.stores.documents import RoundDoc


@dataclass(frozen=True)
class RoundSummary:
    """The per-round line a user reads: progress, best so far and how certain the model is."""

    round: int
    n_evaluations: int
    n_failed: int
    best_candidate: str | None
    best_value: float | None
    mean_interval_width: float | None
    seconds: float

    def line(self, objective: str, unit: str) -> str:
        """Human-readable one-liner."""
        best = "n/a" if self.best_value is None else f"{self.best_value:.2f} {unit} ({self.best_candidate})".strip()
        width = "n/a" if self.mean_interval_width is None else f"{self.mean_interval_width:.2f} {unit}".strip()
        return (
            f"round {self.round:3d} | evaluations {self.n_evaluations:5d} | failed {self.n_failed} | "
            f"best {objective} {best} | mean 95% interval width {width} | {self.seconds:.1f} s"
        )


def round_summary(doc: RoundDoc, objective: str, seconds: float = 0.0) -> RoundSummary:
    """The summary of a stored round, on ``objective`` (the policy's); ``seconds`` defaults to the round's timings."""
    widths = [entry.interval.width for entry in doc.intervals.get("selected", []) if entry.objective == objective]
    best = doc.best_observed
    return RoundSummary(
        round=doc.round,
        n_evaluations=doc.n_evaluations,
        n_failed=doc.n_failed,
        best_candidate=best.candidate_id if best else None,
        best_value=best.observed if best else None,
        mean_interval_width=float(np.mean(widths)) if widths else None,
        seconds=seconds or sum(doc.timings.values()),
    )

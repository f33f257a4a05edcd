"""The manual oracle: a scientist measures the picks by hand and tells the campaign the results.

Nothing is launched. Every submitted attempt counts as accepted (so a restart never "resubmits" anything) and polling
never returns an outcome: results reach the store only through ``Campaign.tell`` / ``sbin tell``.
"""

from __future__ import annotations

from sbin_loop.oracles.base import JobRequest, OracleOutcome


class ManualOracle:
    """An oracle whose answers are told, never polled."""

    name = "manual"
    version = "1"

    def submit(self, requests: list[JobRequest]) -> None:
        """Nothing to launch: the picks are listed by ``ask``."""

    def known(self, requests: list[JobRequest]) -> set[str]:
        """Every attempt is accepted as soon as it is asked for."""
        return {request.job_id for request in requests}

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        """No outcome ever arrives by polling."""
        return {}

    def close(self) -> None:
        """Nothing to release."""

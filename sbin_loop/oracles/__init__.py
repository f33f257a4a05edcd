"""Oracles: where the values of picked candidates come from."""

from sbin_loop.oracles.base import JobRequest, Oracle, OracleOutcome, checked_outcome
from sbin_loop.oracles.dataset import DatasetReplayOracle

__all__ = ["DatasetReplayOracle", "JobRequest", "Oracle", "OracleOutcome", "checked_outcome"]

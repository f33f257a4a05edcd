"""Acquisition policies: which candidates a campaign evaluates next."""

from __future__ import annotations

from sbin_loop.config import PolicyConfig
from sbin_loop.policies.base import Policy, PoolScores, Selection
from sbin_loop.policies.expected_improvement import ExpectedImprovementPolicy
from sbin_loop.policies.random_policy import RandomPolicy

__all__ = ["ExpectedImprovementPolicy", "Policy", "PoolScores", "RandomPolicy", "Selection", "build_policy"]


def build_policy(config: PolicyConfig) -> Policy:
    """The policy named by a campaign's ``policy`` section."""
    if config.kind == "expected_improvement":
        return ExpectedImprovementPolicy(batch_size=config.batch_size)
    return RandomPolicy(batch_size=config.batch_size)

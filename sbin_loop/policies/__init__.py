"""Acquisition policies: which candidates a campaign evaluates next.

``build_policy`` turns a campaign's ``policy`` section into a policy: unconstrained ``random`` needs no model; every
other configuration is a ``BatchPolicy`` that fills the batch greedily on posterior draws cached once per round.
"""

from __future__ import annotations

from sbin_loop.config import PolicyConfig
from sbin_loop.policies.base import Policy, PoolScores, Selection
from sbin_loop.policies.batch import BatchPolicy
from sbin_loop.policies.random_policy import RandomPolicy
from sbin_loop.policies.scoring import draw_pool_scores

__all__ = ["BatchPolicy", "Policy", "PoolScores", "RandomPolicy", "Selection", "build_policy", "draw_pool_scores"]


def build_policy(config: PolicyConfig) -> Policy:
    """The policy described by a campaign's ``policy`` section."""
    if not config.needs_model:
        return RandomPolicy(batch_size=config.batch_size)
    return BatchPolicy(config)

"""Acquisition policies: which candidates a campaign evaluates next.

``build_policy`` turns a campaign's ``policy`` section into a policy: unconstrained ``random`` needs no model; every
other configuration of sbin's own rules is a ``BatchPolicy`` that fills the batch greedily on posterior draws cached
once per round; any other kind is a policy a third-party package registers (``sbin_loop.plugins``).
"""

from __future__ import annotations

from sbin_loop import plugins
from sbin_loop.config import PolicyConfig
from sbin_loop.policies.base import Policy, PoolScores, Selection
from sbin_loop.policies.batch import BatchPolicy
from sbin_loop.policies.random_policy import RandomPolicy
from sbin_loop.policies.scoring import draw_pool_scores

__all__ = ["BatchPolicy", "Policy", "PoolScores", "RandomPolicy", "Selection", "build_policy", "draw_pool_scores"]


def build_policy(config: PolicyConfig) -> Policy:
    """The policy described by a campaign's ``policy`` section (a plugin's, for a kind sbin does not provide)."""
    if config.plugin:
        return plugins.load(plugins.POLICIES, config.kind)(config)
    if not config.needs_model:
        return RandomPolicy(batch_size=config.batch_size)
    return BatchPolicy(config)

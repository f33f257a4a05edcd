"""Acquisition policies: which candidates a campaign evaluates next.

``build_policy`` turns a campaign's ``policy`` section into a policy: unconstrained ``random`` needs no model; every
other configuration of sbin's own rules is a ``BatchPolicy`` that fills the batch greedily on posterior draws cached
once per round; any other kind is a policy a third-party package registers (``sbin_loop.plugins``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbin_loop import plugins
from sbin_loop.lazy import lazy_exports

if TYPE_CHECKING:
    from sbin_loop.policies.base import Policy
    from sbin_loop.policies.config import PolicyConfig

__getattr__, __dir__, _LAZY = lazy_exports(
    __name__,
    {
        "base": "Policy PoolScores Selection",
        "batch": "BatchPolicy",
        "random_policy": "RandomPolicy",
        "scoring": "draw_pool_scores",
    },
)
__all__ = ["build_policy", *_LAZY]


def build_policy(config: PolicyConfig) -> Policy:
    """The policy described by a campaign's ``policy`` section (a plugin's, for a kind sbin does not provide)."""
    from sbin_loop.policies.batch import BatchPolicy
    from sbin_loop.policies.random_policy import RandomPolicy

    if config.plugin:
        return plugins.load(plugins.POLICIES, config.kind)(config)
    if not config.needs_model:
        return RandomPolicy(batch_size=config.batch_size)
    return BatchPolicy(config)

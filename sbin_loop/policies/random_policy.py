"""Uniform random selection: the baseline every other policy must beat, and round 0 of every campaign."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sbin_loop.policies.base import PoolScores, Selection


@dataclass
class RandomPolicy:
    """Pick ``batch_size`` distinct candidates uniformly at random (seeded); needs no model.

    Attributes:
        batch_size: Candidates per round.
    """

    batch_size: int
    name: str = "random"
    needs_model: bool = False

    def select(self, scores: PoolScores | None, n_available: int, rng: np.random.Generator) -> Selection:
        """Uniform choice without replacement; ``scores`` is ignored."""
        q = min(self.batch_size, n_available)
        picks = [int(index) for index in rng.choice(n_available, size=q, replace=False)]
        return Selection(picks, [None] * q, [self.name] * q, ["uniform"] * q, ["uniform random pick"] * q, [{}] * q)

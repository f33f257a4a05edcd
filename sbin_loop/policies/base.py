"""What every acquisition policy receives and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class PoolScores:
    """Posterior draws of the objective for the candidates still available.

    Attributes:
        samples: ``S x N`` draws of the objective, oriented so that larger is better.
        best_observed: Best objective value measured so far, same orientation.
    """

    samples: torch.Tensor
    best_observed: float


@dataclass(frozen=True)
class Selection:
    """A policy's picks, in the order they were chosen.

    Attributes:
        indices: Positions in the available-candidate list.
        acquisition_values: The acquisition value of each pick when it was chosen (given the earlier picks);
            ``None`` for policies without an acquisition function.
        policy: Name of the policy that chose them.
        acquisition: Name of the acquisition function (e.g. ``qLogEI``).
    """

    indices: list[int]
    acquisition_values: list[float | None]
    policy: str
    acquisition: str


class Policy(Protocol):
    """An acquisition policy picks up to ``batch_size`` distinct candidates from a pool."""

    name: str
    needs_model: bool

    def select(self, scores: PoolScores | None, n_available: int, rng: np.random.Generator) -> Selection:
        """Pick candidates.

        Args:
            scores: Posterior draws over the available candidates (``None`` for policies that need no model).
            n_available: Number of available candidates.
            rng: Seeded generator for any random choice.
        """
        ...

"""What every acquisition policy receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class PoolScores:
    """Posterior draws for the candidates still available, and what is known about the measured ones.

    All values are oriented so that larger is better (minimised objectives are negated); ``signs`` maps them back.

    Attributes:
        samples: ``S x N x m`` posterior function draws of the ``m`` objectives for the ``N`` available candidates.
        objectives: Names of the ``m`` objectives.
        observed: ``n x m`` measured values of the evaluated candidates (NaN where not measured).
        baseline: ``S x n x m`` draws at the evaluated candidates, from the same posterior functions as ``samples``
            (the incumbent of noisy expected improvement); ``None`` if not drawn.
        signs: ``+1`` for maximised and ``-1`` for minimised objectives (all ``+1`` if not given).
        features: ``N x d`` descriptors of the available candidates, for the batch-diversity penalty.
        costs: Cost of evaluating each available candidate; gain-type acquisitions then pick by gain per unit cost.
    """

    samples: torch.Tensor
    objectives: tuple[str, ...]
    observed: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0))
    baseline: torch.Tensor | None = None
    signs: tuple[float, ...] | None = None
    features: np.ndarray | None = None
    costs: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.samples.ndim != 3 or self.samples.shape[-1] != len(self.objectives):
            raise ValueError(f"samples must be S x N x {len(self.objectives)}, got {tuple(self.samples.shape)}")

    @property
    def n_candidates(self) -> int:
        """``N``."""
        return self.samples.shape[1]

    def raw_samples(self, objective: str) -> torch.Tensor:
        """``S x N`` draws of one objective in its own units (not oriented)."""
        j = self.objectives.index(objective)
        sign = self.signs[j] if self.signs is not None else 1.0
        return self.samples[..., j] * sign


@dataclass(frozen=True)
class Selection:
    """A policy's picks, in the order they were chosen, and why each was chosen.

    Attributes:
        indices: Positions in the available-candidate list.
        acquisition_values: The acquisition value of each pick when it was chosen (given the earlier picks);
            ``None`` for picks without an acquisition function.
        policies: Rule that chose each pick (e.g. ``expected_improvement``).
        acquisitions: Acquisition function of each pick (e.g. ``qLogEI``).
        reasons: One line per pick: rule, objective, acquisition value and the posterior it was based on.
        details: Numbers behind each pick (posterior ``mean`` and ``std`` of the rule's objective, ``p_feasible``
            under constraints, ``cost`` when costs are given).
    """

    indices: list[int]
    acquisition_values: list[float | None]
    policies: list[str]
    acquisitions: list[str]
    reasons: list[str]
    details: list[dict[str, float]]


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

"""Acquisition rules scored on cached posterior draws, one pick at a time given the picks already made.

A scorer returns one value per available candidate given the ``pending`` picks of the batch so far. Every rule reads
the same ``S x N`` draws, so a whole batch costs a few passes over an ``S x N`` tensor instead of network
evaluations:

- ``expected_improvement``, ``noisy_expected_improvement`` and ``upper_confidence_bound`` are BoTorch's
  ``qLogExpectedImprovement``, ``qLogNoisyExpectedImprovement`` and ``qUpperConfidenceBound`` on a
  ``PosteriorSampleCache``; the pending picks enter as BoTorch ``X_pending``, so each pick maximises the joint
  (incremental) acquisition value of the batch.
- ``uncertainty`` is the posterior variance conditioned on the pending picks: the draws' residuals are projected off
  each pick's residual (Gaussian conditioning with the draws' empirical covariance on an exact observation), so a
  candidate that co-varies with a pick loses the variance the pick will explain.
- ``thompson`` is the argmax of one posterior draw per pick (distinct draws, chosen by the seeded generator).
- ``greedy`` is the posterior mean; ``random`` a seeded uniform score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import torch
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.acquisition.monte_carlo import MCAcquisitionFunction, qUpperConfidenceBound
from botorch.acquisition.objective import LinearMCObjective
from torch import Tensor

from sbin_loop.config import AcquisitionConfig
from sbin_loop.model.botorch_model import EnsembleMemberSampler, PosteriorSampleCache
from sbin_loop.policies.base import PoolScores

Scale = Literal["log_gain", "gain", "value"]
"""How to read a scorer's values: ``log_gain`` (log of a non-negative expected gain), ``gain`` (a non-negative gain)
or ``value`` (any real number). Only gains can be divided by a cost."""

MAX_CHUNK_ELEMENTS = 1 << 22
"""Bound on ``S x candidates x points`` draws held at once when evaluating a BoTorch acquisition function."""


class Scorer(Protocol):
    """One acquisition rule, evaluated on every available candidate given the picks made so far.

    Attributes:
        acquisition: Name stored with each pick (e.g. ``qLogEI``).
        scale: How its values may be combined with costs.
    """

    acquisition: str
    scale: Scale

    def values(self, pending: list[int], step: int) -> Tensor:
        """``N`` acquisition values given the batch's earlier picks ``pending``; ``step`` counts this rule's picks."""
        ...


def objective_weights(rule: AcquisitionConfig, objectives: tuple[str, ...]) -> Tensor:
    """``m`` weights of the oriented objectives that define a rule's scalar objective (one-hot for one objective)."""
    weights = rule.weights or {rule.objective or objectives[0]: 1.0}
    vector = torch.zeros(len(objectives), dtype=torch.float64)
    for name, weight in weights.items():
        vector[objectives.index(name)] = weight
    return vector


def objective_label(rule: AcquisitionConfig, objectives: tuple[str, ...]) -> str:
    """Human-readable scalar objective of a rule, e.g. ``Tc_K`` or ``1*Tc_K + -0.5*E_def``."""
    if rule.weights is None:
        return rule.objective or objectives[0]
    return " + ".join(f"{weight:g}*{name}" for name, weight in rule.weights.items())


def best_measured(scores: PoolScores, weights: Tensor, draws: Tensor) -> float:
    """Best measured value of the scalar objective; the lowest posterior mean of the pool if nothing is measured.

    Only evaluated candidates measured for every objective with a non-zero weight count.
    """
    used = weights != 0
    if scores.observed.numel():
        observed = scores.observed.to(torch.float64)[:, used]
        complete = ~torch.isnan(observed).any(dim=1)
        if complete.any():
            return float((observed[complete] @ weights[used]).max())
    return float(draws.mean(dim=0).min())


@dataclass
class BoTorchScorer:
    """A BoTorch MC acquisition function on cached draws; candidates are addressed by index.

    Attributes:
        function: The acquisition function (its model is a ``PosteriorSampleCache``).
        n_candidates: ``N``; cache rows beyond ``N`` (baseline draws) are never candidates.
        points_per_candidate: Draws per candidate in one evaluation besides the pending picks (the baseline of
            noisy EI), for bounding memory.
        acquisition: Name stored with each pick.
        scale: ``log_gain`` for the log-EI family, ``value`` for UCB.
    """

    function: MCAcquisitionFunction
    n_candidates: int
    points_per_candidate: int
    acquisition: str
    scale: Scale

    def values(self, pending: list[int], step: int) -> Tensor:
        """Acquisition value of each candidate added to the pending picks."""
        self.function.set_X_pending(torch.tensor(pending, dtype=torch.float64).unsqueeze(-1) if pending else None)
        n_draws = self.function.model.samples.shape[0]
        points = self.points_per_candidate + len(pending) + 1
        chunk = max(1, MAX_CHUNK_ELEMENTS // (n_draws * points))
        choices = torch.arange(self.n_candidates, dtype=torch.float64).reshape(-1, 1, 1)
        with torch.no_grad():
            return torch.cat([self.function(part) for part in choices.split(chunk)])


def _botorch_scorer(rule: AcquisitionConfig, scores: PoolScores, weights: Tensor, draws: Tensor) -> BoTorchScorer:
    samples = scores.samples.to(torch.float64)
    n_candidates = samples.shape[1]
    objective = LinearMCObjective(weights)
    sampler = EnsembleMemberSampler(samples.shape[0])
    if rule.kind == "noisy_expected_improvement":
        if scores.baseline is None or scores.baseline.shape[1] == 0:
            raise ValueError("noisy expected improvement needs posterior draws of the evaluated candidates")
        n_baseline = scores.baseline.shape[1]
        cache = PosteriorSampleCache(torch.cat([samples, scores.baseline.to(torch.float64)], dim=1))
        baseline = torch.arange(n_candidates, n_candidates + n_baseline, dtype=torch.float64).unsqueeze(-1)
        function = qLogNoisyExpectedImprovement(
            cache, baseline, sampler=sampler, objective=objective, prune_baseline=False, cache_root=False
        )
        return BoTorchScorer(function, n_candidates, n_baseline, "qLogNEI", "log_gain")
    cache = PosteriorSampleCache(samples)
    if rule.kind == "expected_improvement":
        best = best_measured(scores, weights, draws)
        function = qLogExpectedImprovement(cache, best_f=best, sampler=sampler, objective=objective)
        return BoTorchScorer(function, n_candidates, 0, "qLogEI", "log_gain")
    function = qUpperConfidenceBound(cache, beta=rule.beta, sampler=sampler, objective=objective)
    return BoTorchScorer(function, n_candidates, 0, "qUCB", "value")


@dataclass
class ConditionalVariance:
    """Posterior variance of each candidate given exact observations of the pending picks (ensemble covariance).

    Attributes:
        residuals: ``S x N`` draws minus their mean, progressively projected off the pending picks' residuals.
    """

    residuals: Tensor
    acquisition: str = "posterior_variance"
    scale: Scale = "gain"
    _conditioned: int = field(default=0, init=False)

    def values(self, pending: list[int], step: int) -> Tensor:
        """Variance left after conditioning on every pending pick."""
        for pick in pending[self._conditioned :]:
            direction = self.residuals[:, pick].clone()
            norm = direction @ direction
            if norm > 0:
                self.residuals -= torch.outer(direction, direction @ self.residuals / norm)
        self._conditioned = len(pending)
        return (self.residuals**2).sum(dim=0) / (self.residuals.shape[0] - 1)


@dataclass
class ThompsonSampling:
    """Argmax of one posterior draw per pick; pick ``k`` uses draw ``members[k]``.

    Attributes:
        draws: ``S x N`` draws of the scalar objective.
        members: Order in which draws are used (a seeded permutation; cycled if a rule makes more than ``S`` picks).
    """

    draws: Tensor
    members: np.ndarray
    acquisition: str = "thompson_draw"
    scale: Scale = "value"

    def values(self, pending: list[int], step: int) -> Tensor:
        """The ``step``-th chosen posterior draw."""
        return self.draws[int(self.members[step % len(self.members)])]


@dataclass
class FixedScores:
    """Scores that do not depend on earlier picks (posterior mean, or uniform random numbers).

    Attributes:
        scores: ``N`` values.
        acquisition: Name stored with each pick.
    """

    scores: Tensor
    acquisition: str
    scale: Scale = "value"

    def values(self, pending: list[int], step: int) -> Tensor:
        """The fixed scores."""
        return self.scores


def build_scorer(rule: AcquisitionConfig, scores: PoolScores, rng: np.random.Generator) -> tuple[Scorer, Tensor]:
    """The scorer of one rule and the ``S x N`` draws of its scalar objective.

    Args:
        rule: The acquisition rule.
        scores: Cached posterior draws of the pool.
        rng: Seeded generator (Thompson draw order, random scores).
    """
    weights = objective_weights(rule, scores.objectives)
    draws = scores.samples.to(torch.float64) @ weights  # S x N
    if rule.kind in ("expected_improvement", "noisy_expected_improvement", "upper_confidence_bound"):
        return _botorch_scorer(rule, scores, weights, draws), draws
    if rule.kind == "uncertainty":
        return ConditionalVariance(draws - draws.mean(dim=0)), draws
    if rule.kind == "thompson":
        return ThompsonSampling(draws, rng.permutation(draws.shape[0])), draws
    if rule.kind == "greedy":
        return FixedScores(draws.mean(dim=0), "posterior_mean"), draws
    return FixedScores(torch.as_tensor(rng.random(draws.shape[1])), "uniform"), draws

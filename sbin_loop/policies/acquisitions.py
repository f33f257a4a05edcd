"""Acquisition rules scored on cached posterior draws, one pick at a time given the picks already made.

A scorer returns one value per available candidate given the ``pending`` picks of the batch so far. Every rule reads
the same ``S x N`` draws, so a whole batch costs a few passes over an ``S x N`` tensor instead of network
evaluations:

- ``expected_improvement`` and ``noisy_expected_improvement`` are BoTorch's ``qLogExpectedImprovement`` on a
  ``PosteriorSampleCache`` against a per-draw incumbent that includes the pending picks (the incremental q-EI of
  the batch); ``upper_confidence_bound`` is qUCB's per-draw utility, maximised jointly with the pending picks.
- ``uncertainty`` is the posterior variance conditioned on the pending picks: the draws' residuals are projected off
  each pick's residual (Gaussian conditioning with the draws' empirical covariance on an exact observation), so a
  candidate that co-varies with a pick loses the variance the pick will explain.
- ``thompson`` is the argmax of one posterior draw per pick (distinct draws, chosen by the seeded generator).
- ``greedy`` is the posterior mean; ``random`` a seeded uniform score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
from botorch.acquisition.logei import qLogExpectedImprovement
from torch import Tensor

from sbin_loop.model.botorch_model import EnsembleMemberSampler, PosteriorSampleCache
from sbin_loop.policies.base import PoolScores
from sbin_loop.policies.config import AcquisitionConfig

Scale = Literal["log_gain", "gain", "value"]
"""How to read a scorer's values: ``log_gain`` (log of a non-negative expected gain), ``gain`` (a non-negative gain)
or ``value`` (any real number). Only gains can be divided by a cost."""

MAX_CHUNK_ELEMENTS = 1 << 22
"""Bound on the ``S x candidates`` draws scored at once by BoTorch's qLogEI."""


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


@runtime_checkable
class DiminishingScorer(Scorer, Protocol):
    """A scorer whose values never increase as picks are added, and that can value a subset of the candidates.

    A value from before a pick is then an upper bound of the value after it, so a batch can be filled by evaluating
    only the candidates whose bounds could still beat the best fresh value (lazy greedy, Minoux 1978).
    """

    def values_at(self, pending: list[int], candidates: Tensor) -> Tensor:
        """Values of the ``candidates`` (``K`` indices) given the batch's earlier picks ``pending``."""
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
class LogExpectedImprovement:
    """BoTorch ``qLogExpectedImprovement`` of each candidate over a per-draw incumbent that includes the picks so far.

    For draw ``s`` the incumbent is ``max(base[s], max over pending picks p of draws[s, p])``. The value of a
    candidate is then the log of its expected improvement *on top of* the pending picks, whose argmax is the
    sequential-greedy maximiser of the joint q-EI of the batch; it costs one ``S x N`` pass per pick instead of a
    joint evaluation of ``S x N x (picks + 1)`` draws. With ``base`` the best measured value this is qLogEI; with
    ``base`` the per-draw maximum over the measured candidates' draws it is noisy EI (BoTorch's qLogNEI with
    ``incremental=True`` on the same draws).

    Attributes:
        draws: ``S x N`` draws of the scalar objective.
        base: ``S`` incumbent values before any pick.
        acquisition: ``qLogEI`` or ``qLogNEI``.
    """

    draws: Tensor
    base: Tensor
    acquisition: str
    scale: Scale = "log_gain"

    def values(self, pending: list[int], step: int) -> Tensor:
        """Log expected improvement of each candidate over the incumbent and the pending picks."""
        return self.values_at(pending, torch.arange(self.draws.shape[1]))

    def values_at(self, pending: list[int], candidates: Tensor) -> Tensor:
        """Log expected improvement of ``candidates`` (``K`` indices); never increases as picks are added.

        A pick can only raise each draw's incumbent, and the (smoothed) improvement of every draw falls as its
        incumbent rises.
        """
        incumbent = self.base
        if pending:
            incumbent = torch.maximum(incumbent, self.draws[:, pending].max(dim=1).values)
        cache = PosteriorSampleCache(self.draws.unsqueeze(-1))
        function = qLogExpectedImprovement(
            cache, best_f=incumbent.unsqueeze(-1), sampler=EnsembleMemberSampler(self.draws.shape[0])
        )
        chunk = max(1, MAX_CHUNK_ELEMENTS // self.draws.shape[0])
        choices = candidates.to(torch.float64).reshape(-1, 1, 1)  # K x q=1 x d=1: the cache reads index d
        with torch.no_grad():
            return torch.cat([function(part) for part in choices.split(chunk)])


@dataclass
class UpperConfidenceBound:
    """qUCB on cached draws: ``E_s[max over the batch of mean + sqrt(beta pi / 2) |draw - mean|]``, added greedily.

    The per-draw utilities are BoTorch ``qUpperConfidenceBound``'s; a candidate's value is the joint qUCB of the
    pending picks plus it (equal to BoTorch's q = 1 value for the first pick).

    Attributes:
        utilities: ``S x N`` per-draw UCB utilities.
    """

    utilities: Tensor
    acquisition: str = "qUCB"
    scale: Scale = "value"

    @classmethod
    def from_draws(cls, draws: Tensor, beta: float) -> UpperConfidenceBound:
        """Utilities of ``S x N`` draws with exploration weight ``beta``."""
        mean = draws.mean(dim=0)
        return cls(mean + math.sqrt(beta * math.pi / 2) * (draws - mean).abs())

    def values(self, pending: list[int], step: int) -> Tensor:
        """Joint qUCB of the pending picks and each candidate."""
        if not pending:
            return self.utilities.mean(dim=0)
        best = self.utilities[:, pending].max(dim=1, keepdim=True).values
        return torch.maximum(self.utilities, best).mean(dim=0)


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
    if rule.kind == "expected_improvement":
        base = torch.full((draws.shape[0],), best_measured(scores, weights, draws), dtype=torch.float64)
        return LogExpectedImprovement(draws, base, "qLogEI"), draws
    if rule.kind == "noisy_expected_improvement":
        if scores.baseline is None or scores.baseline.shape[1] == 0:
            raise ValueError("noisy expected improvement needs posterior draws of the evaluated candidates")
        base = (scores.baseline.to(torch.float64) @ weights).max(dim=1).values
        return LogExpectedImprovement(draws, base, "qLogNEI"), draws
    if rule.kind == "upper_confidence_bound":
        return UpperConfidenceBound.from_draws(draws, rule.beta), draws
    if rule.kind == "uncertainty":
        return ConditionalVariance(draws - draws.mean(dim=0)), draws
    if rule.kind == "thompson":
        return ThompsonSampling(draws, rng.permutation(draws.shape[0])), draws
    if rule.kind == "greedy":
        return FixedScores(draws.mean(dim=0), "posterior_mean"), draws
    return FixedScores(torch.as_tensor(rng.random(draws.shape[1])), "uniform"), draws

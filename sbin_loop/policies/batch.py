"""A batch filled greedily on cached posterior draws by one or several acquisition rules, under constraints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from sbin_loop.policies.acquisitions import DiminishingScorer, Scale, build_scorer, objective_label
from sbin_loop.policies.base import PoolScores, Selection
from sbin_loop.policies.config import AcquisitionConfig, PolicyConfig


def feasibility(scores: PoolScores, config: PolicyConfig) -> Tensor | None:
    """``N`` probabilities that every constraint holds, estimated on the posterior draws (``None``: no constraint)."""
    if not config.constraints:
        return None
    holds = torch.ones(scores.samples.shape[:2], dtype=torch.bool)
    for constraint in config.constraints:
        values = scores.raw_samples(constraint.objective)
        if constraint.lower is not None:
            holds &= values >= constraint.lower
        if constraint.upper is not None:
            holds &= values <= constraint.upper
    return holds.to(torch.float64).mean(dim=0)


def per_unit_cost(values: Tensor, scale: Scale, costs: Tensor | None) -> Tensor:
    """Acquisition values turned into gain per unit cost (unchanged when no costs are given).

    Raises:
        ValueError: If costs are given for an acquisition that is not a non-negative gain (UCB, Thompson, mean).
    """
    if costs is None:
        return values
    if scale == "value":
        raise ValueError("cost-aware selection needs a gain-type acquisition (expected improvement or uncertainty)")
    costs = costs.to(values.dtype)
    return values - torch.log(costs) if scale == "log_gain" else values / costs


LAZY_CANDIDATES = 256
"""Candidates a diminishing scorer values first for a pick after the first: those with the best bounds."""


def lazy_values(
    scorer: DiminishingScorer, pending: list[int], step: int, bounds: Tensor, eligible: Tensor, costs: Tensor | None
) -> Tensor:
    """Values of a diminishing scorer where they decide the next pick: fresh where computed, ``-inf`` elsewhere.

    ``bounds`` holds every candidate's latest value, an upper bound of its value now; it is tightened in place. The
    ``LAZY_CANDIDATES`` eligible candidates with the best bounds (per unit cost) are valued first; if the best of them
    beats every other eligible bound, it is the argmax of the fresh values of all candidates (lowest index on ties, as
    ``torch.argmax``); otherwise every candidate is valued.

    Args:
        scorer: The rule's scorer.
        pending: The batch's earlier picks.
        step: This rule's pick count so far.
        bounds: ``N`` upper bounds of the scorer's values.
        eligible: ``N`` mask of candidates the pick may take.
        costs: ``N`` costs, or None.
    """
    ranked_bounds = torch.where(eligible, per_unit_cost(bounds, scorer.scale, costs), -torch.inf)
    first = torch.topk(ranked_bounds, min(LAZY_CANDIDATES, len(bounds))).indices.sort().values  # K, ascending
    fresh = scorer.values_at(pending, first)
    bounds[first] = fresh
    ranked = per_unit_cost(fresh, scorer.scale, None if costs is None else costs[first])
    best = float(torch.where(eligible[first], ranked, -torch.inf).max())
    ranked_bounds[first] = -torch.inf
    if float(ranked_bounds.max()) < best:
        values = torch.full_like(bounds, -torch.inf)
        values[first] = fresh
        return values
    bounds[:] = scorer.values(pending, step)
    return bounds.clone()


def standardised(features: np.ndarray) -> Tensor:
    """Descriptors standardised over the available pool and scaled so that distances are root-mean-square."""
    x = torch.as_tensor(features, dtype=torch.float64)
    std = x.std(dim=0)
    return (x - x.mean(dim=0)) / torch.where(std > 1e-12, std, torch.ones_like(std)) / math.sqrt(x.shape[1])


@dataclass
class BatchPolicy:
    """Fill a batch pick by pick: each rule of ``config.acquisitions`` makes its ``count`` picks in turn.

    Before every pick the eligible candidates are those not yet picked, then (if constraints are configured) those
    whose probability of feasibility reaches ``min_feasibility`` (or the most probably feasible ones if none does),
    then (if ``min_distance`` > 0) those at least ``min_distance`` from every earlier pick, unless that would leave
    none. The rule's scorer values every candidate given the earlier picks of the batch, from every rule; with costs
    the values become gain per unit cost; the best eligible candidate is picked.

    Attributes:
        config: The campaign's policy section.
    """

    config: PolicyConfig
    needs_model: bool = True
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.config.kind

    def select(self, scores: PoolScores | None, n_available: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``batch_size`` distinct candidates and record why each was picked."""
        if scores is None:
            raise ValueError(f"policy {self.name!r} needs posterior draws of the pool")
        if scores.n_candidates != n_available:
            raise ValueError(f"scores cover {scores.n_candidates} candidates, {n_available} are available")
        if self.config.min_distance > 0 and scores.features is None:
            raise ValueError("policy.min_distance needs the candidates' descriptors")
        p_feasible = feasibility(scores, self.config)
        positions = standardised(scores.features) if self.config.min_distance > 0 else None
        picked: list[int] = []
        selection = Selection([], [], [], [], [], [])
        for rule in self.config.acquisitions:
            scorer, draws = build_scorer(rule, scores, rng)
            lazy = isinstance(scorer, DiminishingScorer)
            bounds: Tensor | None = None  # a diminishing scorer's latest values
            for step in range(rule.count):
                eligible = self._eligible(picked, n_available, p_feasible, positions)
                if eligible is None:
                    return selection
                if lazy and bounds is not None:
                    values = lazy_values(scorer, picked, step, bounds, eligible, scores.costs)
                else:
                    values = scorer.values(picked, step)
                    bounds = values.clone() if lazy else None
                ranked = torch.where(eligible, per_unit_cost(values, scorer.scale, scores.costs), -torch.inf)
                pick = int(torch.argmax(ranked))
                picked.append(pick)
                details = {"mean": float(draws[:, pick].mean()), "std": float(draws[:, pick].std())}
                if p_feasible is not None:
                    details["p_feasible"] = float(p_feasible[pick])
                if scores.costs is not None:
                    details["cost"] = float(scores.costs[pick])
                self._record(selection, rule, scores, scorer.acquisition, pick, float(values[pick]), details)
        return selection

    def _eligible(
        self, picked: list[int], n_available: int, p_feasible: Tensor | None, positions: Tensor | None
    ) -> Tensor | None:
        """Mask of candidates the next pick may take; ``None`` when every candidate is taken."""
        eligible = torch.ones(n_available, dtype=torch.bool)
        eligible[picked] = False
        if not eligible.any():
            return None
        if p_feasible is not None:
            threshold = min(self.config.min_feasibility, float(p_feasible[eligible].max()))
            eligible &= p_feasible >= threshold
        if positions is not None and picked:
            nearest = torch.cdist(positions, positions[picked]).min(dim=1).values
            spread = eligible & (nearest >= self.config.min_distance)
            if spread.any():
                eligible = spread
        return eligible

    @staticmethod
    def _record(
        selection: Selection,
        rule: AcquisitionConfig,
        scores: PoolScores,
        acquisition: str,
        pick: int,
        value: float,
        details: dict[str, float],
    ) -> None:
        extras = "".join(f", {key} {number:.4g}" for key, number in details.items())
        reason = (
            f"{rule.kind} on {objective_label(rule, scores.objectives)}: {acquisition} {value:.4g} "
            f"given {len(selection.indices)} earlier picks{extras}"
        )
        selection.indices.append(pick)
        selection.acquisition_values.append(value)
        selection.policies.append(rule.kind)
        selection.acquisitions.append(acquisition)
        selection.reasons.append(reason)
        selection.details.append(details)

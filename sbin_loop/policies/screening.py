"""Screening a large pool a chunk at a time, so that the batch is picked from a shortlist.

Drawing ``S`` posterior functions on every candidate at once costs ``S x N x m`` float64 values (10 GB for
``S = 128`` and ``N = 10^7``). A pool larger than ``policy.shortlist`` is therefore streamed: each chunk's draws
(from the same ``S`` weight sets, so every candidate gets exactly the draws it would get in one pass) are reduced to
the single-point (q = 1, no earlier picks) value of every rule of the policy, and a running top-``shortlist`` is kept
per rule. ``BatchPolicy.select`` then fills the batch, unchanged, on the union of these shortlists.

Why the picks lie in the shortlist. Expected improvement (plain and noisy), posterior variance and the posterior
mean never increase when picks are added to the batch (the incumbent only rises; conditioning only removes
variance; the mean is fixed), so a candidate outside its rule's shortlist can never score above the ``shortlist``-th
single-point value. The screened pick is therefore the exact greedy pick whenever its value given the earlier picks
is still at least that threshold, which with ``shortlist`` far above the batch size fails only if a few picks take
most of the improvement (or variance) of thousands of candidates. A Thompson pick is the argmax of one draw over the
candidates not yet picked, so it is among that draw's top ``batch_size``: each draw's top ``batch_size`` is kept,
which makes Thompson screening exact. UCB's value given earlier picks (the joint qUCB) is not bounded by its
single-point value; the first pick is exact and later ones are exact in practice (see the tests).

Screened selection may differ from the exact one: with ``min_distance`` (descriptors are standardised over the
shortlist, not the whole pool), when every rule's shortlist is taken by the constraint fallback, for expected
improvement when no candidate is measured for its objective (the incumbent is then the lowest posterior mean of each
chunk rather than of the pool), and for ``random`` rules, which pick uniformly among a uniform sample of
``shortlist`` candidates joined to the other rules' shortlists.

Memory: one chunk of ``chunk_size(S, m)`` candidates, about ``SCREEN_ELEMENTS`` float64 draws (64 MB) plus their
rule values, and the running tops (``shortlist`` values and rows per rule, ``S x batch_size`` per Thompson rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from sbin_loop.config import AcquisitionConfig, PolicyConfig
from sbin_loop.policies.acquisitions import build_scorer
from sbin_loop.policies.base import PoolScores
from sbin_loop.policies.batch import feasibility

SCREEN_ELEMENTS = 1 << 23
"""Posterior draws (``S x n x m`` float64 values) evaluated at once while screening: 64 MB."""


def chunk_size(n_draws: int, n_objectives: int) -> int:
    """Candidates per screened chunk, so that a chunk's draws hold about ``SCREEN_ELEMENTS`` values."""
    return max(1024, SCREEN_ELEMENTS // (n_draws * n_objectives))


class RunningTop:
    """The ``k`` largest values seen so far in each of ``R`` score rows, with the pool rows that have them.

    Args:
        k: Values kept per score row.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.values: Tensor | None = None  # R x k'
        self.rows: Tensor | None = None  # R x k'

    def update(self, values: Tensor, rows: np.ndarray) -> None:
        """Merge ``R x n`` values of the candidates at pool ``rows`` (``n``)."""
        rows_t = torch.as_tensor(rows, dtype=torch.int64).expand(values.shape[0], -1)
        if self.values is not None:
            values, rows_t = torch.cat([self.values, values], dim=1), torch.cat([self.rows, rows_t], dim=1)
        top = torch.topk(values, min(self.k, values.shape[1]), dim=1)
        self.values, self.rows = top.values, rows_t.gather(1, top.indices)

    def kept(self) -> np.ndarray:
        """Sorted unique pool rows kept in any score row."""
        return np.array([], dtype=np.int64) if self.rows is None else np.unique(self.rows.numpy())


def single_point_values(rule: AcquisitionConfig, scores: PoolScores, rng: np.random.Generator) -> Tensor:
    """``R x N`` values a rule's picks are screened on.

    Thompson rules give their ``S`` draws (``R = S``); every other rule its scorer's values for the first pick of a
    batch (``R = 1``; uniform random numbers for ``random``).
    """
    scorer, draws = build_scorer(rule, scores, rng)
    return draws if rule.kind == "thompson" else scorer.values([], 0)[None]


def screen(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    score: Callable[[np.ndarray], PoolScores],
    config: PolicyConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pool rows of the shortlist the batch is picked from.

    Args:
        chunks: The available candidates as (``n`` pool rows, ``n x d`` descriptors) chunks.
        score: Posterior draws of a chunk's candidates (from the same ``S`` functions for every chunk).
        config: The policy; each rule of ``config.acquisitions`` keeps its top ``config.shortlist`` (Thompson rules
            the top ``batch_size`` of each draw); with constraints, rules rank only candidates whose probability of
            feasibility reaches ``min_feasibility``, and the ``shortlist`` most probably feasible are kept too.
        rng: Seeded generator of the ``random`` rules' scores.
    """
    rules = config.acquisitions
    tops = [RunningTop(config.batch_size if rule.kind == "thompson" else config.shortlist) for rule in rules]
    feasible_top = RunningTop(config.shortlist)
    for rows, features in chunks:
        scores = score(features)
        p_feasible = feasibility(scores, config)
        if p_feasible is not None:
            feasible_top.update(p_feasible[None], rows)
        for rule, top in zip(rules, tops, strict=True):
            values = single_point_values(rule, scores, rng)
            if p_feasible is not None:
                values = torch.where(p_feasible >= config.min_feasibility, values, -torch.inf)
            top.update(values, rows)
    return np.unique(np.concatenate([feasible_top.kept(), *(top.kept() for top in tops)]))

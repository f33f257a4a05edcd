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
which makes Thompson screening exact. UCB's value given earlier picks (the joint qUCB) can exceed its single-point
value, so only its first pick is guaranteed; the tests find the same joint qUCB at every pick, and the same picks
except where a pick adds nothing to the joint qUCB and every candidate ties (each pass then takes the lowest pool row
it scored).

Screened selection may differ from the exact one: with ``min_distance`` (descriptors are standardised over the
shortlist, not the whole pool); with constraints, where each rule ranks only candidates whose probability of
feasibility reaches ``min_feasibility`` and the ``shortlist`` most probably feasible are added for the fallback, but
a pick's eligibility depends on the batch and the arguments above assume every candidate is eligible; for expected
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

from sbin_loop.policies.acquisitions import ThompsonSampling, build_scorer
from sbin_loop.policies.base import PoolScores
from sbin_loop.policies.batch import feasibility
from sbin_loop.policies.config import AcquisitionConfig, PolicyConfig

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


def screening_values(
    rule: AcquisitionConfig, scores: PoolScores, config: PolicyConfig, rng: np.random.Generator
) -> list[tuple[Tensor, int]]:
    """What a rule's picks are screened on: ``R x N`` values, each row keeping its top ``k``, as ``(values, k)``.

    Every rule but Thompson keeps the ``shortlist`` best values of its first pick of a batch (uniform random numbers
    for ``random``). Thompson keeps each of its ``S`` draws' top ``batch_size``.
    """
    scorer, draws = build_scorer(rule, scores, rng)
    if isinstance(scorer, ThompsonSampling):
        return [(draws, config.batch_size)]
    return [(scorer.values([], 0)[None], config.shortlist)]


def screen(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    score: Callable[[np.ndarray, np.ndarray], PoolScores],
    config: PolicyConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pool rows of the shortlist the batch is picked from.

    Args:
        chunks: The available candidates as (``n`` pool rows, ``n x d`` descriptors) chunks.
        score: Posterior draws of a chunk's candidates given their rows and descriptors (from the same ``S``
            functions for every chunk).
        config: The policy; each rule of ``config.acquisitions`` keeps what ``screening_values`` says; with
            constraints, rules rank only candidates whose probability of feasibility reaches ``min_feasibility``, and
            the ``shortlist`` most probably feasible are kept too.
        rng: Seeded generator of the ``random`` rules' scores.
    """
    tops: dict[tuple[int, int], RunningTop] = {}
    feasible_top = RunningTop(config.shortlist)
    for rows, features in chunks:
        scores = score(rows, features)
        p_feasible = feasibility(scores, config)
        if p_feasible is not None:
            feasible_top.update(p_feasible[None], rows)
        for position, rule in enumerate(config.acquisitions):
            for kind, (values, k) in enumerate(screening_values(rule, scores, config, rng)):
                if p_feasible is not None:
                    values = torch.where(p_feasible >= config.min_feasibility, values, -torch.inf)
                tops.setdefault((position, kind), RunningTop(k)).update(values, rows)
    return np.unique(np.concatenate([feasible_top.kept(), *(top.kept() for top in tops.values())]))

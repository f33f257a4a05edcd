"""Neighbour-target inputs: what the measured compositions nearest to a candidate say about it.

A network on composition descriptors interpolates smoothly; a doping series whose members differ by a few percent of
one element can have very different Tc, and a distance-weighted neighbour lookup of the measured targets follows such
series more closely than the network does (on random folds of SuperCon, k-NN alone is more accurate than the BNN
while far worse on unseen chemical systems). Giving the network the neighbours' targets and distances as inputs lets
it learn where to trust them.

For every output, the ``k`` nearest measured rows (Euclidean distance in standardised descriptor space, over the rows
where that output is observed) give ``NEIGHBOUR_STATISTICS`` per query. A training row never sees itself
(leave-one-out), so its inputs look like those of an unseen candidate.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NEIGHBOUR_STATISTICS = ("weighted_mean", "nearest", "log_nearest_distance", "log_mean_distance", "spread")
"""Per output and query: inverse-distance-weighted mean of the ``k`` neighbours' targets, the nearest neighbour's
target, log of the nearest and of the mean RMS distance, and the standard deviation of the neighbours' targets."""

QUERY_CHUNK = 2048
"""Queries per distance-matrix chunk (bounds memory at that many rows of bank distances)."""

DISTANCE_FLOOR = 1e-3
"""Added to RMS distances before the log, and the smallest distance in the inverse-distance weights."""


def neighbour_statistics(queries: Tensor, bank_x: Tensor, bank_y: Tensor, k: int, leave_one_out: bool) -> Tensor:
    """Neighbour statistics of each query for each output.

    Args:
        queries: ``n x d`` standardised descriptors.
        bank_x: ``b x d`` standardised descriptors of the measured rows.
        bank_y: ``b x m`` their standardised targets, NaN where not measured.
        k: Neighbours per output; fewer are used where an output has too few measured rows.
        leave_one_out: ``queries`` are the bank's own rows, in order; each row's own entry is excluded.

    Returns:
        ``n x m x len(NEIGHBOUR_STATISTICS)``; an output with fewer than two measured rows gets zeros.
    """
    n, (b, m) = queries.shape[0], bank_y.shape
    if leave_one_out and n != b:
        raise ValueError(f"leave-one-out queries must be the bank's {b} rows, got {n}")
    result = torch.zeros(n, m, len(NEIGHBOUR_STATISTICS))
    scale = math.sqrt(max(queries.shape[1], 1))
    for j in range(m):
        observed = torch.nonzero(~torch.isnan(bank_y[:, j])).squeeze(1)
        count = min(k, observed.numel() - 1)
        if count < 1:
            continue
        targets = bank_y[observed, j]
        for start in range(0, n, QUERY_CHUNK):
            distance = torch.cdist(queries[start : start + QUERY_CHUNK], bank_x[observed]) / scale  # c x b_j
            if leave_one_out:
                rows = torch.arange(start, min(start + QUERY_CHUNK, n))
                own = observed[None, :] == rows[:, None]  # c x b_j
                distance = distance.masked_fill(own, math.inf)
            nearest, index = distance.topk(count, dim=1, largest=False)  # c x k, ascending
            values = targets[index]  # c x k
            weights = 1.0 / nearest.clamp(min=DISTANCE_FLOOR)
            result[start : start + QUERY_CHUNK, j] = torch.stack(
                [
                    (weights * values).sum(dim=1) / weights.sum(dim=1),
                    values[:, 0],
                    torch.log(nearest[:, 0] + DISTANCE_FLOOR),
                    torch.log(nearest.mean(dim=1) + DISTANCE_FLOOR),
                    values.std(dim=1, unbiased=False),
                ],
                dim=1,
            )
    return result

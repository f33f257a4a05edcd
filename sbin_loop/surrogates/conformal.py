"""Normalised split-conformal factors: how far, in units of a model's own spread, its errors reach.

A model gives a point prediction and a spread per row (a forest: the standard deviation of its trees; a GP: its
posterior standard deviation). Out-of-fold residuals divided by their spreads set one factor per central level: the
smallest that covers ``ceil(level (n + 1))`` of the ``n`` residuals (split conformal prediction with a normalised
score, Lei et al., JASA 2018). The interval at a level is ``point ± factor x spread``; draws come from the
piecewise-linear quantile function through those intervals, so every level keeps its conformal coverage.
"""

from __future__ import annotations

import numpy as np

LEVELS = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
"""Central levels whose factors are fitted."""

MIN_SPREAD = 1e-6
"""Floor of a spread, so a normalised score is finite where a model is certain."""


def conformal_factors(residuals: np.ndarray, spreads: np.ndarray, levels: np.ndarray = LEVELS) -> np.ndarray:
    """One non-decreasing factor per level from out-of-fold ``residuals`` and the ``spreads`` predicted with them.

    Args:
        residuals: ``n`` out-of-fold errors ``y - point``.
        spreads: ``n`` spreads the held-out models predicted for those rows.
        levels: Central levels in (0, 1), increasing.

    Returns:
        ``len(levels)`` factors; with fewer than one residual per level the largest score is used.
    """
    scores = np.sort(np.abs(residuals) / np.maximum(spreads, MIN_SPREAD))
    n = len(scores)
    if n == 0:
        raise ValueError("conformal factors need at least one out-of-fold residual")
    ranks = np.minimum(np.ceil(levels * (n + 1)).astype(int), n) - 1
    return np.maximum.accumulate(scores[ranks])


def quantile_offsets(factors: np.ndarray, unit: np.ndarray, levels: np.ndarray = LEVELS) -> np.ndarray:
    """Map uniform draws ``unit`` (any shape, in [0, 1]) to offsets in spread units through the conformal quantiles."""
    probabilities = np.concatenate([[0.0], 0.5 - levels[::-1] / 2, [0.5], 0.5 + levels / 2, [1.0]])
    offsets = np.concatenate([[-factors[-1]], -factors[::-1], [0.0], factors, [factors[-1]]])
    return np.interp(unit, probabilities, offsets)

"""Seeded row splits of a fit: a held-out test share, cross-validation folds, and the posterior draws of each member."""

from __future__ import annotations

import numpy as np


def split_draws(n_draws: int, n_members: int) -> list[int]:
    """How many of ``n_draws`` posterior draws each ensemble member contributes (as equal as possible, first first)."""
    base, extra = divmod(n_draws, n_members)
    return [base + (1 if k < extra else 0) for k in range(n_members)]


def cross_validation_folds(n_rows: int, n_folds: int, seed: int, groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Seeded partition of row indices into ``n_folds`` held-out folds (whole groups when ``groups`` are given).

    Shuffled groups (single rows without ``groups``) are dealt to the folds in turn; there are fewer folds when
    there are fewer groups than ``n_folds``.

    Returns:
        One sorted index array per non-empty fold.
    """
    labels = np.arange(n_rows) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    fold_of_label = np.empty(labels.max() + 1, dtype=np.int64)
    fold_of_label[np.random.default_rng(seed).permutation(labels.max() + 1)] = np.arange(labels.max() + 1) % n_folds
    fold = fold_of_label[labels]
    return [np.flatnonzero(fold == k) for k in range(min(n_folds, labels.max() + 1))]


def held_out_split(
    n_rows: int, fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded test and training row indices: ``fraction`` of the rows (of the groups, with ``groups``) held out.

    Without ``groups`` the first ``round(fraction * n_rows)`` rows of a seeded permutation are the test rows, in that
    order. With ``groups`` the first ``round(fraction * n_groups)`` groups of a seeded permutation of the groups are
    held out whole, so no group has rows on both sides.

    Returns:
        ``(test, train)`` row indices.
    """
    if groups is None:
        order = np.random.default_rng(seed).permutation(n_rows)
        n_test = round(fraction * n_rows)
        return order[:n_test], order[n_test:]
    labels = np.unique(np.asarray(groups), return_inverse=True)[1]
    n_groups = int(labels.max()) + 1 if n_rows else 0
    held = np.random.default_rng(seed).permutation(n_groups)[: round(fraction * n_groups)]
    test = np.isin(labels, held)
    return np.flatnonzero(test), np.flatnonzero(~test)

"""Seeded row splits of a fit: cross-validation folds, and the posterior draws of each member."""

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

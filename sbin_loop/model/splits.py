"""Seeded row splits of a fit: validation rows, cross-validation folds, and the posterior draws of each member."""

from __future__ import annotations

import numpy as np


def split_draws(n_draws: int, n_members: int) -> list[int]:
    """How many of ``n_draws`` posterior draws each ensemble member contributes (as equal as possible, first first)."""
    base, extra = divmod(n_draws, n_members)
    return [base + (1 if k < extra else 0) for k in range(n_members)]


def validation_split(
    n_rows: int, fraction: float, min_rows: int, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of row indices into fitting and validation rows.

    Args:
        n_rows: Number of rows.
        fraction: Share of rows to hold out.
        min_rows: If fewer than this many rows would be held out, nothing is.
        seed: Seeds the permutation.
        groups: Optional group label per row; whole groups are held out (shuffled groups are taken until the
            fraction is reached), so validation measures extrapolation to unseen groups.

    Returns:
        ``(fit_rows, validation_rows)``, sorted index arrays; ``validation_rows`` may be empty.
    """
    target = round(fraction * n_rows)
    everything = np.arange(n_rows)
    if target < min_rows:
        return everything, np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if groups is None:
        held = rng.permutation(n_rows)[:target]
    else:
        _, labels = np.unique(np.asarray(groups), return_inverse=True)
        order = rng.permutation(labels.max() + 1)
        sizes = np.bincount(labels)[order]
        chosen = order[: int(np.searchsorted(np.cumsum(sizes), target)) + 1]
        held = np.flatnonzero(np.isin(labels, chosen))
    is_held = np.zeros(n_rows, dtype=bool)
    is_held[held] = True
    return everything[~is_held], everything[is_held]


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

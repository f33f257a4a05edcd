"""Checks on the rows a surrogate is asked to train on: shapes, finiteness, and targets inside transform and support.

A bad row is refused before any scaler or weight changes, with a message that names the target at fault.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def check_training_rows(
    x: Tensor,
    y_raw: Tensor,
    n_features: int,
    target_names: tuple[str, ...],
    transforms: tuple[str, ...],
    support: Tensor,
) -> None:
    """Refuse training rows of the wrong shape, infinite values, or targets outside their transform or bounds.

    Args:
        x: ``n x d`` descriptors (NaN allowed: imputed later).
        y_raw: ``n x m`` targets in their own units (NaN = not measured).
        n_features: ``d`` the model expects.
        target_names: The ``m`` outputs' names.
        transforms: Each output's transform (``log1p`` needs ``y >= 0``).
        support: ``m x 2`` low and high end of each output's support (infinite where open).

    Raises:
        ValueError: Naming the problem (and the target, where one is at fault).
    """
    if x.ndim != 2 or y_raw.ndim != 2 or x.shape[0] != y_raw.shape[0] or x.shape[1] != n_features:
        raise ValueError(f"expected n x {n_features} features and n x m targets, got {x.shape}, {y_raw.shape}")
    if y_raw.shape[1] != len(target_names):
        raise ValueError(f"expected {len(target_names)} target columns, got {y_raw.shape[1]}")
    if torch.isinf(x).any():
        raise ValueError("features contain infinite values")
    if torch.isinf(y_raw).any():
        raise ValueError("targets contain infinite values (or values too large for float32)")
    for j, kind in enumerate(transforms):
        if kind == "log1p" and (y_raw[:, j] < 0).any():
            raise ValueError(f"target {target_names[j]!r} has negative values; log1p needs y >= 0")
    outside = (y_raw < support[:, 0]) | (y_raw > support[:, 1])  # NaN compares False
    for j in torch.nonzero(outside.any(dim=0)).flatten().tolist():
        low, high = (None if math.isinf(v) else float(v) for v in support[j].tolist())
        raise ValueError(
            f"target {target_names[j]!r} has {int(outside[:, j].sum())} value(s) outside its bounds ({low}, {high})"
        )

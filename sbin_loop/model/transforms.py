"""Target transforms and physical supports of the surrogate's outputs, in target units and in transformed units."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbin_loop.config_base import Bounds

TRANSFORMS = ("none", "log1p")
"""Target transforms: the model learns ``log1p(y)`` for ``log1p`` targets and maps draws back with ``expm1``."""


def forward_transform(kind: str, values: Tensor) -> Tensor:
    """``values`` in the modelled space of a ``TRANSFORMS`` entry."""
    return torch.log1p(values) if kind == "log1p" else values


LOG1P_MAX = 80.0
"""Largest log(1 + y) mapped back: expm1 overflows float32 near 88.7, and an infinite draw would poison acquisition."""


def inverse_transform(kind: str, values: Tensor) -> Tensor:
    """Modelled values mapped back to target units (``expm1`` capped at ``LOG1P_MAX`` for ``log1p``)."""
    return torch.expm1(values.clamp(max=LOG1P_MAX)) if kind == "log1p" else values


def forward_transform_each(transforms: tuple[str, ...], values: Tensor) -> Tensor:
    """Apply each output's transform to its entry of an ``m`` vector (infinite ends stay infinite)."""
    transformed = torch.stack([forward_transform(kind, values[j]) for j, kind in enumerate(transforms)])
    return torch.where(torch.isinf(values), values, transformed)


def support_tensor(bounds: tuple[Bounds | None, ...], transforms: tuple[str, ...], names: tuple[str, ...]) -> Tensor:
    """``m x 2`` tensor of each output's ``(low, high)`` in target units, ``-inf``/``inf`` for open ends.

    Raises:
        ValueError: If a ``log1p`` output's lower bound is -1 or below (its transform is undefined there).
    """
    support = torch.tensor([[-math.inf, math.inf]] * len(names))
    for j, ends in enumerate(bounds):
        low, high = ends if ends is not None else (None, None)
        if low is not None:
            support[j, 0] = low
        if high is not None:
            support[j, 1] = high
        if transforms[j] == "log1p" and low is not None and low <= -1:
            raise ValueError(f"target {names[j]!r}: a log1p output needs a lower bound above -1, got {low}")
    return support

"""What the peer surrogates share: checked training rows, support clamping and pickle-free persistence."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sbin_loop.atomic import write_atomic
from sbin_loop.config_base import Bounds


@dataclass(frozen=True)
class FitSummary:
    """What one fit did: how many rows it saw, and which kind of surrogate it was."""

    n_train: int
    kind: str


@dataclass(frozen=True)
class TrainingRows:
    """Descriptors and targets a surrogate was fitted on, with the descriptor means used to impute missing values."""

    features: np.ndarray  # n x d, NaN where a descriptor is missing
    targets: np.ndarray  # n x m, NaN where not measured
    column_means: np.ndarray  # d

    @classmethod
    def checked(
        cls,
        features: np.ndarray,
        targets: np.ndarray,
        n_features: int,
        names: tuple[str, ...],
        bounds: tuple[Bounds | None, ...],
    ) -> TrainingRows:
        """Validate shapes, finiteness and supports, as the BNN's ``fit`` does.

        Raises:
            ValueError: On shape mismatch, infinite values, or a target outside its objective's bounds.
        """
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or x.shape[1] != n_features or y.shape[1] != len(names):
            raise ValueError(
                f"expected n x {n_features} features and n x {len(names)} targets, got {x.shape}, {y.shape}"
            )
        if np.isinf(x).any() or np.isinf(y).any():
            raise ValueError("features or targets contain infinite values")
        for j, (name, bound) in enumerate(zip(names, bounds, strict=True)):
            low, high = bound if bound is not None else (None, None)
            column = y[:, j][~np.isnan(y[:, j])]
            if (low is not None and (column < low).any()) or (high is not None and (column > high).any()):
                raise ValueError(f"target {name!r} has values outside its bounds {bound}")
        with np.errstate(invalid="ignore"):
            means = np.nanmean(np.where(np.isnan(x).all(axis=0), 0.0, x), axis=0)
        return cls(x, y, np.nan_to_num(means))

    def imputed(self, features: np.ndarray) -> np.ndarray:
        """``features`` with each missing descriptor replaced by its training mean."""
        return np.where(np.isnan(features), self.column_means, features)


class PeerSurrogate:
    """What the peers hold in common: their objectives, supports and training rows.

    Args:
        n_features: Number of descriptors ``d``.
        target_names: Names of the ``m`` objectives.
        bounds: Per objective, its support ``(low, high)`` (None for an open end), or None.
    """

    kind = "peer"

    def __init__(
        self, n_features: int, target_names: tuple[str, ...], bounds: tuple[Bounds | None, ...] | None = None
    ) -> None:
        self.n_features = n_features
        self.target_names = tuple(target_names)
        self.bounds = tuple(bounds) if bounds is not None else (None,) * len(self.target_names)
        self.rows: TrainingRows | None = None
        self.seed: int | None = None

    def _check_rows(self, features: np.ndarray, targets: np.ndarray, seed: int) -> TrainingRows:
        """Validate and keep the rows and the seed of a fit."""
        self.rows = TrainingRows.checked(features, targets, self.n_features, self.target_names, self.bounds)
        self.seed = seed
        return self.rows

    def _fitted_rows(self) -> TrainingRows:
        if self.rows is None:
            raise RuntimeError(f"the {self.kind} surrogate is not fitted")
        return self.rows

    def _save(self, directory: str | Path, settings: dict) -> Path:
        settings = {**settings, "fit_seed": self.seed}
        return save_rows(directory, self.kind, self._fitted_rows(), settings, self.target_names, self.bounds)


def clamp_to_bounds(values: Tensor, bounds: tuple[Bounds | None, ...], names: tuple[str, ...]) -> Tensor:
    """``... x m`` values clamped onto each objective's support; refuses non-finite values.

    Raises:
        ModelOutputError: If a value is not finite; such a model must not be used or stored.
    """
    from sbin_loop.model.surrogate import ModelOutputError

    low = torch.tensor([-math.inf if b is None or b[0] is None else b[0] for b in bounds], dtype=values.dtype)
    high = torch.tensor([math.inf if b is None or b[1] is None else b[1] for b in bounds], dtype=values.dtype)
    clamped = torch.maximum(torch.minimum(values, high), low)
    if not torch.isfinite(clamped).all():
        raise ModelOutputError(f"the model produced non-finite values for {', '.join(names)}; it is not used")
    return clamped


def save_rows(
    directory: str | Path,
    kind: str,
    rows: TrainingRows,
    settings: dict,
    names: tuple[str, ...],
    bounds: tuple[Bounds | None, ...],
) -> Path:
    """Write ``rows.npz`` and ``surrogate.json`` into ``directory``; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def write_rows(path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, features=rows.features, targets=rows.targets, column_means=rows.column_means)

    write_atomic(directory / "rows.npz", write_rows)
    meta = {
        "kind": kind,
        "settings": settings,
        "target_names": list(names),
        "bounds": [list(b) if b else None for b in bounds],
    }
    write_atomic(directory / "surrogate.json", json.dumps(meta, indent=2))
    return directory


def load_rows(
    directory: str | Path, kind: str
) -> tuple[TrainingRows, dict, tuple[str, ...], tuple[Bounds | None, ...]]:
    """Read what ``save_rows`` wrote (no pickle: ``allow_pickle=False``).

    Raises:
        ValueError: If the directory holds another kind of surrogate.
    """
    directory = Path(directory)
    meta = json.loads((directory / "surrogate.json").read_text())
    if meta.get("kind") != kind:
        raise ValueError(f"{directory} holds a {meta.get('kind')!r} surrogate, not {kind!r}")
    with np.load(directory / "rows.npz", allow_pickle=False) as data:
        rows = TrainingRows(data["features"], data["targets"], data["column_means"])
    bounds = tuple(tuple(b) if b else None for b in meta["bounds"])
    return rows, meta["settings"], tuple(meta["target_names"]), bounds

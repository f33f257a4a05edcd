"""A random-forest surrogate with conformal predictive intervals: the strongest cheap peer of the BNN.

One forest per objective, fitted on the rows where that objective was measured (the campaign's missing targets).
Its draws:

- **function draws** (what acquisition rules score): draw ``s`` is one tree ``k_s`` of the forest, chosen from the
  seed, so the same draw is the same function on every chunk of a pool. The spread of trees around the forest's mean
  is the usual random-forest uncertainty of sequential-learning tools (e.g. Citrine's lolo; Liang et al., npj Comput.
  Mater. 7, 188 (2021) benchmark it against GPs).
- **predictive draws** (intervals): ``mean + q x spread``, where ``q`` follows normalised split-conformal quantiles
  fitted on out-of-fold residuals (``conformal.py``), so an interval's coverage holds on new rows and its width
  follows the trees' disagreement.

Every draw is clamped to the objective's support. The model is refitted from its stored training rows when loaded,
so no pickle is ever read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold
from torch import Tensor

from sbin_loop.config_base import Bounds
from sbin_loop.surrogates.conformal import LEVELS, conformal_factors, quantile_offsets
from sbin_loop.surrogates.data import FitSummary, PeerSurrogate, clamp_to_bounds, load_rows


@dataclass(frozen=True)
class ForestSettings:
    """Forest size and calibration.

    Attributes:
        n_trees: Trees per objective.
        min_samples_leaf: Smallest leaf; 2 keeps single noisy rows from owning a leaf.
        max_features: Share of descriptors tried at each split.
        calibration_folds: Out-of-fold refits whose residuals set the conformal factors.
        calibration_trees: Trees of each out-of-fold refit (fewer than ``n_trees``: only its spread's shape matters).
    """

    n_trees: int = 200
    min_samples_leaf: int = 2
    max_features: float = 1.0 / 3.0
    calibration_folds: int = 5
    calibration_trees: int = 100


class ForestSurrogate(PeerSurrogate):
    """Random forests over the campaign's descriptors, one per objective, with conformal intervals.

    Args:
        n_features: Number of descriptors ``d``.
        target_names: Names of the ``m`` objectives.
        bounds: Per objective, its support ``(low, high)`` (None for an open end), or None.
        settings: Forest size and calibration.
    """

    kind = "forest"

    def __init__(
        self,
        n_features: int,
        target_names: tuple[str, ...],
        bounds: tuple[Bounds | None, ...] | None = None,
        settings: ForestSettings | None = None,
    ) -> None:
        super().__init__(n_features, target_names, bounds)
        self.settings = settings or ForestSettings()
        self.forests: list[RandomForestRegressor | None] = []
        self.factors: list[np.ndarray] = []

    def _forest(self, n_trees: int, seed: int) -> RandomForestRegressor:
        return RandomForestRegressor(
            n_estimators=n_trees,
            min_samples_leaf=self.settings.min_samples_leaf,
            max_features=self.settings.max_features,
            random_state=seed,
            n_jobs=1,
        )

    def fit(
        self, features: np.ndarray, targets: np.ndarray, seed: int, groups: object = None, warm_start: object = None
    ) -> FitSummary:
        """Fit one forest per objective on its measured rows, and its conformal factors out of fold.

        Args:
            features: ``n x d`` descriptors (NaN imputed with the column mean of the fitting rows).
            targets: ``n x m`` measured values, NaN where not measured.
            seed: Seeds the forests and the calibration folds.
            groups: Unused (the calibration folds are random); accepted so every surrogate fits alike.
            warm_start: Unused: a forest is refitted from scratch, which is cheap.
        """
        x = self._check_rows(features, targets, seed).imputed(self.rows.features)
        self.forests, self.factors = [], []
        for j in range(len(self.target_names)):
            measured = np.flatnonzero(~np.isnan(self.rows.targets[:, j]))
            if len(measured) < 2:
                self.forests.append(None)
                self.factors.append(np.ones(len(LEVELS)))
                continue
            xj, yj = x[measured], self.rows.targets[measured, j]
            self.forests.append(self._forest(self.settings.n_trees, seed).fit(xj, yj))
            self.factors.append(self._calibrate(xj, yj, seed))
        return FitSummary(n_train=len(self.rows.targets), kind=self.kind)

    def _calibrate(self, x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
        """Conformal factors of one objective from out-of-fold residuals of smaller forests."""
        folds = min(self.settings.calibration_folds, len(y))
        if folds < 2:
            return np.full(len(LEVELS), 3.0)
        residuals, spreads = [], []
        for train, held in KFold(folds, shuffle=True, random_state=seed).split(x):
            model = self._forest(self.settings.calibration_trees, seed).fit(x[train], y[train])
            per_tree = np.stack([tree.predict(x[held]) for tree in model.estimators_])
            residuals.append(y[held] - per_tree.mean(axis=0))
            spreads.append(per_tree.std(axis=0))
        return conformal_factors(np.concatenate(residuals), np.concatenate(spreads))

    def _per_tree(self, j: int, x: np.ndarray) -> np.ndarray:
        """``T x n`` predictions of objective ``j``'s trees; the training mean everywhere if it could not be fitted."""
        forest = self.forests[j]
        if forest is None:
            centre = np.nanmean(self.rows.targets[:, j]) if self.rows is not None else np.nan
            return np.full((1, len(x)), 0.0 if np.isnan(centre) else centre)
        return np.stack([tree.predict(x) for tree in forest.estimators_])

    def _inputs(self, features: np.ndarray | Tensor) -> np.ndarray:
        return self._fitted_rows().imputed(np.asarray(features, dtype=np.float64))

    def function_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` draws, each one tree of each objective's forest (the same trees for the same seed)."""
        x = self._inputs(features)
        columns = []
        for j in range(len(self.target_names)):
            per_tree = self._per_tree(j, x)  # T x n
            picks = np.random.default_rng([seed, j]).integers(0, len(per_tree), n_draws)
            columns.append(per_tree[picks])  # S x n
        return clamp_to_bounds(torch.as_tensor(np.stack(columns, axis=-1)), self.bounds, self.target_names)

    def predictive_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` draws of the conformal predictive distribution: ``mean + q x spread`` per row."""
        x = self._inputs(features)
        columns = []
        for j in range(len(self.target_names)):
            per_tree = self._per_tree(j, x)
            unit = np.random.default_rng([seed, j, 1]).uniform(size=(n_draws, 1))
            offsets = quantile_offsets(self.factors[j], unit)  # S x 1: one quantile per draw, shared by rows
            columns.append(per_tree.mean(axis=0) + offsets * np.maximum(per_tree.std(axis=0), 1e-6))
        return clamp_to_bounds(torch.as_tensor(np.stack(columns, axis=-1)), self.bounds, self.target_names)

    def save(self, directory: str | Path) -> Path:
        """Store the training rows and settings (``.npz`` + JSON); ``load`` refits from them."""
        return self._save(directory, asdict(self.settings))

    @classmethod
    def load(cls, directory: str | Path, seed: int | None = None) -> ForestSurrogate:
        """Refit a saved forest from its stored rows (with the seed of the saved fit unless ``seed`` is given)."""
        rows, settings, names, bounds = load_rows(directory, cls.kind)
        stored_seed = settings.pop("fit_seed", None) or 0
        seed = stored_seed if seed is None else seed
        surrogate = cls(rows.features.shape[1], names, bounds, ForestSettings(**settings))
        surrogate.fit(rows.features, rows.targets, seed)
        return surrogate

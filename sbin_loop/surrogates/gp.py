"""A Gaussian-process surrogate (BoTorch ``SingleTaskGP``, ARD Matérn 5/2): the textbook Bayesian-optimisation peer.

One GP per objective on the rows where it was measured, over standardised descriptors, with a ``log1p`` target
where the objective asks for it. Hyperparameters of a refit start from the previous fit's (``warm_start``) and then
run at most ``warm_maxiter`` L-BFGS iterations; a first fit runs to convergence. Above ``max_train`` rows, the best
half and a seeded random rest are kept (an exact GP is cubic in its rows).

Function draws are pathwise (Matheron's rule, ``botorch.sampling.pathwise``): each of the ``S`` draws is a function
that can be evaluated anywhere, so the draws of a pool scored in chunks are the same functions in every chunk, as the
BNN's are. Predictive draws add the fitted noise to the marginal posterior. Every draw is clamped to the support.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sbin_loop.config_base import Bounds
from sbin_loop.surrogates.data import FitSummary, PeerSurrogate, clamp_to_bounds, load_rows


@dataclass(frozen=True)
class GPSettings:
    """Training-set cap and hyperparameter optimisation of the GP peer.

    Attributes:
        max_train: Most rows a GP is fitted on (best half by value plus a seeded random rest).
        warm_maxiter: L-BFGS iterations of a refit that starts from the previous fit's hyperparameters.
    """

    max_train: int = 500
    warm_maxiter: int = 50


class GPSurrogate(PeerSurrogate):
    """Exact GPs over standardised descriptors, one per objective, with pathwise posterior function draws.

    Args:
        n_features: Number of descriptors ``d``.
        target_names: Names of the ``m`` objectives.
        transforms: Per objective ``none`` or ``log1p`` (fitted on ``log(1 + y)``, draws mapped back).
        bounds: Per objective, its support ``(low, high)`` (None for an open end), or None.
        settings: Training-set cap and optimisation.
    """

    kind = "gp"

    def __init__(
        self,
        n_features: int,
        target_names: tuple[str, ...],
        transforms: tuple[str, ...] | None = None,
        bounds: tuple[Bounds | None, ...] | None = None,
        settings: GPSettings | None = None,
    ) -> None:
        super().__init__(n_features, target_names, bounds)
        self.transforms = tuple(transforms) if transforms is not None else ("none",) * len(self.target_names)
        if set(self.transforms) - {"none", "log1p"}:
            raise ValueError(f"GP transforms must be 'none' or 'log1p', got {self.transforms}")
        self.settings = settings or GPSettings()
        self.models: list = []
        self._scale: tuple[np.ndarray, np.ndarray] | None = None
        self._paths: dict[tuple[int, int], list] = {}

    def fit(
        self,
        features: np.ndarray,
        targets: np.ndarray,
        seed: int,
        groups: object = None,
        warm_start: GPSurrogate | None = None,
    ) -> FitSummary:
        """Fit one GP per objective (hyperparameters from ``warm_start`` when given).

        Args:
            features: ``n x d`` descriptors (NaN imputed with the column mean of the fitting rows).
            targets: ``n x m`` measured values, NaN where not measured.
            seed: Seeds the training-set cap.
            groups: Unused; accepted so every surrogate fits alike.
            warm_start: A fitted GP surrogate of the same objectives whose hyperparameters start the optimisation.
        """
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        x = self._check_rows(features, targets, seed).imputed(self.rows.features)
        mean, std = x.mean(axis=0), x.std(axis=0)
        self._scale = (mean, np.where(std > 1e-12, std, 1.0))
        self.models, self._paths = [], {}
        for j in range(len(self.target_names)):
            rows = self._training_rows(j, seed)
            if len(rows) < 2:
                self.models.append(None)
                continue
            y = torch.as_tensor(self._transformed(self.rows.targets[rows, j], j)).unsqueeze(-1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # standardised inputs are not in the unit cube
                model = SingleTaskGP(self._standardised(x[rows]), y, outcome_transform=Standardize(m=1))
                options = {}
                previous = warm_start.models[j] if warm_start is not None and j < len(warm_start.models) else None
                if previous is not None:
                    state = {k: v for k, v in previous.state_dict().items() if not k.startswith("outcome_transform")}
                    model.load_state_dict(state, strict=False)
                    options = {"optimizer_kwargs": {"options": {"maxiter": self.settings.warm_maxiter}}}
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model), **options)
            self.models.append(model)
        return FitSummary(n_train=len(self.rows.targets), kind=self.kind)

    def _training_rows(self, j: int, seed: int) -> np.ndarray:
        """Rows measured for objective ``j``, capped at ``max_train`` (best half plus a seeded random rest)."""
        values = self.rows.targets[:, j]
        measured = np.flatnonzero(~np.isnan(values))
        cap = self.settings.max_train
        if len(measured) <= cap:
            return measured
        ranked = measured[np.argsort(-values[measured], kind="stable")]
        rest = np.random.default_rng([seed, j]).choice(ranked[cap // 2 :], cap - cap // 2, replace=False)
        return np.concatenate([ranked[: cap // 2], rest])

    def _transformed(self, values: np.ndarray, j: int) -> np.ndarray:
        return np.log1p(values) if self.transforms[j] == "log1p" else values

    def _back(self, values: Tensor, j: int) -> Tensor:
        return torch.expm1(values) if self.transforms[j] == "log1p" else values

    def _standardised(self, x: np.ndarray) -> Tensor:
        mean, std = self._scale
        return torch.as_tensor((x - mean) / std, dtype=torch.float64)

    def _inputs(self, features: np.ndarray | Tensor) -> Tensor:
        return self._standardised(self._fitted_rows().imputed(np.asarray(features, dtype=np.float64)))

    def _constant(self, j: int, shape: tuple[int, ...]) -> Tensor:
        """The training mean of objective ``j`` (0 without any), for an objective with too few rows for a GP."""
        column = self.rows.targets[:, j]
        centre = float(np.nanmean(column)) if (~np.isnan(column)).any() else 0.0
        return torch.full(shape, centre, dtype=torch.float64)

    def function_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` posterior function draws; the same ``seed`` gives the same ``S`` functions everywhere."""
        from botorch.sampling.pathwise import draw_matheron_paths

        x = self._inputs(features)
        columns = []
        for j, model in enumerate(self.models):
            if model is None:
                columns.append(self._constant(j, (n_draws, len(x))))
                continue
            key = (seed, n_draws)
            if key not in self._paths:
                torch.manual_seed(seed)
                self._paths[key] = [
                    None if m is None else draw_matheron_paths(m, torch.Size([n_draws])) for m in self.models
                ]
            with torch.no_grad():
                columns.append(self._back(self._paths[key][j](x), j))  # S x n
        return clamp_to_bounds(torch.stack(columns, dim=-1), self.bounds, self.target_names)

    def predictive_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` draws of each row's marginal predictive distribution (posterior plus fitted noise)."""
        x = self._inputs(features)
        generator = torch.Generator().manual_seed(seed)
        columns = []
        for j, model in enumerate(self.models):
            if model is None:
                columns.append(self._constant(j, (n_draws, len(x))))
                continue
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                posterior = model.posterior(x, observation_noise=True)
                mean, sd = posterior.mean.squeeze(-1), posterior.variance.clamp_min(1e-12).sqrt().squeeze(-1)
            unit = torch.randn((n_draws, len(x)), generator=generator, dtype=torch.float64)
            columns.append(self._back(mean + sd * unit, j))
        return clamp_to_bounds(torch.stack(columns, dim=-1), self.bounds, self.target_names)

    def save(self, directory: str | Path) -> Path:
        """Store the training rows and settings; ``load`` refits from them."""
        return self._save(directory, {**asdict(self.settings), "transforms": list(self.transforms)})

    @classmethod
    def load(cls, directory: str | Path, seed: int | None = None) -> GPSurrogate:
        """Refit a saved GP from its stored rows (with the seed of the saved fit unless ``seed`` is given)."""
        rows, settings, names, bounds = load_rows(directory, cls.kind)
        stored_seed = settings.pop("fit_seed", None) or 0
        seed = stored_seed if seed is None else seed
        transforms = tuple(settings.pop("transforms"))
        surrogate = cls(rows.features.shape[1], names, transforms, bounds, GPSettings(**settings))
        surrogate.fit(rows.features, rows.targets, seed)
        return surrogate

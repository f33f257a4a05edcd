"""The BNN surrogate: standardisation, target transforms, masked multi-output ELBO training, posterior draws.

One network predicts every objective of a campaign. Targets may be missing (NaN) for some compositions; the
likelihood masks them, so a composition measured for only one objective still trains that objective's output.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from sbin_loop.config import ModelConfig
from sbin_loop.model.bnn import VariationalMLP

TRANSFORMS = ("none", "log1p")
"""Target transforms: the model learns ``log1p(y)`` for ``log1p`` targets and maps draws back with ``expm1``."""

DEFAULT_CHUNK = 2048
"""Candidates evaluated per chunk when drawing posterior functions (bounds memory at ``S x chunk x width``)."""


def _forward_transform(kind: str, values: Tensor) -> Tensor:
    return torch.log1p(values) if kind == "log1p" else values


LOG1P_MAX = 80.0
"""Largest log(1 + y) mapped back: expm1 overflows float32 near 88.7, and an infinite draw would poison acquisition."""


def _inverse_transform(kind: str, values: Tensor) -> Tensor:
    return torch.expm1(values.clamp(max=LOG1P_MAX)) if kind == "log1p" else values


@dataclass(frozen=True)
class TrainingReport:
    """What one fit did: data size, optimiser steps, final minibatch loss terms and wall time."""

    n_train: int
    steps: int
    final_nll: float
    final_kl_per_datum: float
    seconds: float


class BNNSurrogate(nn.Module):
    """Mean-field variational BNN over standardised descriptors, predicting all objectives jointly.

    Args:
        n_features: Number of input descriptors ``d``.
        target_names: Names of the ``m`` outputs.
        transforms: One entry of ``TRANSFORMS`` per output.
        config: Architecture and training settings.
    """

    def __init__(
        self,
        n_features: int,
        target_names: tuple[str, ...],
        transforms: tuple[str, ...],
        config: ModelConfig,
    ) -> None:
        super().__init__()
        if len(target_names) != len(transforms):
            raise ValueError("one transform per target is required")
        unknown = set(transforms) - set(TRANSFORMS)
        if unknown:
            raise ValueError(f"unknown target transform(s) {sorted(unknown)}; known: {TRANSFORMS}")
        self.config = config
        self.target_names = tuple(target_names)
        self.transforms = tuple(transforms)
        n_outputs = len(target_names)
        self.net = VariationalMLP(n_features, n_outputs, config.hidden, config.prior_std, config.posterior_std_init)
        self.raw_noise = nn.Parameter(torch.full((n_outputs,), math.log(math.expm1(0.3))))
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        self.register_buffer("y_mean", torch.zeros(n_outputs))
        self.register_buffer("y_std", torch.ones(n_outputs))

    @property
    def n_features(self) -> int:
        """Number of input descriptors."""
        return self.x_mean.shape[0]

    @property
    def noise_std(self) -> Tensor:
        """Observation noise standard deviation per output, in standardised transformed units (``m``)."""
        return functional.softplus(self.raw_noise) + 1e-3

    def _standardise_targets(self, targets: Tensor) -> Tensor:
        """``n x m`` raw targets (NaN = missing) -> standardised transformed targets; sets the target scaler."""
        transformed = torch.stack(
            [_forward_transform(kind, targets[:, j]) for j, kind in enumerate(self.transforms)], dim=1
        )
        observed = ~torch.isnan(transformed)
        for j in range(transformed.shape[1]):
            column = transformed[observed[:, j], j]
            if column.numel() == 0:
                raise ValueError(f"target {self.target_names[j]!r} has no observed value to train on")
            self.y_mean[j] = column.mean()
            self.y_std[j] = column.std() if column.numel() > 1 and column.std() > 1e-8 else 1.0
        return (transformed - self.y_mean) / self.y_std

    def fit(self, features: np.ndarray, targets: np.ndarray, seed: int) -> TrainingReport:
        """Train by minimising the negative ELBO with Adam on minibatches.

        Loss per step: mean masked Gaussian NLL of the minibatch + ``kl_weight`` x KL / (number of training rows).

        Args:
            features: ``n x d`` descriptors.
            targets: ``n x m`` raw targets, NaN where not measured.
            seed: Seeds initialisation, minibatch order and all reparameterisation noise.

        Raises:
            ValueError: On shape mismatch, non-finite features, or negative targets under ``log1p``.
        """
        start = time.perf_counter()
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        y_raw = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        if x.ndim != 2 or y_raw.ndim != 2 or x.shape[0] != y_raw.shape[0] or x.shape[1] != self.n_features:
            raise ValueError(f"expected n x {self.n_features} features and n x m targets, got {x.shape}, {y_raw.shape}")
        if not torch.isfinite(x).all():
            raise ValueError("features contain NaN or infinite values")
        for j, kind in enumerate(self.transforms):
            if kind == "log1p" and (y_raw[:, j] < 0).any():
                raise ValueError(f"target {self.target_names[j]!r} has negative values; log1p needs y >= 0")
        generator = torch.Generator().manual_seed(seed)
        self.x_mean.copy_(x.mean(dim=0))
        std = x.std(dim=0) if x.shape[0] > 1 else torch.ones_like(self.x_std)
        self.x_std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))
        x = (x - self.x_mean) / self.x_std
        y = self._standardise_targets(y_raw)
        mask = ~torch.isnan(y)
        y = torch.nan_to_num(y)
        self.net.reset_means(generator)

        cfg = self.config
        n = x.shape[0]
        batch = min(cfg.batch_size, n)
        steps_per_epoch = math.ceil(n / batch)
        steps = min(max(cfg.epochs * steps_per_epoch, cfg.min_steps), cfg.max_steps)
        optimiser = torch.optim.Adam(self.parameters(), lr=cfg.learning_rate)
        self.train()
        order = torch.randperm(n, generator=generator)
        nll = kl = torch.zeros(())
        for step in range(steps):
            position = (step % steps_per_epoch) * batch
            if position == 0 and step > 0:
                order = torch.randperm(n, generator=generator)
            rows = order[position : position + batch]
            prediction = self.net(x[rows], generator)
            noise = self.noise_std
            errors = ((prediction - y[rows]) / noise) ** 2 + 2 * torch.log(noise) + math.log(2 * math.pi)
            nll = 0.5 * (errors * mask[rows]).sum() / mask[rows].sum().clamp(min=1)
            kl = self.net.kl_divergence() / n
            loss = nll + cfg.kl_weight * kl
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        self.eval()
        return TrainingReport(n, steps, nll.item(), kl.item(), time.perf_counter() - start)

    def _standardise_features(self, features: np.ndarray | Tensor) -> Tensor:
        x = torch.as_tensor(features, dtype=torch.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected n x {self.n_features} features, got shape {tuple(x.shape)}")
        return (x - self.x_mean) / self.x_std

    def draw_weight_sets(self, n_draws: int, seed: int) -> list[tuple[Tensor, Tensor]]:
        """``S`` posterior weight sets from a seed; pass them to ``evaluate`` to get the same functions anywhere."""
        with torch.no_grad():
            return self.net.draw_weight_sets(n_draws, torch.Generator().manual_seed(seed))

    def evaluate(self, features: np.ndarray | Tensor, weight_sets: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Posterior function values (noise-free) for drawn weight sets, in standardised transformed units.

        Args:
            features: ``n x d`` descriptors.
            weight_sets: From ``draw_weight_sets``.

        Returns:
            ``S x n x m`` tensor.
        """
        x = self._standardise_features(features)
        with torch.no_grad():
            chunks = [
                VariationalMLP.evaluate_weight_sets(x[start : start + DEFAULT_CHUNK], weight_sets)
                for start in range(0, x.shape[0], DEFAULT_CHUNK)
            ]
        return torch.cat(chunks, dim=1)

    def to_target_units(self, standardised: Tensor) -> Tensor:
        """Map ``... x m`` standardised transformed values back to the targets' own units."""
        transformed = standardised * self.y_std + self.y_mean
        return torch.stack(
            [_inverse_transform(kind, transformed[..., j]) for j, kind in enumerate(self.transforms)], dim=-1
        )

    def function_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` posterior draws of the noise-free function, in target units."""
        return self.to_target_units(self.evaluate(features, self.draw_weight_sets(n_draws, seed)))

    def predictive_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` posterior predictive draws (function + observation noise), in target units.

        The noise is added in the standardised transformed space where it was learned, then the draws are mapped
        back, so intervals of ``log1p`` targets are correctly skewed and never below -1.
        """
        standardised = self.evaluate(features, self.draw_weight_sets(n_draws, seed))
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            noise = torch.randn(standardised.shape, generator=generator) * self.noise_std
        return self.to_target_units(standardised + noise)

"""The BNN surrogate: standardisation, target transforms, posterior draws; training is in ``training``.

One network predicts every objective of a campaign. Targets may be missing (NaN) for some compositions; the
likelihood masks them, so a composition measured for only one objective still trains that objective's output.

An ensemble of ``ensemble_size`` variational networks makes the posterior an equal-weight mixture;
``draw_weight_sets`` splits its ``S`` draws across the members. Every row trains the ensemble: the members are
cross-fitted (each skips one fold of the rows), and their out-of-fold predictions choose the stopping point, the
noise level and the recalibration of the predictive spread (``sbin_loop.model.training``,
``sbin_loop.model.recalibration``). From ``boosted_input_rows`` training values on, the members also read the
predictions of gradient-boosted trees (``sbin_loop.model.boosted_inputs``). From ``floor_mass_rows`` on, an output
with a lower bound gets a hurdle: a random-forest classifier gives the probability of a value at the bound, the members
train on the values above it (``sbin_loop.model.floor_mass``).

The module is about 470 lines: it is one ``nn.Module`` whose buffers fitting, prediction and checkpoints all
read; its training, recalibration, input scaling and boosted inputs already live in modules of their own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from sbin_loop.config_base import Bounds
from sbin_loop.model import recalibration, training
from sbin_loop.model.bnn import VariationalMLP
from sbin_loop.model.boosted_inputs import (
    BoostedInputs,
    register_scaler,
    scaled_column,
    use_boosted_inputs,
    with_boosted_inputs,
)
from sbin_loop.model.calibration import CALIBRATION_LEVELS, tail_calibrated
from sbin_loop.model.checks import check_training_rows
from sbin_loop.model.config import ModelConfig, quantile_scaled
from sbin_loop.model.floor_mass import fit_floor_mass, floored_draws, floored_functions, rows_above_floor
from sbin_loop.model.input_scaling import N_KNOTS, fit_scaler, scaled_inputs
from sbin_loop.model.likelihood import predictive_noise
from sbin_loop.model.splits import split_draws
from sbin_loop.model.training import FitData, TrainingReport
from sbin_loop.model.transforms import (
    TRANSFORMS,
    forward_transform,
    forward_transform_each,
    inverse_transform,
    support_tensor,
)

DRAW_CHUNK_ELEMENTS = 16384
"""Candidates x draws evaluated per chunk when drawing posterior functions (bounds memory at that many rows of
``width`` activations). About this size keeps a chunk's activations in the CPU cache, twice as fast as 2048 x 64."""

NOISE_FLOOR = 1e-3
"""Smallest observation noise standard deviation, in standardised transformed units."""


class ModelOutputError(ValueError):
    """A model produced a value that is not finite; nothing computed from it may be stored."""


class BNNSurrogate(nn.Module):
    """Ensemble of mean-field variational BNNs over standardised descriptors, predicting all objectives jointly.

    Each output may have a physical support (``bounds``): it is then a censored observation of an unbounded latent
    value (``sbin_loop.model.likelihood``): measurements at a bound train the probability mass beyond it, and every
    function and predictive draw is mapped onto the support by the same observation model, so draws, means, medians,
    intervals and acquisition values never leave it.

    Args:
        n_features: Number of input descriptors ``d``.
        target_names: Names of the ``m`` outputs.
        transforms: One entry of ``TRANSFORMS`` per output.
        config: Architecture and training settings.
        bounds: Per output, the support ``(low, high)`` in the target's own units (None for an open end), or None for
            an unbounded output. Stored with the weights (the ``support`` buffer), so a checkpoint keeps it.
        fraction_inputs: Indices of the inputs that are atomic fractions of an element, which keep their own scale
            below ``quantile_rows`` training rows (``input_scaling.fit_scaler``); stored as the ``x_fraction`` buffer.
        boosted: Build the members with the boosted-tree inputs (``boosted_inputs``), as a checkpoint of a model
            fitted with them needs; ``fit`` rebuilds them either way as its rows ask.
    """

    def __init__(
        self,
        n_features: int,
        target_names: tuple[str, ...],
        transforms: tuple[str, ...],
        config: ModelConfig,
        bounds: tuple[Bounds | None, ...] | None = None,
        fraction_inputs: Sequence[int] = (),
        boosted: bool = False,
    ) -> None:
        super().__init__()
        if len(target_names) != len(transforms):
            raise ValueError("one transform per target is required")
        unknown = set(transforms) - set(TRANSFORMS)
        if unknown:
            raise ValueError(f"unknown target transform(s) {sorted(unknown)}; known: {TRANSFORMS}")
        bounds = tuple(bounds) if bounds is not None else (None,) * len(target_names)
        if len(bounds) != len(target_names):
            raise ValueError("one bounds entry (or None) per target is required")
        self.config = config
        self.target_names = tuple(target_names)
        self.transforms = tuple(transforms)
        n_outputs = len(target_names)
        self.n_boosted = n_outputs if boosted else 0
        """Extra network inputs, one per output: boosted trees' predictions (``ModelConfig.boosted_input_rows``)."""
        self.boosted = BoostedInputs.empty(self.n_boosted)
        self.floor_mass = BoostedInputs.empty(n_outputs)
        """Per output, the classifier of a value at the lower bound (``floor_mass``), or None."""
        self.members = self.new_members(n_features + self.n_boosted)
        # Noise offset per member and output: the noise level itself (homoscedastic) or added to the noise head.
        self.raw_noise = nn.Parameter(torch.full((config.ensemble_size, n_outputs), math.log(math.expm1(0.3))))
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        self.register_buffer("x_knots", torch.zeros(N_KNOTS, n_features))  # K x d
        self.register_buffer("x_quantile", torch.zeros(()))  # 1: inputs scaled through x_knots (quantile_rows)
        self.register_buffer("x_fraction", torch.zeros(n_features))  # 1: an atomic-fraction input (fraction_inputs)
        self.x_fraction[list(fraction_inputs)] = 1.0
        register_scaler(self)
        self.register_buffer("y_mean", torch.zeros(n_outputs))
        self.register_buffer("y_std", torch.ones(n_outputs))
        self.register_buffer("calibration_scale", torch.ones(n_outputs))
        self.register_buffer("tail_factor", torch.ones(n_outputs, len(CALIBRATION_LEVELS)))
        self.register_buffer("spread_offset", torch.zeros(n_outputs))
        self.register_buffer("conformal_template", torch.zeros(n_outputs, len(CALIBRATION_LEVELS)))
        self.register_buffer("conformal_skew", torch.ones(n_outputs))  # upper over lower reach of the shape
        self.register_buffer("support", support_tensor(bounds, self.transforms, self.target_names))  # m x 2
        self.n_train_rows: int | None = None
        """Rows the last ``fit`` trained on (all it was given); kept in a checkpoint's metadata."""

    def new_members(self, width: int) -> nn.ModuleList:
        """``ensemble_size`` fresh (uninitialised) members reading ``width`` inputs."""
        cfg, m = self.config, len(self.target_names)
        heads = 2 * m if cfg.noise == "heteroscedastic" else m
        return nn.ModuleList(
            VariationalMLP(width, heads, cfg.hidden, cfg.prior_std, cfg.posterior_std_init, cfg.fan_in_scaling)
            for _ in range(cfg.ensemble_size)
        )

    OPTIONAL_BUFFERS = (
        "support", "spread_offset", "conformal_template", "conformal_skew", "x_knots", "x_quantile", "x_fraction",
        "boost_mean", "boost_std", "boost_knots",
    )  # fmt: skip
    """Buffers a checkpoint written before they existed lacks; such a model keeps their defaults (unbounded, 0, no
    conformal shape, a symmetric one, standardised inputs, no atomic-fraction input, no boosted inputs)."""

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        """Load a state dict, keeping the defaults of ``OPTIONAL_BUFFERS`` it lacks."""
        for name in self.OPTIONAL_BUFFERS:
            state_dict.setdefault(prefix + name, getattr(self, name).clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def bounds(self) -> tuple[Bounds | None, ...]:
        """Per output, its support ``(low, high)`` in target units (None for an open end), or None if unbounded."""
        ends = [tuple(None if math.isinf(v) else float(v) for v in row) for row in self.support.tolist()]
        return tuple(None if end == (None, None) else end for end in ends)

    def standardised_support(self) -> tuple[Tensor, Tensor]:
        """Each output's ``low`` and ``high`` (``m`` each) in standardised transformed units; infinite where open."""
        low = (forward_transform_each(self.transforms, self.support[:, 0]) - self.y_mean) / self.y_std
        high = (forward_transform_each(self.transforms, self.support[:, 1]) - self.y_mean) / self.y_std
        return low, high

    @property
    def n_features(self) -> int:
        """Number of input descriptors."""
        return self.x_mean.shape[0]

    @property
    def n_outputs(self) -> int:
        """Number of objectives ``m``."""
        return len(self.target_names)

    def noise_scale(self, raw_outputs: Tensor, member_noise: Tensor) -> Tensor:
        """Noise scale (``... x m``: standard deviation, or Laplace ``b``) from raw outputs and per-member offsets."""
        m = self.n_outputs
        if self.config.noise == "heteroscedastic":
            return functional.softplus(raw_outputs[..., m:] + member_noise) + NOISE_FLOOR
        return (functional.softplus(member_noise) + NOISE_FLOOR).expand(*raw_outputs.shape[:-1], m)

    def _standardise_targets(self, targets: Tensor, fit_rows: Tensor) -> Tensor:
        """``n x m`` raw targets (NaN = missing) -> standardised transformed targets; scaler from ``fit_rows``."""
        transformed = self._transformed(targets)
        fit = transformed[fit_rows]
        observed = ~torch.isnan(fit)
        for j in range(transformed.shape[1]):
            column = fit[observed[:, j], j]
            if column.numel() == 0:
                raise ValueError(f"target {self.target_names[j]!r} has no observed value to train on")
            self.y_mean[j] = column.mean()
            self.y_std[j] = column.std() if column.numel() > 1 and column.std() > 1e-8 else 1.0
        return (transformed - self.y_mean) / self.y_std

    def _transformed(self, targets: Tensor) -> Tensor:
        """``n x m`` raw targets -> each output's transform applied (``log1p`` or none)."""
        return torch.stack([forward_transform(kind, targets[:, j]) for j, kind in enumerate(self.transforms)], dim=1)

    def continues(self, previous: BNNSurrogate) -> bool:
        """Whether ``previous`` can start this model's training: same targets, transforms, likelihood and tensor shapes.

        A campaign's inputs change shape when structural descriptors first appear; a model of the old shape cannot be
        continued and the round trains from scratch.
        """
        mine, theirs = self.state_dict(), previous.state_dict()
        return (
            (self.target_names, self.transforms) == (previous.target_names, previous.transforms)
            and (self.config.noise, self.config.likelihood) == (previous.config.noise, previous.config.likelihood)
            and mine.keys() == theirs.keys()
            and all(mine[name].shape == theirs[name].shape for name in mine)
        )

    def fit(
        self,
        features: np.ndarray,
        targets: np.ndarray,
        seed: int,
        groups: np.ndarray | None = None,
        warm_start: BNNSurrogate | None = None,
    ) -> TrainingReport:
        """Train the ensemble on every row by minimising each member's negative ELBO with Adam on minibatches.

        Loss per step: mean masked NLL (``likelihood``, beta-weighted) of the minibatch + the KL weight
        (``config.effective_kl_weight``) x KL / (number of rows). Members are cross-fitted
        (``training.cross_fit_folds``): their out-of-fold predictions choose the stopping point, the noise level
        (``sbin_loop.model.training``) and the recalibration of the predictive spread
        (``sbin_loop.model.recalibration``).

        Args:
            features: ``n x d`` descriptors, NaN where missing: a missing descriptor is imputed with the mean of the
                rows that have it (0 after standardisation; their median, also 0, once quantile-scaled), so give the
                network an input that says which descriptors are imputed (``sbin_loop.features.structure_inputs``
                adds one).
            targets: ``n x m`` raw targets, NaN where not measured.
            seed: Seeds the folds, initialisation, minibatch order and all reparameterisation noise.
            groups: Optional group label per row; the folds then hold out whole groups.
            warm_start: A trained model (the previous round's) to continue from for ``warm_start_steps`` steps per
                member instead of training fresh ones; ignored when ``warm_start_steps`` is 0. Its members have seen
                every row, so no fold is held out: all members continue on all rows and keep the previous model's
                noise level and recalibration. The scalers are refitted on these rows; a model whose inputs were
                scaled the other way (the rows have just reached ``quantile_rows``) is not continued.

        Raises:
            ValueError: On shape mismatch, infinite features, negative targets under ``log1p``, values outside the
                bounds, or a ``warm_start`` model this one cannot continue (see ``continues``).
        """
        start = time.perf_counter()
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        y_raw = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        check_training_rows(x, y_raw, self.n_features, self.target_names, self.transforms, self.support)
        censored = (y_raw >= self.support[:, 1]).to(torch.int8) - (y_raw <= self.support[:, 0]).to(torch.int8)
        cfg = self.config
        if not cfg.warm_start_steps:
            warm_start = None
        if warm_start is not None and not self.continues(warm_start):
            raise ValueError("warm_start model has other targets, transforms, likelihood or shapes than this one")
        n_rows, observed = int(x.shape[0]), ~torch.isnan(y_raw)
        if use_boosted_inputs(self, observed):
            warm_start = None  # its members read the other number of inputs
        self.floor_mass = fit_floor_mass(self, x, censored, observed, seed)
        x, y_raw, censored, groups = rows_above_floor(self, x, y_raw, censored, groups)
        everything = torch.arange(x.shape[0])
        descriptors = x
        self._fit_input_scaler(x)
        if warm_start is not None and bool(warm_start.x_quantile) != bool(self.x_quantile):
            warm_start = None  # its weights read inputs scaled the other way (``quantile_rows`` was crossed)
        x = self._standardise_features(x)
        y = self._standardise_targets(y_raw, everything)
        mask = ~torch.isnan(y)
        y = torch.nan_to_num(y)
        held = None
        if warm_start is None:
            held = training.cross_fit_folds(len(y), mask.numpy(), len(self.members), seed, groups)
        self.boosted, x = with_boosted_inputs(self, descriptors, x, y, mask, seed, groups)
        data = FitData(x, y, mask, censored)
        self.calibration_scale.fill_(1.0)
        self.tail_factor.fill_(1.0)
        self.spread_offset.fill_(0.0)
        self.conformal_template.fill_(0.0)
        self.conformal_skew.fill_(1.0)
        with torch.no_grad():
            if warm_start is None:
                self.raw_noise.fill_(math.log(math.expm1(0.3)))
            else:
                self.raw_noise.copy_(warm_start.raw_noise)
                self.tail_factor.copy_(warm_start.tail_factor)
                self.spread_offset.copy_(warm_start.spread_offset)
                self.conformal_template.copy_(warm_start.conformal_template)
                self.conformal_skew.copy_(warm_start.conformal_skew)
        generator = torch.Generator().manual_seed(seed)
        with training.torch_threads(cfg.train_threads):
            steps, nll, kl, best = training.fit_members(self, data, held, generator, warm_start)
        self.eval()
        self.check_finite()
        shifts, n_calibration = (0.0,) * self.n_outputs, 0
        factors = tuple(float(v) for v in self.tail_factor[:, -1])
        if held is not None:
            shifts = training.fit_noise_level(self, data, held)
            if cfg.recalibrate:
                n_calibration, factors = recalibration.calibrate(self, data, held, seed)
        self.n_train_rows = n_rows
        return TrainingReport(
            n_train=n_rows,
            steps=steps,
            final_nll=nll,
            final_kl_per_datum=kl,
            seconds=time.perf_counter() - start,
            n_held_out=int(sum(int(mask[rows].sum()) for rows in held)) if held is not None else 0,
            best_held_out_loss=best,
            noise_shift=shifts,
            interval_factor_95=factors,
            n_calibration=n_calibration,
            warm_started=warm_start is not None,
        )

    def check_finite(self) -> None:
        """Refuse a model with a non-finite weight, scaler or factor (the support's open ends aside).

        Raises:
            ModelOutputError: Naming the first offending tensor; such a model must not be saved or used.
        """
        for name, tensor in self.state_dict().items():
            if name != "support" and not torch.isfinite(tensor).all():
                raise ModelOutputError(f"training produced non-finite values in {name}; the model is not used")

    def _fit_input_scaler(self, x_fit: Tensor) -> None:
        """Per-descriptor mean, standard deviation and (from ``quantile_rows`` rows on) quantile knots."""
        quantile = quantile_scaled(self.config, x_fit.shape[0])
        mean, std, knots = fit_scaler(x_fit, quantile, self.x_fraction.bool(), self.x_knots.shape[0])
        self.x_mean.copy_(mean)
        self.x_std.copy_(std)
        self.x_quantile.fill_(float(quantile))
        self.x_knots.copy_(knots)

    def _standardise_features(self, features: np.ndarray | Tensor) -> Tensor:
        """Scaled (``ModelConfig.quantile_rows``), clipped descriptors; a missing (NaN) descriptor becomes 0."""
        x = torch.as_tensor(features, dtype=torch.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected n x {self.n_features} features, got shape {tuple(x.shape)}")
        knots = self.x_knots if self.x_quantile else None
        return scaled_inputs(x, self.x_mean, self.x_std, knots, self.config.input_clip)

    def network_inputs(self, features: np.ndarray | Tensor) -> Tensor:
        """``n x (d + n_boosted)``: what the members read for ``n x d`` descriptors (scaled, then boosted columns)."""
        descriptors = torch.as_tensor(features, dtype=torch.float32)
        x = self._standardise_features(descriptors)
        if not self.n_boosted:
            return x
        column = self.boosted.predict(descriptors)
        return torch.cat([x, scaled_column(self, self.boosted, column)], dim=1)

    def draw_weight_sets(self, n_draws: int, seed: int) -> list[tuple[Tensor, Tensor]]:
        """``S`` posterior weight sets from a seed; pass them to ``evaluate`` to get the same functions anywhere.

        The draws are split across ensemble members (``split_draws``), members in order, and concatenated along the
        draw dimension, so the ``S`` functions are a sample of the mixture posterior stratified by member.
        """
        generator = torch.Generator().manual_seed(seed)
        per_member = [
            net.draw_weight_sets(count, generator)
            for net, count in zip(self.members, split_draws(n_draws, len(self.members)), strict=True)
        ]
        with torch.no_grad():
            return [
                (torch.cat([sets[layer][0] for sets in per_member]), torch.cat([sets[layer][1] for sets in per_member]))
                for layer in range(len(per_member[0]))
            ]

    def _raw_draws(self, x: Tensor, weight_sets: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """Uncalibrated function draws and noise stds (each ``S x n x m``) for standardised inputs ``x``."""
        n_draws = weight_sets[0][0].shape[0]
        member_of_draw = torch.repeat_interleave(
            torch.arange(len(self.members)), torch.as_tensor(split_draws(n_draws, len(self.members)))
        )
        member_noise = self.raw_noise.detach()[member_of_draw][:, None, :]  # S x 1 x m
        chunk = max(16, DRAW_CHUNK_ELEMENTS // n_draws)
        with torch.no_grad():
            raw = torch.cat(
                [
                    VariationalMLP.evaluate_weight_sets(x[start : start + chunk], weight_sets)
                    for start in range(0, x.shape[0], chunk)
                ],
                dim=1,
            )
            return raw[..., : self.n_outputs], self.noise_scale(raw, member_noise)

    def _calibrated(self, mean: Tensor) -> Tensor:
        """Function draws with their spread about the Monte Carlo mean scaled by ``calibration_scale``."""
        centre = mean.mean(dim=0, keepdim=True)
        return centre + self.calibration_scale * (mean - centre)

    def evaluate(self, features: np.ndarray | Tensor, weight_sets: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Posterior function values (noise-free) for drawn weight sets, in standardised transformed units.

        The spread of the draws about their mean is scaled by the recalibration factor.

        Args:
            features: ``n x d`` descriptors.
            weight_sets: From ``draw_weight_sets``.

        Returns:
            ``S x n x m`` tensor.
        """
        mean, _ = self._raw_draws(self.network_inputs(features), weight_sets)
        return self._calibrated(mean)

    def to_target_units(self, standardised: Tensor) -> Tensor:
        """Map ``... x m`` standardised transformed latent values to observations in the targets' own units.

        The censored observation model clamps them to each output's support, so every value this returns (and every
        mean, quantile or acquisition value computed from it) lies in the support.

        Raises:
            ModelOutputError: If a value is not finite; such a model must not be used or stored.
        """
        transformed = standardised * self.y_std + self.y_mean
        values = torch.stack(
            [inverse_transform(kind, transformed[..., j]) for j, kind in enumerate(self.transforms)], dim=-1
        )
        values = torch.maximum(torch.minimum(values, self.support[:, 1]), self.support[:, 0])
        if not torch.isfinite(values).all():
            raise ModelOutputError(
                f"the model produced non-finite values for {', '.join(self.target_names)}; it is not used"
            )
        return values

    def function_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` posterior draws of the noise-free function, in target units.

        Where an output has a classifier of values at its lower bound, a share of each row's draws equal to its
        probability is that bound (``floor_mass.floored_functions``), the same draws in any batch.
        """
        return self.function_values(features, self.draw_weight_sets(n_draws, seed), seed)

    def function_values(
        self, features: np.ndarray | Tensor, weight_sets: list[tuple[Tensor, Tensor]], seed: int
    ) -> Tensor:
        """``S x n x m`` posterior functions of drawn weight sets in target units, the bound's mass included.

        ``seed`` places the mass (``floor_mass.floored_functions``); ``function_draws`` and ``BNNModel``, which keeps
        its weight sets, both come here.
        """
        descriptors = torch.as_tensor(features, dtype=torch.float32)
        values = self.to_target_units(self.evaluate(descriptors, weight_sets))
        return floored_functions(self, descriptors, values, seed)

    def predictive_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` posterior predictive draws (function + observation noise), in target units.

        The noise (each draw with its own member's and, if heteroscedastic, input's noise level, scaled by the
        recalibration factor) is added, and the draws' distances from their median are scaled by the per-level
        ``tail_factor``; both happen in the standardised transformed space where it was learned, then the draws
        are mapped back, so intervals of ``log1p`` targets are correctly skewed and never below -1. Where an output
        has a classifier of values at its lower bound (``floor_mass``), each draw is that bound with its probability.
        """
        descriptors = torch.as_tensor(features, dtype=torch.float32)
        mean, noise = self._raw_draws(self.network_inputs(descriptors), self.draw_weight_sets(n_draws, seed))
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            unit_noise = predictive_noise(mean.shape, self.config.likelihood, self.transforms, generator)
            draws = self._calibrated(mean) + self.calibration_scale * noise * unit_noise
            draws = tail_calibrated(
                draws,
                self.tail_factor,
                self.spread_offset,
                self.conformal_template,
                split_draws(n_draws, len(self.members)),
                self.conformal_skew,
            )
        return floored_draws(self, descriptors, self.to_target_units(draws), seed)

"""The BNN surrogate: standardisation, target transforms, masked multi-output ELBO training, posterior draws.

One network predicts every objective of a campaign. Targets may be missing (NaN) for some compositions; the
likelihood masks them, so a composition measured for only one objective still trains that objective's output.

Training holds out a validation split of the rows it is given (``ModelConfig.validation_fraction``; whole groups when
``groups`` are passed). The validation rows never produce a gradient: they decide when to stop (the best checkpoint
by the validation metric is kept) and fit the recalibration of the predictive spread per output (one overall factor
and a factor per central level, see ``_recalibrate``) so that central intervals on the validation rows have their
nominal coverage. With too few rows for a validation split (under 200 by default, the start of every campaign) the
same factors are fitted on out-of-fold predictions: ``calibration_folds`` models, trained like this one on all rows but
one fold, predict their fold. They only set the spread of predictive draws (intervals), not of the function draws that
acquisition uses; the model that predicts is trained on every row.

An ensemble of ``ensemble_size`` variational networks makes the posterior an equal-weight mixture;
``draw_weight_sets`` splits its ``S`` draws across the members.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from sbin_loop.config import Bounds, ModelConfig
from sbin_loop.model.bnn import StackedMembers, VariationalMLP
from sbin_loop.model.calibration import (
    CALIBRATION_DRAWS,
    CALIBRATION_LEVELS,
    MIN_CALIBRATION_ROWS,
    HeldOutErrors,
    fit_output,
    tail_calibrated,
)
from sbin_loop.model.likelihood import masked_nll, standard_noise
from sbin_loop.model.splits import cross_validation_folds, split_draws, validation_split
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


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` intra-op threads, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ModelOutputError(ValueError):
    """A model produced a value that is not finite; nothing computed from it may be stored."""


def _masked_error(mean: Tensor, target: Tensor, mask: Tensor, power: int) -> Tensor:
    """Mean ``|error|^power`` over the observed (``mask``) entries of each ``n x m`` slice (``... x n x m`` -> ``...``).

    ``power`` 2 is the squared error, 1 the absolute error.
    """
    return (((mean - target).abs() ** power) * mask).sum(dim=(-2, -1)) / mask.sum(dim=(-2, -1)).clamp(min=1)


@dataclass(frozen=True)
class TrainingReport:
    """What one fit did.

    Attributes:
        n_train: Rows that produced gradients.
        steps: Optimiser steps, summed over ensemble members.
        final_nll: Last minibatch NLL of the last member.
        final_kl_per_datum: Last KL / ``n_train`` of the last member.
        seconds: Wall time of the whole fit.
        n_validation: Rows held out for early stopping and recalibration (0: none).
        best_validation_loss: Per member, the ``validation_metric`` of the kept checkpoint (empty without validation).
        calibration_scale: Per output, the factor applied to the spread of function and predictive draws (1 without
            recalibration, and with out-of-fold recalibration, which widens predictive draws only: ``tail_factor``).
        n_calibration: Held-out predictions the recalibration was fitted on: the validation rows, or every row
            predicted by the model that did not train on its fold (0: not recalibrated).
        warm_started: Whether training continued from an earlier model (``warm_start``) instead of a fresh one.
    """

    n_train: int
    steps: int
    final_nll: float
    final_kl_per_datum: float
    seconds: float
    n_validation: int = 0
    best_validation_loss: tuple[float, ...] = ()
    calibration_scale: tuple[float, ...] = ()
    n_calibration: int = 0
    warm_started: bool = False


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
    """

    def __init__(
        self,
        n_features: int,
        target_names: tuple[str, ...],
        transforms: tuple[str, ...],
        config: ModelConfig,
        bounds: tuple[Bounds | None, ...] | None = None,
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
        heads = 2 * n_outputs if config.noise == "heteroscedastic" else n_outputs
        self.members = nn.ModuleList(
            VariationalMLP(
                n_features, heads, config.hidden, config.prior_std, config.posterior_std_init, config.fan_in_scaling
            )
            for _ in range(config.ensemble_size)
        )
        # Noise offset per member and output: the noise level itself (homoscedastic) or added to the noise head.
        self.raw_noise = nn.Parameter(torch.full((config.ensemble_size, n_outputs), math.log(math.expm1(0.3))))
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        self.register_buffer("y_mean", torch.zeros(n_outputs))
        self.register_buffer("y_std", torch.ones(n_outputs))
        self.register_buffer("calibration_scale", torch.ones(n_outputs))
        self.register_buffer("tail_factor", torch.ones(n_outputs, len(CALIBRATION_LEVELS)))
        self.register_buffer("spread_offset", torch.zeros(n_outputs))
        self.register_buffer("support", support_tensor(bounds, self.transforms, self.target_names))  # m x 2

    OPTIONAL_BUFFERS = ("support", "spread_offset")
    """Buffers a checkpoint written before they existed lacks; such a model keeps their defaults (unbounded, 0)."""

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

    def _standardised_support(self) -> tuple[Tensor, Tensor]:
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

    def _noise_scale(self, raw_outputs: Tensor, member_noise: Tensor) -> Tensor:
        """Noise scale (``... x m``: standard deviation, or Laplace ``b``) from raw outputs and per-member offsets."""
        m = self.n_outputs
        if self.config.noise == "heteroscedastic":
            return functional.softplus(raw_outputs[..., m:] + member_noise) + NOISE_FLOOR
        return (functional.softplus(member_noise) + NOISE_FLOOR).expand(*raw_outputs.shape[:-1], m)

    def _unit_noise(self, shape: torch.Size, generator: torch.Generator) -> Tensor:
        """Seeded unit-scale observation noise for ``S x n x m`` draws, to be multiplied by the noise scales.

        The likelihood's own shape, except for ``log1p`` outputs of a Laplace model: there the draws are Gaussian with
        the Laplace's standard deviation (``b sqrt 2``). Mapped back by ``expm1``, Laplace noise has no mean once its
        scale reaches 1 in log units (intervals widened for a small campaign get there), and one draw made the
        predictive mean of a 81 K cuprate 2,433 K. The per-level tail factors, fitted on held-out errors with this
        same noise, then set the tails' shape.
        """
        noise = standard_noise(shape, self.config.likelihood, generator)
        if self.config.likelihood == "laplace":
            for j, kind in enumerate(self.transforms):
                if kind == "log1p":
                    noise[..., j] = math.sqrt(2) * torch.randn(shape[:-1], generator=generator)
        return noise

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
        """Train every ensemble member by minimising the negative ELBO with Adam on minibatches.

        Loss per step: mean masked NLL (``likelihood``, beta-weighted) of the minibatch + ``kl_weight`` x KL / (number
        of fitting rows).

        Args:
            features: ``n x d`` descriptors, NaN where missing: a missing descriptor is imputed with the mean of the
                fitting rows that have it (0 after standardisation), so give the network an input that says which
                descriptors are imputed (``sbin_loop.features.structure_inputs`` adds one).
            targets: ``n x m`` raw targets, NaN where not measured.
            seed: Seeds the validation split, initialisation, minibatch order and all reparameterisation noise.
            groups: Optional group label per row; the validation split then holds out whole groups.
            warm_start: A trained model (the previous round's) to continue from for ``warm_start_steps`` steps per
                member instead of training fresh ones; ignored when ``warm_start_steps`` is 0. The scalers are
                refitted on these rows, so the continuation also absorbs their small shift.

        Raises:
            ValueError: On shape mismatch, infinite features, negative targets under ``log1p``, or a ``warm_start``
                model this one cannot continue (see ``continues``).
        """
        start = time.perf_counter()
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        y_raw = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        if x.ndim != 2 or y_raw.ndim != 2 or x.shape[0] != y_raw.shape[0] or x.shape[1] != self.n_features:
            raise ValueError(f"expected n x {self.n_features} features and n x m targets, got {x.shape}, {y_raw.shape}")
        if y_raw.shape[1] != self.n_outputs:
            raise ValueError(f"expected {self.n_outputs} target columns, got {y_raw.shape[1]}")
        if torch.isinf(x).any():
            raise ValueError("features contain infinite values")
        if torch.isinf(y_raw).any():
            raise ValueError("targets contain infinite values (or values too large for float32)")
        for j, kind in enumerate(self.transforms):
            if kind == "log1p" and (y_raw[:, j] < 0).any():
                raise ValueError(f"target {self.target_names[j]!r} has negative values; log1p needs y >= 0")
        outside = (y_raw < self.support[:, 0]) | (y_raw > self.support[:, 1])  # NaN compares False
        for j in torch.nonzero(outside.any(dim=0)).flatten().tolist():
            raise ValueError(
                f"target {self.target_names[j]!r} has {int(outside[:, j].sum())} value(s) outside its bounds "
                f"{self.bounds[j]}"
            )
        censored = (y_raw >= self.support[:, 1]).to(torch.int8) - (y_raw <= self.support[:, 0]).to(torch.int8)
        cfg = self.config
        if not cfg.warm_start_steps:
            warm_start = None
        if warm_start is not None and not self.continues(warm_start):
            raise ValueError("warm_start model has other targets, transforms, likelihood or shapes than this one")
        fit_rows, val_rows = validation_split(
            x.shape[0], cfg.validation_fraction, cfg.min_validation_rows, seed, groups
        )
        fit_rows_t, val_rows_t = torch.as_tensor(fit_rows), torch.as_tensor(val_rows)
        self._fit_input_scaler(x[fit_rows_t])
        x = self._standardise_features(x)
        y = self._standardise_targets(y_raw, fit_rows_t)
        mask = ~torch.isnan(y)
        y = torch.nan_to_num(y)
        self.calibration_scale.fill_(1.0)
        self.tail_factor.fill_(1.0)
        self.spread_offset.fill_(0.0)
        with torch.no_grad():
            if warm_start is None:
                self.raw_noise.fill_(math.log(math.expm1(0.3)))
            else:
                self.raw_noise.copy_(warm_start.raw_noise)

        generator = torch.Generator().manual_seed(seed)
        validation = (x[val_rows_t], y[val_rows_t], mask[val_rows_t]) if len(val_rows) else None
        with torch_threads(cfg.train_threads):
            steps, nll, kl, best = self._fit_members(
                x[fit_rows_t], y[fit_rows_t], mask[fit_rows_t], censored[fit_rows_t], validation, generator, warm_start
            )
        self.eval()
        self.check_finite()
        n_calibration = 0
        if cfg.recalibrate and validation is not None:
            n_calibration = self._recalibrate([self._held_out_errors(*validation, seed=seed)], scale_functions=True)
        elif cfg.recalibrate and cfg.calibration_folds and len(fit_rows) >= MIN_CALIBRATION_ROWS:
            errors = self._out_of_fold_errors(y_raw.numpy(), features, seed, groups)
            n_calibration = self._recalibrate(errors, scale_functions=False)
        return TrainingReport(
            n_train=len(fit_rows),
            steps=steps,
            final_nll=nll,
            final_kl_per_datum=kl,
            seconds=time.perf_counter() - start,
            n_validation=len(val_rows),
            best_validation_loss=tuple(best),
            calibration_scale=tuple(float(v) for v in self.calibration_scale),
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

    def _fit_members(
        self,
        x: Tensor,
        y: Tensor,
        mask: Tensor,
        censored: Tensor,
        validation: tuple[Tensor, Tensor, Tensor] | None,
        generator: torch.Generator,
        warm_start: BNNSurrogate | None = None,
    ) -> tuple[int, float, float, tuple[float, ...]]:
        """Train every member at once (``StackedMembers``), each on its own minibatch order and with its own stopping.

        Members start from a fresh seeded initialisation, or from ``warm_start``'s members for ``warm_start_steps``.
        ``censored`` (``n x m``: -1 / +1 at the lower / upper bound of the support, else 0) selects the censored
        likelihood terms.

        Every ``validation_interval`` steps each member's validation loss is checked; a member keeps its best
        checkpoint, and training ends when every member has gone ``patience`` checks without improving (a member that
        stopped improving earlier trains on, but its best checkpoint is what it keeps).

        Returns:
            Optimiser steps summed over members, the last minibatch NLL and KL per datum of the last member, and
            each member's best validation loss (empty without validation).
        """
        cfg = self.config
        n_members, n = len(self.members), x.shape[0]
        batch = min(cfg.batch_size, n)
        steps_per_epoch = math.ceil(n / batch)
        if warm_start is None:
            for net in self.members:
                net.reset_parameters(generator)
            max_steps = min(max(cfg.epochs * steps_per_epoch, cfg.min_steps), cfg.max_steps)
        else:
            self._start_from(warm_start, generator)
            max_steps = cfg.warm_start_steps
        stacked = StackedMembers(self.members)
        optimiser = torch.optim.Adam([*stacked.parameters(), self.raw_noise], lr=cfg.learning_rate, fused=True)
        cosine = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max_steps, eta_min=0.01 * cfg.learning_rate)
            if cfg.learning_rate_schedule == "cosine"
            else None
        )
        orders = torch.stack([torch.randperm(n, generator=generator) for _ in range(n_members)])  # E x n
        best_loss, stale = [math.inf] * n_members, [0] * n_members
        best_state: list[tuple[tuple[Tensor, Tensor], Tensor] | None] = [None] * n_members  # (mu, rho), noise
        nll = torch.zeros(n_members)
        step = 0
        for step in range(1, max_steps + 1):
            position = ((step - 1) % steps_per_epoch) * batch
            if position == 0 and step > 1:
                orders = torch.stack([torch.randperm(n, generator=generator) for _ in range(n_members)])
            rows = orders[:, position : position + batch]  # E x b
            raw = stacked.forward(x[rows], generator)  # E x b x heads
            noise = self._noise_scale(raw, self.raw_noise.unsqueeze(1))  # E x b x m
            nll = masked_nll(
                raw[..., : self.n_outputs], noise, y[rows], mask[rows], cfg.likelihood, cfg.nll_beta, censored[rows]
            )  # E
            optimiser.zero_grad()
            nll.sum().backward()
            stacked.add_kl_gradient(cfg.kl_weight / n)  # the loss is nll + kl_weight * KL / n
            optimiser.step()
            if cosine is not None:
                cosine.step()
            if validation is not None and (step % cfg.validation_interval == 0 or step == max_steps):
                val_loss = self._validation_losses(stacked, validation)
                for member, value in enumerate(val_loss):
                    if value < best_loss[member]:
                        best_loss[member], stale[member] = value, 0
                        best_state[member] = (stacked.member_state(member), self.raw_noise[member].detach().clone())
                    else:
                        stale[member] += 1
                if min(stale) >= cfg.patience:
                    break
        for member, kept in enumerate(best_state):
            stacked.write_back(member, kept[0] if kept is not None else None)
            if kept is not None:
                with torch.no_grad():
                    self.raw_noise[member] = kept[1]
        best = tuple(best_loss) if validation is not None else ()
        with torch.no_grad():
            kl = stacked.kl_divergence()[-1] / n
        return step * n_members, float(nll[-1].detach()), float(kl), best

    def _start_from(self, previous: BNNSurrogate, generator: torch.Generator) -> None:
        """Set the members to ``previous``'s, shrunk towards a fresh initialisation by ``warm_start_keep``.

        With ``warm_start_keep`` below 1 each weight mean starts at ``keep * previous + (1 - keep) * fresh`` and every
        posterior spread at its initial value (shrink and perturb, Ash & Adams, NeurIPS 2020): the continued model
        keeps what it learned but regains some of a fresh model's freedom to extrapolate differently. At 1 the members
        are ``previous``'s as they are.
        """
        keep = self.config.warm_start_keep
        if keep == 1:
            self.members.load_state_dict(previous.members.state_dict())
            return
        for net, old in zip(self.members, previous.members, strict=True):
            net.reset_parameters(generator)
            with torch.no_grad():
                for layer, old_layer in zip(net.layers, old.layers, strict=True):
                    layer.weight_mu.mul_(1 - keep).add_(keep * old_layer.weight_mu)
                    layer.bias_mu.mul_(1 - keep).add_(keep * old_layer.bias_mu)

    def _validation_losses(self, stacked: StackedMembers, validation: tuple[Tensor, Tensor, Tensor]) -> list[float]:
        """Each member's ``validation_metric`` on the validation rows, weights at their posterior means."""
        x, y, mask = validation
        with torch.no_grad():
            raw = stacked.forward_mean(x)  # E x n x heads
            low, high = self._standardised_support()
            mean = raw[..., : self.n_outputs]
            if self.config.validation_metric == "nll":
                noise = self._noise_scale(raw, self.raw_noise.unsqueeze(1))
                censored = (y >= high).to(torch.int8) - (y <= low).to(torch.int8)
                losses = masked_nll(mean, noise, y, mask, self.config.likelihood, censored=censored)
            else:
                observed = torch.maximum(torch.minimum(mean, high), low)  # what the censored model predicts
                losses = _masked_error(observed, y, mask, power=1 if self.config.validation_metric == "mae" else 2)
        return [float(v) for v in losses]

    def _held_out_errors(self, x: Tensor, y: Tensor, mask: Tensor, seed: int) -> list[HeldOutErrors]:
        """Per output, how far the observed held-out targets fall from the median of the uncalibrated draws.

        Args:
            x: ``n x d`` standardised descriptors of rows this model did not train on.
            y: ``n x m`` their standardised targets (any value where not observed).
            mask: ``n x m``, True where a target is observed.
            seed: Seeds the draws.
        """
        weight_sets = self.draw_weight_sets(CALIBRATION_DRAWS, seed)
        with torch.no_grad():
            mean, noise = self._raw_draws(x, weight_sets)
            noise_draws = self._unit_noise(mean.shape, torch.Generator().manual_seed(seed + 1))
            draws = mean + noise * noise_draws  # S x n x m, uncalibrated predictive draws
        centre = draws.median(dim=0).values.numpy()
        low, high = (end.numpy() for end in self._standardised_support())
        levels = np.asarray(CALIBRATION_LEVELS)
        probabilities = np.concatenate([(1 - levels) / 2, (1 + levels) / 2])
        quantiles = np.quantile(draws.numpy(), probabilities, axis=0) - centre  # 2L x n x m
        errors = []
        for j in range(self.n_outputs):
            observed = mask[:, j].numpy()
            errors.append(
                HeldOutErrors(
                    offset=y[observed, j].numpy() - centre[observed, j],
                    lower=quantiles[: len(levels), observed, j],
                    upper=quantiles[len(levels) :, observed, j],
                    floor=low[j] - centre[observed, j],
                    ceiling=high[j] - centre[observed, j],
                )
            )
        return errors

    def _out_of_fold_errors(
        self, targets: np.ndarray, features: np.ndarray, seed: int, groups: np.ndarray | None
    ) -> list[list[HeldOutErrors]]:
        """Held-out errors of ``calibration_folds`` models, each trained like this one on all rows but one fold.

        A fold whose training rows leave an output unobserved is skipped. Each model's errors are in its own
        standardised units; the spread factors only compare an error with its own model's quantiles, so they pool.
        """
        cfg = self.config
        fold_config = cfg.model_copy(update={"recalibrate": False, "validation_fraction": 0.0})
        x_all = np.asarray(features, dtype=np.float32)
        per_fold = []
        for k, held in enumerate(cross_validation_folds(len(targets), cfg.calibration_folds, seed, groups)):
            train = np.setdiff1d(np.arange(len(targets)), held)
            if not (~np.isnan(targets[train])).any(axis=0).all():
                continue
            fold_model = BNNSurrogate(self.n_features, self.target_names, self.transforms, fold_config, self.bounds)
            fold_model.fit(x_all[train], targets[train], seed=seed + 1 + k)
            y_held = (fold_model._transformed(torch.as_tensor(targets[held])) - fold_model.y_mean) / fold_model.y_std
            per_fold.append(
                fold_model._held_out_errors(
                    fold_model._standardise_features(x_all[held]), torch.nan_to_num(y_held), ~torch.isnan(y_held), seed
                )
            )
        return per_fold

    def _recalibrate(self, errors: list[list[HeldOutErrors]], scale_functions: bool) -> int:
        """Fit each output's spread factors on held-out errors (``calibration.fit_output``) and store them.

        An output with fewer than ``MIN_CALIBRATION_ROWS`` held-out errors keeps factors of 1.

        Args:
            errors: Per model that predicted held-out rows (one validation model, or one per fold), per output.
            scale_functions: Put the overall factor in ``calibration_scale``, which scales function draws too, so
                acquisition sees the recalibrated epistemic spread (validation split); or fold it into
                ``tail_factor``, which only predictive draws (intervals) use (out-of-fold). Out-of-fold factors are
                3-16 on 30-120 SuperCon rows; putting them into the function draws made batch EI explore almost
                blindly (4 seeds to 200 evaluations: 4.7% of the top 1% found against 21.5%).

        Returns:
            The number of held-out predictions (all outputs) the factors were fitted on.
        """
        used = 0
        for j in range(self.n_outputs):
            pooled = HeldOutErrors.pooled([per_output[j] for per_output in errors])
            if len(pooled.offset) < MIN_CALIBRATION_ROWS:
                continue
            overall, tail, gamma = fit_output(pooled, with_offset=not scale_functions)
            if scale_functions:
                self.calibration_scale[j] = float(overall)
            else:
                tail = tail * overall
            self.tail_factor[j] = torch.as_tensor(tail, dtype=torch.float32)
            self.spread_offset[j] = gamma
            used += len(pooled.offset)
        return used

    def _fit_input_scaler(self, x_fit: Tensor) -> None:
        """Per-descriptor mean and standard deviation over the fitting rows' measured (non-NaN) values.

        A descriptor with no measured value on the fitting rows gets mean 0 and scale 1.
        """
        measured = ~torch.isnan(x_fit)
        count = measured.sum(dim=0)
        mean = torch.nansum(x_fit, dim=0) / count.clamp(min=1)
        deviation = torch.where(measured, x_fit - mean, torch.zeros_like(x_fit))
        std = (deviation.square().sum(dim=0) / (count - 1).clamp(min=1)).sqrt()
        self.x_mean.copy_(mean)
        self.x_std.copy_(torch.where((count > 1) & (std > 1e-8), std, torch.ones_like(std)))

    def _standardise_features(self, features: np.ndarray | Tensor) -> Tensor:
        """Standardised, clipped descriptors; a missing (NaN) descriptor becomes 0, the training mean."""
        x = torch.as_tensor(features, dtype=torch.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected n x {self.n_features} features, got shape {tuple(x.shape)}")
        clip = self.config.input_clip
        return torch.nan_to_num(((x - self.x_mean) / self.x_std).clamp(-clip, clip), nan=0.0)

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
            return raw[..., : self.n_outputs], self._noise_scale(raw, member_noise)

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
        mean, _ = self._raw_draws(self._standardise_features(features), weight_sets)
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
        """``S x n x m`` posterior draws of the noise-free function, in target units."""
        return self.to_target_units(self.evaluate(features, self.draw_weight_sets(n_draws, seed)))

    def predictive_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` posterior predictive draws (function + observation noise), in target units.

        The noise (each draw with its own member's and, if heteroscedastic, input's noise level, scaled by the
        recalibration factor) is added, and the draws' distances from their median are scaled by the per-level
        ``tail_factor``; both happen in the standardised transformed space where it was learned, then the draws
        are mapped back, so intervals of ``log1p`` targets are correctly skewed and never below -1.
        """
        mean, noise = self._raw_draws(self._standardise_features(features), self.draw_weight_sets(n_draws, seed))
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            unit_noise = self._unit_noise(mean.shape, generator)
            draws = self._calibrated(mean) + self.calibration_scale * noise * unit_noise
            draws = tail_calibrated(draws, self.tail_factor, self.spread_offset)
        return self.to_target_units(draws)

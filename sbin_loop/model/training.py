"""Training of a ``BNNSurrogate``: cross-fitted ensemble members, held-out noise level, recalibration.

Every row trains the ensemble. With ``ensemble_size`` members of at least 2 the rows are dealt into as many folds
(whole groups when groups are given) and member ``e`` trains on every fold but fold ``e`` (cross-fitting). Each row
is then predicted by a member that never saw it, and those out-of-fold predictions do three jobs that would otherwise
need rows held out from the final model:

- stopping: the members' pooled out-of-fold error is checked every ``validation_interval`` steps and all members keep
  their weights of the best check (one stopping point for the ensemble, decided by every row);
- the noise level: a mean-field posterior fitted to a few rows drives its training likelihood's noise towards zero
  and its intervals cover a fraction of new points. Each output's noise offset is shifted by the amount that
  maximises the out-of-fold likelihood (a one-dimensional held-out maximum-likelihood fit), so the posterior's own
  intervals are about right before any recalibration;
- the recalibration (``sbin_loop.model.recalibration``): per-level spread factors, or a conformal shape scaled by
  each row's central spread, that make the out-of-fold central intervals reach their nominal coverage. They only
  fine-tune what the noise level already got about right.

With one member, or rows too few to deal into two folds, every member trains on every row for the full step budget
and the spread is the network's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from sbin_loop.model.bnn import StackedMembers
from sbin_loop.model.config import effective_kl_weight
from sbin_loop.model.likelihood import masked_nll
from sbin_loop.model.splits import cross_validation_folds

if TYPE_CHECKING:
    from sbin_loop.model.surrogate import BNNSurrogate

NOISE_SHIFTS = tuple(float(v) for v in np.linspace(-4.0, 8.0, 241))
"""Candidate shifts of an output's noise offset (added before the softplus; about ``log`` of the factor on a small
noise, about the added standard deviation on a large one), searched for the best out-of-fold likelihood."""


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` intra-op threads, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class TrainingReport:
    """What one fit did.

    Attributes:
        n_train: Rows the model was given; every one of them trained it (each cross-fitted member skips one fold).
        steps: Optimiser steps, summed over ensemble members.
        final_nll: Last minibatch NLL of the last member.
        final_kl_per_datum: Last KL / training rows of the last member.
        seconds: Wall time of the whole fit.
        n_held_out: Out-of-fold predictions that chose the stopping point, noise level and recalibration (0: the
            members were not cross-fitted).
        best_held_out_loss: The pooled out-of-fold ``validation_metric`` at the kept stopping point (None without
            cross-fitting).
        noise_shift: Per output, the shift of the noise offset fitted on the out-of-fold likelihood (0 without).
        interval_factor_95: Per output, the factor by which recalibration scales the 95% interval (1: not
            recalibrated); for an output mapped onto a conformal shape, the median of that factor over the
            out-of-fold rows.
        n_calibration: Held-out predictions the recalibration was fitted on (0: not recalibrated).
        warm_started: Whether training continued from an earlier model (``warm_start``) instead of a fresh one.
    """

    n_train: int
    steps: int
    final_nll: float
    final_kl_per_datum: float
    seconds: float
    n_held_out: int = 0
    best_held_out_loss: float | None = None
    noise_shift: tuple[float, ...] = ()
    interval_factor_95: tuple[float, ...] = ()
    n_calibration: int = 0
    warm_started: bool = False


@dataclass(frozen=True)
class FitData:
    """A fit's rows in the model's units.

    Attributes:
        x: ``n x d`` standardised descriptors.
        y: ``n x m`` standardised transformed targets, 0 where missing.
        mask: ``n x m``, True where a target is observed.
        censored: ``n x m``: -1 / +1 at the lower / upper bound of the support, else 0.
    """

    x: Tensor
    y: Tensor
    mask: Tensor
    censored: Tensor


def cross_fit_folds(
    n_rows: int, observed: np.ndarray, n_members: int, seed: int, groups: np.ndarray | None
) -> list[np.ndarray] | None:
    """Each member's held-out rows (fold ``e % folds`` for member ``e``), or None where cross-fitting is impossible.

    None with one member, with fewer than two folds (fewer than two groups), or when a member's training rows would
    leave an output without an observed value.

    Args:
        n_rows: Rows of the fit.
        observed: ``n x m``, True where a target is observed.
        n_members: Ensemble members.
        seed: Seeds the folds.
        groups: Optional group label per row; folds hold out whole groups.
    """
    if n_members < 2 or n_rows < 2:
        return None
    folds = cross_validation_folds(n_rows, n_members, seed, groups)
    if len(folds) < 2:
        return None
    held = [folds[e % len(folds)] for e in range(n_members)]
    for rows in held:
        keep = np.ones(n_rows, dtype=bool)
        keep[rows] = False
        if not observed[keep].any(axis=0).all():
            return None
    return held


def _member_orders(train: list[Tensor], length: int, generator: torch.Generator) -> Tensor:
    """``E x length`` row indices: each member's training rows shuffled, topped up with random ones of its rows."""
    orders = []
    for rows in train:
        shuffled = rows[torch.randperm(len(rows), generator=generator)]
        extra = rows[torch.randint(len(rows), (length - len(rows),), generator=generator)]
        orders.append(torch.cat([shuffled, extra]))
    return torch.stack(orders)


def held_out_losses(surrogate: BNNSurrogate, stacked: StackedMembers, data: FitData, held: Tensor) -> Tensor:
    """Each member's ``validation_metric`` summed over its held-out (``held``: ``E x n``) observed entries (``E``)."""
    cfg = surrogate.config
    with torch.no_grad():
        raw = stacked.forward_mean(data.x)  # E x n x heads
        mask = data.mask & held[:, :, None]  # E x n x m
        count = mask.sum(dim=(-2, -1))
        mean = raw[..., : surrogate.n_outputs]
        if cfg.validation_metric == "nll":
            noise = surrogate.noise_scale(raw, surrogate.raw_noise.unsqueeze(1))
            losses = masked_nll(mean, noise, data.y, mask, cfg.likelihood, censored=data.censored)
        else:
            low, high = surrogate.standardised_support()
            observed = torch.maximum(torch.minimum(mean, high), low)  # what the censored model predicts
            power = 1 if cfg.validation_metric == "mae" else 2
            losses = ((observed - data.y).abs() ** power * mask).sum(dim=(-2, -1)) / count.clamp(min=1)
    return losses * count


def fit_members(
    surrogate: BNNSurrogate,
    data: FitData,
    held: list[np.ndarray] | None,
    generator: torch.Generator,
    warm_start: BNNSurrogate | None = None,
) -> tuple[int, float, float, float | None]:
    """Train every member at once (``StackedMembers``), member ``e`` on all rows but ``held[e]``.

    Members start from a fresh seeded initialisation, or from ``warm_start``'s members for ``warm_start_steps``. With
    ``held`` the pooled out-of-fold loss is checked every ``validation_interval`` steps; all members keep their
    weights and noise offsets of the best check, and training ends after ``patience`` checks without improvement.

    Returns:
        Optimiser steps summed over members, the last minibatch NLL and KL per datum of the last member, and the best
        pooled held-out loss (None without ``held``).
    """
    cfg = surrogate.config
    n_members, n = len(surrogate.members), data.x.shape[0]
    everything = torch.arange(n)
    is_held = torch.zeros(n_members, n, dtype=torch.bool)
    if held is not None:
        for e, rows in enumerate(held):
            is_held[e, torch.as_tensor(rows)] = True
    train = [everything[~is_held[e]] for e in range(n_members)]
    length = max(len(rows) for rows in train)
    n_fit = float(np.mean([len(rows) for rows in train]))
    kl_weight = effective_kl_weight(cfg, n_fit)
    batch = min(cfg.batch_size, length)
    steps_per_epoch = math.ceil(length / batch)
    if warm_start is None:
        for net in surrogate.members:
            net.reset_parameters(generator)
        max_steps = min(max(cfg.epochs * steps_per_epoch, cfg.min_steps), cfg.max_steps)
    else:
        start_from(surrogate, warm_start, generator)
        max_steps = cfg.warm_start_steps
    stacked = StackedMembers(surrogate.members)
    optimiser = torch.optim.Adam([*stacked.parameters(), surrogate.raw_noise], lr=cfg.learning_rate, fused=True)
    cosine = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max_steps, eta_min=0.01 * cfg.learning_rate)
        if cfg.learning_rate_schedule == "cosine"
        else None
    )
    best_loss, stale, best_state = math.inf, 0, None
    total_held = float((data.mask & is_held[:, :, None]).sum())
    nll, step = torch.zeros(n_members), 0
    for step in range(1, max_steps + 1):
        position = ((step - 1) % steps_per_epoch) * batch
        if position == 0:
            orders = _member_orders(train, length, generator)
        rows = orders[:, position : position + batch]  # E x b
        std = stacked.spreads()  # E x P, for the data term and the KL gradient alike
        raw = stacked.forward(data.x[rows], generator, std)  # E x b x heads
        noise = surrogate.noise_scale(raw, surrogate.raw_noise.unsqueeze(1))  # E x b x m
        nll = masked_nll(
            raw[..., : surrogate.n_outputs],
            noise,
            data.y[rows],
            data.mask[rows],
            cfg.likelihood,
            cfg.nll_beta,
            data.censored[rows],
        )  # E
        optimiser.zero_grad()
        nll.sum().backward()
        stacked.add_kl_gradient(kl_weight / n_fit, std)  # the loss is nll + kl_weight * KL / n
        optimiser.step()
        if cosine is not None:
            cosine.step()
        if held is not None and total_held and (step % cfg.validation_interval == 0 or step == max_steps):
            pooled = float(held_out_losses(surrogate, stacked, data, is_held).sum()) / total_held
            if pooled < best_loss:
                best_loss, stale = pooled, 0
                best_state = (stacked.mu.detach().clone(), stacked.rho.detach().clone(), surrogate.raw_noise.clone())
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    if best_state is not None:
        with torch.no_grad():
            stacked.mu.copy_(best_state[0])
            stacked.rho.copy_(best_state[1])
            surrogate.raw_noise.copy_(best_state[2])
    for member in range(n_members):
        stacked.write_back(member)
    with torch.no_grad():
        kl = stacked.kl_divergence()[-1] / n_fit
    return step * n_members, float(nll[-1].detach()), float(kl), None if best_state is None else best_loss


def start_from(surrogate: BNNSurrogate, previous: BNNSurrogate, generator: torch.Generator) -> None:
    """Set the members to ``previous``'s, shrunk towards a fresh initialisation by ``warm_start_keep``.

    With ``warm_start_keep`` below 1 each weight mean starts at ``keep * previous + (1 - keep) * fresh`` and every
    posterior spread at its initial value (shrink and perturb, Ash & Adams, NeurIPS 2020): the continued model keeps
    what it learned but regains some of a fresh model's freedom to extrapolate differently. At 1 the members are
    ``previous``'s as they are.
    """
    keep = surrogate.config.warm_start_keep
    if keep == 1:
        surrogate.members.load_state_dict(previous.members.state_dict())
        return
    for net, old in zip(surrogate.members, previous.members, strict=True):
        net.reset_parameters(generator)
        with torch.no_grad():
            for layer, old_layer in zip(net.layers, old.layers, strict=True):
                layer.weight_mu.mul_(1 - keep).add_(keep * old_layer.weight_mu)
                layer.bias_mu.mul_(1 - keep).add_(keep * old_layer.bias_mu)


def fit_noise_level(surrogate: BNNSurrogate, data: FitData, held: list[np.ndarray]) -> tuple[float, ...]:
    """Shift each output's noise offset (all members) to maximise the out-of-fold likelihood; returns the shifts.

    Each member predicts its held-out rows with its weights at their posterior means; the shift (one of
    ``NOISE_SHIFTS``) minimises the pooled NLL of those predictions under the model's likelihood, censored terms
    included. An output without held-out values keeps its offset.
    """
    stacked = StackedMembers(surrogate.members)
    shifts = []
    with torch.no_grad():
        raw = stacked.forward_mean(data.x)  # E x n x heads
        mean = raw[..., : surrogate.n_outputs]
        for j in range(surrogate.n_outputs):
            losses = []
            for shift in NOISE_SHIFTS:
                offset = surrogate.raw_noise.detach().clone()
                offset[:, j] += shift
                noise = surrogate.noise_scale(raw, offset.unsqueeze(1))
                total = 0.0
                for e, rows in enumerate(held):
                    mask = data.mask[rows][:, j : j + 1]
                    nll = masked_nll(
                        mean[e, rows, j : j + 1],
                        noise[e, rows, j : j + 1],
                        data.y[rows, j : j + 1],
                        mask,
                        surrogate.config.likelihood,
                        censored=data.censored[rows, j : j + 1],
                    )
                    total += float(nll) * float(mask.sum())
                losses.append(total)
            best = NOISE_SHIFTS[int(np.argmin(losses))] if any(losses) else 0.0
            surrogate.raw_noise[:, j] += best
            shifts.append(best)
    return tuple(shifts)

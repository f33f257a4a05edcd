"""Recalibration of a cross-fitted ensemble on its out-of-fold predictions.

Each member predicts the fold it did not train on (``out_of_fold_draws``); the errors of those draws fit per-level
spread factors and a spread offset (``recalibrate``, ``calibration.fit_output``), and a last split-conformal factor
makes the widest (95%) interval, with the draws mapped as prediction maps them, cover its finite-sample share of the
out-of-fold values (``match_widest_level``). The factors widen or narrow predictive draws only; function draws, which
acquisition uses, keep the ensemble's own spread.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from sbin_loop.model.bnn import VariationalMLP
from sbin_loop.model.calibration import (
    CALIBRATION_DRAWS,
    CALIBRATION_LEVELS,
    MIN_CALIBRATION_ROWS,
    HeldOutErrors,
    conformal_scale,
    fit_output,
    tail_calibrated,
)
from sbin_loop.model.likelihood import predictive_noise

if TYPE_CHECKING:
    from sbin_loop.model.surrogate import BNNSurrogate
    from sbin_loop.model.training import FitData


def member_predictive_draws(surrogate: BNNSurrogate, member: int, x: Tensor, n_draws: int, seed: int) -> Tensor:
    """``S x n x m`` uncalibrated predictive draws of one member for standardised inputs ``x``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight_sets = surrogate.members[member].draw_weight_sets(n_draws, generator)
        raw = VariationalMLP.evaluate_weight_sets(x, weight_sets)
        noise = surrogate.noise_scale(raw, surrogate.raw_noise.detach()[member])
        mean = raw[..., : surrogate.n_outputs]
        cfg = surrogate.config
        return mean + noise * predictive_noise(mean.shape, cfg.likelihood, surrogate.transforms, generator)


def held_out_errors(surrogate: BNNSurrogate, draws: Tensor, y: Tensor, mask: Tensor) -> list[HeldOutErrors]:
    """Per output, how far observed held-out targets fall from the median of a model's uncalibrated draws.

    Args:
        surrogate: The model (for its support).
        draws: ``S x n x m`` predictive draws (standardised) of rows that did not train them.
        y: ``n x m`` the rows' standardised targets (any value where not observed).
        mask: ``n x m``, True where a target is observed.
    """
    centre = draws.median(dim=0).values.numpy()
    low, high = (end.numpy() for end in surrogate.standardised_support())
    levels = np.asarray(CALIBRATION_LEVELS)
    probabilities = np.concatenate([(1 - levels) / 2, (1 + levels) / 2])
    quantiles = np.quantile(draws.numpy(), probabilities, axis=0) - centre  # 2L x n x m
    errors = []
    for j in range(surrogate.n_outputs):
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


def out_of_fold_draws(surrogate: BNNSurrogate, data: FitData, held: list[np.ndarray], seed: int) -> list[Tensor]:
    """Per member, ``CALIBRATION_DRAWS x n_e x m`` uncalibrated predictive draws of its own held-out fold."""
    return [
        member_predictive_draws(surrogate, member, data.x[rows], CALIBRATION_DRAWS, seed + member)
        for member, rows in enumerate(held)
    ]


def out_of_fold_errors(
    surrogate: BNNSurrogate, data: FitData, held: list[np.ndarray], draws: list[Tensor]
) -> list[list[HeldOutErrors]]:
    """Per member, per output, the held-out errors of the member's predictive ``draws`` on its own held-out fold."""
    return [
        held_out_errors(surrogate, member_draws, data.y[rows], data.mask[rows])
        for member_draws, rows in zip(draws, held, strict=True)
    ]


def calibrated_outputs(
    surrogate: BNNSurrogate, errors: list[list[HeldOutErrors]]
) -> Iterator[tuple[int, HeldOutErrors]]:
    """Each output with at least ``MIN_CALIBRATION_ROWS`` held-out errors over all members, and those errors pooled."""
    for j in range(surrogate.n_outputs):
        pooled = HeldOutErrors.pooled([per_output[j] for per_output in errors])
        if len(pooled.offset) >= MIN_CALIBRATION_ROWS:
            yield j, pooled


def recalibrate(surrogate: BNNSurrogate, errors: list[list[HeldOutErrors]]) -> int:
    """Fit each output's spread factors on pooled held-out errors (``calibration.fit_output``) and store them.

    The factors (and the spread offset) scale predictive draws only (``tail_factor``, ``spread_offset``); function
    draws, which acquisition uses, keep the ensemble's own spread. An output with fewer than ``MIN_CALIBRATION_ROWS``
    held-out errors keeps factors of 1.

    Returns:
        The number of held-out predictions (all outputs) the factors were fitted on.
    """
    used = 0
    for j, pooled in calibrated_outputs(surrogate, errors):
        overall, tail, gamma = fit_output(pooled, with_offset=True)
        surrogate.tail_factor[j] = torch.as_tensor(tail * overall, dtype=torch.float32)
        surrogate.spread_offset[j] = gamma
        used += len(pooled.offset)
    return used


def match_widest_level(
    surrogate: BNNSurrogate, data: FitData, held: list[np.ndarray], draws: list[Tensor]
) -> tuple[float, ...]:
    """Scale each output's factors so that its widest interval, as prediction maps draws, covers its conformal share.

    ``recalibrate`` fits the factors on interval bounds computed from the draws; predictive draws are then mapped
    draw by draw (``tail_calibrated``: the factor at each draw's rank, a monotone rearrangement), which need not give
    exactly the fitted interval where the factors fall steeply towards the tails. This maps the same out-of-fold draws
    as prediction does and scales all of an output's factors by the split-conformal factor of its widest level
    (``calibration.conformal_scale``), so that the interval sbin reports has its nominal coverage on those rows.

    Returns:
        Per output, the factor applied (1 for an output with fewer than ``MIN_CALIBRATION_ROWS`` held-out values,
        which ``recalibrate`` leaves alone too).
    """
    mapped = [tail_calibrated(member_draws, surrogate.tail_factor, surrogate.spread_offset) for member_draws in draws]
    errors = out_of_fold_errors(surrogate, data, held, mapped)
    scales = [1.0] * surrogate.n_outputs
    for j, pooled in calibrated_outputs(surrogate, errors):
        scales[j] = conformal_scale(pooled, CALIBRATION_LEVELS[-1])
        if math.isfinite(scales[j]) and scales[j] > 0:
            surrogate.tail_factor[j] *= scales[j]
    return tuple(scales)

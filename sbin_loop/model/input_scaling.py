"""Input scaling of the BNN: per-descriptor normal scores from training quantiles, with linear tails.

Composition descriptors are heavy-tailed and lumpy (a mean atomic mass, a fraction of the rows with one element, a
count of valence electrons), and standardising them leaves most rows bunched in a narrow band with a few far out.
Mapping each descriptor through its training quantiles onto normal scores (``ModelConfig.quantile_rows``) spreads
the rows evenly, as tabular networks prefer. On SuperCon Tc it lowered the ensemble's MAE and CRPS from about 200
training rows on, and raised them below (``ModelConfig.quantile_rows`` gives the figures).

The map is monotone and continuous outside the training range: beyond the outermost knot it continues linearly with
the descriptor's training standard deviation as unit, so a candidate further out than every training row stays
further out (a network's uncertainty grows with that distance) instead of being clipped onto the edge. Equal
training values (a descriptor that is 0 on most rows) map to the middle of their run of equal knots, as
scikit-learn's ``QuantileTransformer`` maps ties.
"""

from __future__ import annotations

import torch
from torch import Tensor

N_KNOTS = 256
"""Quantile knots per descriptor, at the levels ``(k + 1/2) / N_KNOTS``: the outermost map to about ±2.9."""


def knot_levels(n_knots: int = N_KNOTS) -> Tensor:
    """The ``K`` quantile levels of the knots, ``(k + 1/2) / K``."""
    return (torch.arange(n_knots, dtype=torch.float64) + 0.5) / n_knots


def fit_knots(x_fit: Tensor, n_knots: int = N_KNOTS) -> Tensor:
    """``K x d`` knots: each descriptor's quantiles over its measured (non-NaN) training values.

    A descriptor with no measured value gets knots at 0 (every value then maps to its tail, in standard deviations).

    Args:
        x_fit: ``n x d`` training descriptors, NaN where missing.
        n_knots: ``K``.
    """
    knots = torch.nanquantile(x_fit.to(torch.float64), knot_levels(n_knots), dim=0)  # K x d
    return torch.nan_to_num(knots, nan=0.0).to(x_fit.dtype)


def fit_standardiser(x_fit: Tensor) -> tuple[Tensor, Tensor]:
    """Per-descriptor mean and standard deviation (each ``d``) over the training rows' measured (non-NaN) values.

    A descriptor with no measured value gets mean 0; one with fewer than two, or constant, gets scale 1.
    """
    measured = ~torch.isnan(x_fit)
    count = measured.sum(dim=0)
    mean = torch.nansum(x_fit, dim=0) / count.clamp(min=1)
    deviation = torch.where(measured, x_fit - mean, torch.zeros_like(x_fit))
    std = (deviation.square().sum(dim=0) / (count - 1).clamp(min=1)).sqrt()
    return mean, torch.where((count > 1) & (std > 1e-8), std, torch.ones_like(std))


def fit_scaler(
    x_fit: Tensor, quantile: bool, own_scale: Tensor, n_knots: int = N_KNOTS
) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, scale (each ``d``) and knots (``K x d``, zeros unless ``quantile``) of ``n x d`` training descriptors.

    Standardised (not ``quantile``), the descriptors marked by ``own_scale`` (atomic fractions of elements, already on
    ``[0, 1]``) keep their own scale: mean 0, unit 1. An element that one of a few dozen training rows holds has a
    tiny standard deviation, which would put every candidate with it many units out and widen its interval; on the
    fixed SuperCon holdout standardised fractions widened the mean 95% interval at 30-120 training rows, unscaled ones
    kept it within 1-3 K of no fractions (``benchmarks/input_scaling_probe.py --compare fractions``). Quantile-scaled,
    they are mapped like every descriptor, with their standard deviation as the unit of the tails.
    """
    mean, std = fit_standardiser(x_fit)
    if quantile:
        return mean, std, fit_knots(x_fit, n_knots)
    mean, std = torch.where(own_scale, 0.0, mean), torch.where(own_scale, 1.0, std)
    return mean, std, torch.zeros(n_knots, x_fit.shape[1], dtype=x_fit.dtype)


def scaled_inputs(x: Tensor, mean: Tensor, std: Tensor, knots: Tensor | None, clip: float) -> Tensor:
    """``n x d`` network inputs: standardised (``knots`` None) or normal scores, clipped to ``±clip``; NaN becomes 0.

    0 is the training mean of a standardised descriptor and the training median of a quantile-scaled one.
    """
    scaled = (x - mean) / std if knots is None else normal_scores(x, knots, std)
    return torch.nan_to_num(scaled.clamp(-clip, clip), nan=0.0)


def normal_scores(x: Tensor, knots: Tensor, scale: Tensor) -> Tensor:
    """Map descriptors onto normal scores through their training knots, ``ROWS_PER_BLOCK`` rows at a time.

    Args:
        x: ``n x d`` descriptors (NaN passes through).
        knots: ``K x d`` from ``fit_knots``.
        scale: ``d`` training standard deviations: the unit of the linear tails beyond the outermost knots.

    Returns:
        ``n x d`` scores: inside the knots the normal quantile of the interpolated level, outside them the
        outermost knot's score plus the distance in standard deviations.
    """
    sorted_knots = knots.T.contiguous().to(torch.float64)  # d x K
    n_knots = sorted_knots.shape[1]
    # Tails start from the score of the outermost knot (the middle of its run of equal knots).
    first_run = (sorted_knots == sorted_knots[:, :1]).sum(dim=1, keepdim=True)  # d x 1
    last_run = (sorted_knots == sorted_knots[:, -1:]).sum(dim=1, keepdim=True)
    tails = (
        _score((first_run - 1) / 2.0, n_knots),
        _score((2 * n_knots - last_run - 1) / 2.0, n_knots),
        scale.to(torch.float64)[:, None],
    )
    return torch.cat([_block_scores(block, sorted_knots, *tails) for block in x.split(ROWS_PER_BLOCK)])


ROWS_PER_BLOCK = 8192
"""Rows mapped at once: a block's float64 intermediates stay at a few MB per hundred descriptors, whatever the pool."""


def _score(position: Tensor, n_knots: int) -> Tensor:
    """Normal score of a (fractional) knot index."""
    return torch.distributions.Normal(0.0, 1.0).icdf((position + 0.5) / n_knots)


def _block_scores(x: Tensor, sorted_knots: Tensor, low: Tensor, high: Tensor, unit: Tensor) -> Tensor:
    """``normal_scores`` of an ``n x d`` block; tails start at scores ``low``, ``high`` and run in ``unit`` (d x 1)."""
    n_knots = sorted_knots.shape[1]
    missing = torch.isnan(x.T)  # d x n
    values = torch.where(missing, 0.0, x.T.to(torch.float64)).contiguous()  # d x n
    below = torch.searchsorted(sorted_knots, values, right=False)  # d x n: knots < value
    not_above = torch.searchsorted(sorted_knots, values, right=True)  # d x n: knots <= value
    # Between two distinct knots: linear in the knot index; on a run of equal knots: the middle of the run.
    upper = below.clamp(1, n_knots - 1)
    left, right = sorted_knots.gather(1, upper - 1), sorted_knots.gather(1, upper)
    step = (right - left).clamp(min=torch.finfo(torch.float64).tiny)
    between = (upper - 1) + ((values - left) / step).clamp(0.0, 1.0)
    scores = _score(torch.where(not_above > below, (below + not_above - 1) / 2.0, between), n_knots)
    first, last = sorted_knots[:, :1], sorted_knots[:, -1:]
    scores = torch.where(values < first, low + (values - first) / unit, scores)
    scores = torch.where(values > last, high + (values - last) / unit, scores)
    return torch.where(missing, torch.nan, scores).T.to(x.dtype)

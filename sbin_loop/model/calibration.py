"""Recalibration of predictive spreads on held-out errors: per-level factors, the spread offset, the tail map.

A model's central intervals are checked against errors on rows it did not train on (a validation split, or
out-of-fold predictions of models trained without each fold). ``fit_output`` finds, per output, the factors under
which those intervals reach their nominal coverage; ``tail_calibrated`` applies them to predictive draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import isotonic_regression
from torch import Tensor

CALIBRATION_DRAWS = 256
"""Predictive draws per validation row used to fit the recalibration factor."""

CALIBRATION_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""Central-interval probabilities whose validation coverage the recalibration factor matches (0.05 ... 0.95)."""

CALIBRATION_GRID = tuple(float(v) for v in np.exp(np.linspace(np.log(1 / 16), np.log(16.0), 321)))
"""Candidate recalibration factors (log-spaced, 1/16 ... 16, steps of 1.75%). Out-of-fold errors of a model trained
on 30-120 SuperCon rows needed more than 4; the central levels of one trained on 3,000 needed less than 0.25 (the
Laplace noise puts too much of its draws' spread near the median), and a grid starting at 0.25 left its central 10%
interval covering 16% of new rows."""

SPREAD_OFFSETS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Candidate offsets ``gamma`` of out-of-fold recalibration, in units of the median held-out spread (see
``_recalibrate``): 0 scales every row's interval by the same factors; larger offsets even the widths out."""


def finite_sample_coverage(levels: np.ndarray, n_held_out: int) -> np.ndarray:
    """Coverage of ``n_held_out`` held-out errors that makes a central interval cover a new point with ``levels``.

    An interval scaled to cover ``k`` of ``n`` exchangeable held-out errors covers a new error with probability at
    least ``k / (n + 1)`` (split conformal prediction, Vovk et al. 2005; Lei et al., JASA 2018), so ``levels`` needs
    ``k = ceil(level (n + 1))``, at most all ``n``. Matching ``level`` itself leaves small held-out sets short: 30
    errors matched at 95% cover 28 or 29 of them, about 92% of new points in expectation.
    """
    return conformal_count(levels, n_held_out) / n_held_out


def conformal_count(levels: np.ndarray, n_held_out: int) -> np.ndarray:
    """``ceil(level (n + 1))``, at most ``n``: the held-out errors of ``n`` an interval at ``levels`` must cover."""
    return np.minimum(np.ceil(levels * (n_held_out + 1) - 1e-9), n_held_out)


def fewest_rows_below_all(level: float) -> int:
    """The fewest held-out errors of which an interval at ``level`` must cover fewer than all (``conformal_count``)."""
    n_held_out = 2
    while conformal_count(np.asarray(level), n_held_out) >= n_held_out:
        n_held_out += 1
    return n_held_out


MIN_CALIBRATION_ROWS = fewest_rows_below_all(CALIBRATION_LEVELS[-1])
"""Fewest held-out predictions of an output that recalibrate it (39); with fewer its spread factors stay 1 and its
spread is the one the held-out noise level gives (``training.fit_noise_level``).

Below 39 errors the split-conformal 95% factor must cover every one of them, so it is set by the single largest
out-of-fold error, and the per-level factors of the central levels rest on a handful of errors each. On SuperCon tuning
rows (20 training sets a size, permutation seeds 5000+, apart from the benchmarks' rows), recalibrating 20 and 30 rows
widened the mean 95% interval from 75.8 to 83.8 K and from 73.2 to 90.2 K, and raised the CRPS from 11.78 to 12.25 K
and from 10.84 to 11.69 K, at coverage 0.958 against 0.968 and 0.977 against 0.986; at 40 rows it narrowed the
interval (65.1 against 66.5 K, coverage 0.962 against 0.977)."""


SPREAD_EPSILON = 1e-6
"""Smallest row spread (standardised units) that ``spread_offset`` divides by."""


def row_spread(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``n``: half-width of each row's central 50% interval from ``L x n`` quantile offsets (``CALIBRATION_LEVELS``)."""
    half = CALIBRATION_LEVELS.index(0.5)
    return np.maximum((upper[half] - lower[half]) / 2, SPREAD_EPSILON)


def clamped(bound: np.ndarray, floor: np.ndarray | float, ceiling: np.ndarray | float) -> np.ndarray:
    """Interval bounds (offsets from the median) as predictive draws clamped to the support give them.

    Both ends land inside ``[floor, ceiling]``: a predictive distribution wholly below the support's lower bound is a
    point mass at the bound, whose interval covers a measurement at the bound (Tc = 0 K predicted at 0 K).
    """
    return np.minimum(np.maximum(bound, floor), ceiling)


def spread_factors(
    offset: np.ndarray, lower: np.ndarray, upper: np.ndarray, floor: np.ndarray, ceiling: np.ndarray
) -> tuple[float, np.ndarray]:
    """One output's overall and per-level (``L``) spread factors from held-out errors (``BNNSurrogate._recalibrate``).

    Args:
        offset: ``n`` held-out errors from the median.
        lower: ``L x n`` lower interval offsets; ``upper`` the upper ones.
        upper: ``L x n``.
        floor: ``n``: how far below the median the support ends; intervals reach no further.
        ceiling: ``n``: how far above.
    """
    levels = np.asarray(CALIBRATION_LEVELS)
    grid = np.asarray(CALIBRATION_GRID)
    above_floor = [offset >= clamped(scale * lower, floor, ceiling) - 1e-6 for scale in grid]
    below_ceiling = [offset <= clamped(scale * upper, floor, ceiling) + 1e-6 for scale in grid]
    coverage = np.stack([(a & b).mean(axis=1) for a, b in zip(above_floor, below_ceiling, strict=True)])  # G x L
    overall = grid[int(np.argmin(np.abs(coverage - levels).mean(axis=1)))]
    reaching = coverage >= finite_sample_coverage(levels, len(offset)) - 1e-12  # G x L
    smallest = np.where(reaching.any(axis=0), reaching.argmax(axis=0), len(grid) - 1)
    needed = grid[smallest] / overall
    smoothed = monotone_fit(needed, weights=levels)
    smoothed[-1] = max(smoothed[-1], needed[-1])  # the widest level keeps its finite-sample coverage
    return float(overall), smoothed


def monotone_fit(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The closer (weighted least squares) of the non-decreasing and the non-increasing isotonic fits of ``values``."""
    fits = [np.ascontiguousarray(isotonic_regression(values, weights=weights, increasing=up).x) for up in (True, False)]
    return min(fits, key=lambda fit: float((weights * (fit - values) ** 2).sum()))


@dataclass(frozen=True)
class HeldOutErrors:
    """One output's errors on rows a model did not train on, in that model's standardised units.

    Attributes:
        offset: ``n``: observed target minus the median of the model's uncalibrated latent predictive draws.
        lower: ``L x n``: lower bounds of the central ``CALIBRATION_LEVELS`` intervals, minus the same median.
        upper: ``L x n``: the upper bounds, minus the median.
        floor: ``n`` (or a scalar): the support's lower bound minus the median (``-inf`` when unbounded). Predictive
            draws are clamped to the support, so a scaled interval reaches no further than this.
        ceiling: The same for the upper bound.
        mass_at_bounds: Whether the draws' mass at an end of the support is a value the model predicts there, so
            the reported interval starts at that end (``reported_ends``). False for a network beside a classifier of
            values at the bound (``floor_mass``): its held-out values all lie above the bound, its draws describe
            those, and the mixture with the classifier's mass is what gets reported; its intervals stay central.
    """

    offset: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    floor: np.ndarray | float = -np.inf
    ceiling: np.ndarray | float = np.inf
    mass_at_bounds: bool = True

    @staticmethod
    def pooled(parts: list[HeldOutErrors]) -> HeldOutErrors:
        """One output's errors from several models (one per fold) as one set; each is in its own model's units."""
        return HeldOutErrors(
            offset=np.concatenate([part.offset for part in parts]),
            lower=np.concatenate([part.lower for part in parts], axis=1),
            upper=np.concatenate([part.upper for part in parts], axis=1),
            floor=np.concatenate([np.broadcast_to(part.floor, part.offset.shape) for part in parts]),
            ceiling=np.concatenate([np.broadcast_to(part.ceiling, part.offset.shape) for part in parts]),
            mass_at_bounds=all(part.mass_at_bounds for part in parts),
        )


def fit_output(errors: HeldOutErrors, with_offset: bool) -> tuple[float, np.ndarray, float]:
    """The spread factors under which one output's central intervals reach their nominal coverage on held-out errors.

    One factor for all levels (the closest match over every level), and a further factor per central level for
    predictive draws (quantile recalibration, Kuleshov et al., ICML 2018): the smallest that covers the share of
    held-out errors ``finite_sample_coverage`` asks for, so that small held-out sets do not leave intervals short. One
    factor cannot fix the shape of a predictive distribution whose errors have heavier tails than its draws: on
    SuperCon Tc it gave 0.90 coverage at 95% while matching the middle levels. The per-level factors are smoothed by
    isotonic regression, rising (errors with heavier tails than the draws) or falling (lighter tails, e.g. Gaussian
    errors under a Laplace likelihood), whichever fits them better, each weighted by its level: the factor of level
    ``p`` rests on the ``p n`` errors inside its interval, and near the median a few errors decide it. Smoothing
    never lowers the factor of the widest level (95%, the interval sbin reports) below the one that covers its
    finite-sample share of the held-out errors.

    With ``with_offset``, each row's interval is first stretched by ``(s + gamma) / s`` (``s``: the half-width of its
    central 50% interval), for each ``gamma`` of ``SPREAD_OFFSETS`` times the median ``s``, and the ``gamma`` whose
    factors give the narrowest mean 95% interval on the held-out rows is kept (the smallest of near ties). One factor
    for every row makes the rows a model is unsure about very wide when it must cover misses on rows it was sure
    about; an offset evens the widths out where the model's own spread says little about its errors.

    Returns:
        The overall factor, the per-level factors relative to it (``L``) and ``gamma`` (0 without ``with_offset``).
    """
    spread = row_spread(errors.lower, errors.upper)  # n
    gammas = np.asarray(SPREAD_OFFSETS) * float(np.median(spread)) if with_offset else np.zeros(1)
    candidates = []
    for gamma in gammas:
        stretch = (spread + gamma) / spread  # n: widens rows of small spread more
        lower, upper = stretch * errors.lower, stretch * errors.upper
        overall, tail = spread_factors(errors.offset, lower, upper, errors.floor, errors.ceiling)
        reach = tail[-1] * overall
        width = clamped(reach * upper[-1], errors.floor, errors.ceiling) - clamped(
            reach * lower[-1], errors.floor, errors.ceiling
        )
        candidates.append((float(width.mean()), float(gamma), overall, tail))
    narrowest = min(candidate[0] for candidate in candidates)
    _, gamma, overall, tail = next(c for c in candidates if c[0] <= 1.005 * narrowest)
    return overall, tail, gamma


def conformal_scale(errors: HeldOutErrors, level: float) -> float:
    """The smallest factor on every row's central interval under which it covers its split-conformal share of errors.

    A row's interval scaled by ``c`` about the median (``[c lower, c upper]``, then clamped to the support like the
    draws) covers an error ``offset`` below the median from ``c = offset / lower`` on, and one above it from ``offset /
    upper``; a measurement at a bound of the support is covered once the interval reaches the bound, at any ``c`` if
    the median lies beyond it. The answer is the ``ceil(level (n + 1))``-th smallest of those (all ``n`` at most), so a
    new exchangeable error is covered with probability at least ``level`` (Lei et al., JASA 2018).

    Args:
        errors: One output's ``n`` held-out errors; only the widest level's bounds (``lower[-1]``, ``upper[-1]``) are
            used.
        level: The central probability of that level.
    """
    offset = errors.offset
    floor = np.broadcast_to(errors.floor, offset.shape)
    ceiling = np.broadcast_to(errors.ceiling, offset.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.abs(offset) / np.abs(np.where(offset < 0, errors.lower[-1], errors.upper[-1]))
    at_bound = ((offset <= floor + 1e-6) & (offset >= 0)) | ((offset >= ceiling - 1e-6) & (offset <= 0))
    needed = np.where((offset == 0) | at_bound, 0.0, needed)
    rank = int(conformal_count(np.asarray(level), len(offset)))
    return float(np.partition(needed, rank - 1)[rank - 1])


def tail_calibrated(
    draws: Tensor,
    tail_factor: Tensor,
    spread_offset: Tensor,
    conformal_template: Tensor | None = None,
    member_draws: list[int] | None = None,
    conformal_skew: Tensor | None = None,
) -> Tensor:
    """Scale each predictive draw's distance from the median by ``tail_factor`` at the draw's central level.

    With a ``spread_offset`` ``gamma`` each candidate's distances are first stretched by ``(s + gamma) / s``, where
    ``s`` is the half-width of the central half of its draws, as on the held-out rows the factors were fitted to.

    Falling factors could let a far draw land inside a nearer one; the scaled values are therefore handed back in the
    draws' own order (monotone rearrangement, Chernozhukov et al., Econometrica 2010), so the map keeps every draw's
    rank. With rising factors the map is monotone already and the rearrangement changes nothing.

    An output with a ``conformal_template`` (``conformal_fit.fit_conformal_shape``; its last entry above 0) is mapped
    onto that fixed shape instead: the draw at central level ``p`` lands at ``median ± (s + gamma) T(p)``, on its own
    side of the median; a draw beyond the widest level keeps its distance relative to the row's own draw at that level.
    The shape was fitted with ``s`` of one member's draws (each out-of-fold row is predicted by one member), so for an
    ensemble's draws ``s`` is the mean over members of each member's own (``member_draws``): the spread of the mixture
    also holds the members' disagreement, and with it the intervals came out wider than on the out-of-fold rows.

    Args:
        draws: ``S x n x m`` predictive draws in standardised units.
        tail_factor: ``m x L`` per-level factors.
        spread_offset: ``m`` offsets ``gamma``.
        conformal_template: ``m x L`` conformal shapes ``T``; an output whose row is all 0 uses ``tail_factor``.
        member_draws: How many consecutive draws each ensemble member gave (``splits.split_draws``); None: all
            from one model.
        conformal_skew: ``m`` ratios of a conformal shape's upper to its lower reach; None: 1 (symmetric).
    """
    n_draws = draws.shape[0]
    centre = draws.median(dim=0, keepdim=True).values
    spread = member_spread(draws, [n_draws])  # n x m
    unstretched = draws
    draws = centre + (draws - centre) * (spread + spread_offset) / spread
    rank = draws.argsort(dim=0).argsort(dim=0)  # S x n x m
    level = (2 * (rank + 0.5) / n_draws - 1).abs().numpy()
    levels = np.asarray((0.0, *CALIBRATION_LEVELS, 1.0))
    factors = np.empty_like(level)
    for j in range(draws.shape[-1]):
        table = tail_factor[j].numpy()
        factors[..., j] = np.interp(level[..., j], levels, np.concatenate([table[:1], table, table[-1:]]))
    scaled = centre + torch.as_tensor(factors) * (draws - centre)
    shaped = [] if conformal_template is None else torch.nonzero(conformal_template[:, -1] > 0).flatten().tolist()
    if shaped:
        own = member_spread(unstretched, member_draws) if member_draws else spread  # n x m
        for j in shaped:
            skew = 1.0 if conformal_skew is None else conformal_skew[j]
            offset, template = spread_offset[j], conformal_template[j]
            scaled[..., j] = conformal_shaped(
                unstretched[..., j], centre[..., j], level[..., j], own[..., j], offset, template, skew
            )
    return scaled.sort(dim=0).values.gather(0, rank)


def member_spread(draws: Tensor, member_draws: list[int]) -> Tensor:
    """``n x m``: the mean over members of the half-width of each member's central 50% interval of its draws.

    Members with fewer than 4 draws are left out (all draws are one block when none has 4: fewer draws than members
    were asked for).
    """
    blocks = [block for block in torch.split(draws, member_draws, dim=0) if block.shape[0] >= 4] or [draws]
    halves = []
    for block in blocks:
        quartiles = torch.quantile(block, torch.tensor([0.25, 0.75]), dim=0)
        halves.append((quartiles[1] - quartiles[0]) / 2)
    return torch.stack(halves).mean(dim=0).clamp(min=SPREAD_EPSILON)


def conformal_shaped(
    draws: Tensor,
    centre: Tensor,
    level: np.ndarray,
    spread: Tensor,
    gamma: Tensor,
    template: Tensor,
    skew: Tensor | float = 1.0,
) -> Tensor:
    """One output's ``S x n`` draws moved onto a conformal shape (``tail_calibrated``): ``median ± (s + gamma) T``.

    Draws above the median reach ``skew`` times as far as those below (``conformal_fit.fit_conformal_shape``).

    Args:
        draws: ``S x n`` predictive draws (standardised).
        centre: ``1 x n`` their medians.
        level: ``S x n`` each draw's central level among its row's draws.
        spread: ``n`` half-widths ``s`` of the rows' central 50% intervals.
        gamma: The spread offset.
        template: ``L`` conformal quantiles ``T`` at ``CALIBRATION_LEVELS``.
        skew: Ratio of the upper to the lower reach.
    """
    widest = CALIBRATION_LEVELS[-1]
    ends = torch.quantile(draws, torch.tensor([(1 - widest) / 2, (1 + widest) / 2]), dim=0)  # 2 x n
    side = torch.where(draws >= centre, 1.0, -1.0)
    own_reach = torch.where(side > 0, ends[1] - centre, centre - ends[0]).clamp(min=SPREAD_EPSILON)
    table = template.numpy().astype(np.float64)
    levels = np.asarray((0.0, *CALIBRATION_LEVELS))
    inside = np.interp(np.minimum(level, widest), levels, np.concatenate([[0.0], table]))
    reach = torch.as_tensor(inside, dtype=draws.dtype)
    beyond = torch.as_tensor(level > widest) & ((draws - centre).abs() > own_reach)
    reach = torch.where(beyond, float(table[-1]) * (draws - centre).abs() / own_reach, reach)
    reach = torch.where(side > 0, float(skew) * reach, reach)
    return centre + side * (spread + gamma) * reach

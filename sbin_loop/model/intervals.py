"""Monte Carlo summaries and intervals from posterior draws.

Given ``S`` draws per candidate (``S x n`` or ``S x n x m``, e.g. from ``BNNSurrogate.predictive_draws``), this module
gives per candidate the mean, the standard deviation and three kinds of interval, which answer different questions:

- ``mc_mean_interval``: the seed's t-interval ``mean ± t(1 - α/2, S - 1) · s / √S``. It is a confidence interval on the
  **Monte Carlo estimate of the predictive mean** (it shrinks to zero width as ``S`` grows), not a range for the
  property: it says whether ``S`` draws were enough to rank candidates by their mean.
- ``t_predictive_interval``: ``mean ± t(1 - α/2, S - 1) · s · √(1 + 1/S)``, a range for the property itself when the
  predictive distribution is close to Gaussian.
- ``quantile_interval``: the empirical ``α/2`` and ``1 - α/2`` quantiles of the draws. It makes no shape assumption, so
  it keeps the skew of back-transformed (e.g. ``log1p``) targets. Where at least ``α/2`` of the draws sit at an end of
  the support (a point mass: Tc = 0 K, "no transition"), the interval starts at that end and reaches the ``1 - α``
  quantile (``bounded_quantiles``), so that it holds its level and not ``1 - α/2``.

With a support (``bounds``, e.g. Tc >= 0) the draws already lie in it (the surrogate's censored observation model),
so the mean, median and quantile interval do too; the two t-based intervals, which assume a symmetric shape, are
intersected with the support, and a draw outside it is refused as a model error.

The campaign loop reports the quantile interval as the range of a candidate's property (its coverage is what
``benchmarks/model_accuracy.py`` measures), and the Monte Carlo mean interval alongside, to show the sampling error of
the mean that ranks candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel


@dataclass(frozen=True)
class IntervalSummary:
    """Per-candidate Monte Carlo summary; every array has the draws' shape without the leading ``S``.

    Attributes:
        level: Central probability of the intervals (e.g. 0.95).
        n_draws: ``S``.
        mean: Monte Carlo mean.
        std: Sample standard deviation (``ddof=1``).
        median: Empirical median.
        mc_mean_interval: ``(lower, upper)`` t-interval on the Monte Carlo mean.
        t_predictive_interval: ``(lower, upper)`` t-based predictive interval.
        quantile_interval: ``(lower, upper)`` empirical quantile interval.
    """

    level: float
    n_draws: int
    mean: np.ndarray
    std: np.ndarray
    median: np.ndarray
    mc_mean_interval: tuple[np.ndarray, np.ndarray]
    t_predictive_interval: tuple[np.ndarray, np.ndarray]
    quantile_interval: tuple[np.ndarray, np.ndarray]


def summarise_draws(
    draws: np.ndarray, level: float = 0.95, bounds: tuple[float | None, float | None] | None = None
) -> IntervalSummary:
    """Mean, spread and intervals of Monte Carlo draws.

    Args:
        draws: ``S x ...`` array of draws (``S >= 2``), e.g. ``S x n x m`` predictive draws.
        level: Central probability of every interval, in ``(0, 1)``.
        bounds: The quantity's support ``(low, high)`` (None for an open end): every draw must lie in it, and the
            t-based intervals are intersected with it.

    Raises:
        ValueError: If fewer than two draws are given, the level is outside ``(0, 1)``, a draw is not finite or a
            draw lies outside ``bounds``.
    """
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim < 1 or draws.shape[0] < 2:
        raise ValueError("at least two draws are needed for a Monte Carlo interval")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not np.isfinite(draws).all():
        raise ValueError("draws contain NaN or infinite values")
    low, high = support_ends(bounds)
    if (draws < low).any() or (draws > high).any():
        raise ValueError(f"draws fall outside the support [{low}, {high}]")
    n_draws = draws.shape[0]
    mean = draws.mean(axis=0)
    std = draws.std(axis=0, ddof=1)
    from scipy import stats  # imported here: campaign documents import this module, and scipy.stats takes a second

    t_quantile = stats.t.ppf(0.5 + level / 2, df=n_draws - 1)
    standard_error = std / np.sqrt(n_draws)
    predictive_half = t_quantile * std * np.sqrt(1 + 1 / n_draws)
    median = np.median(draws, axis=0)
    lower, upper = (end[0] for end in bounded_quantiles(draws, np.asarray([level]), (low, high)))
    return IntervalSummary(
        level=level,
        n_draws=n_draws,
        mean=mean,
        std=std,
        median=median,
        mc_mean_interval=(
            np.clip(mean - t_quantile * standard_error, low, high),
            np.clip(mean + t_quantile * standard_error, low, high),
        ),
        t_predictive_interval=(np.clip(mean - predictive_half, low, high), np.clip(mean + predictive_half, low, high)),
        quantile_interval=(lower, upper),
    )


def support_ends(bounds: tuple[float | None, float | None] | None) -> tuple[float, float]:
    """``(low, high)`` of a support given as ``bounds`` (None, or None for an open end), infinite where open."""
    low, high = bounds or (None, None)
    return -np.inf if low is None else low, np.inf if high is None else high


BOUND_TOLERANCE = 1e-6
"""Relative distance from an end of the support within which a draw counts as at the end: draws are float32."""


def mass_at(draws: np.ndarray, end: float, side: float) -> np.ndarray:
    """The share of ``S x ...`` draws at ``end`` of the support (``side`` 1 for the lower end, -1 for the upper)."""
    if not np.isfinite(end):
        return np.zeros(draws.shape[1:])
    return ((draws - end) * side <= BOUND_TOLERANCE * max(1.0, abs(end))).mean(axis=0)


def bounded_quantiles(
    draws: np.ndarray, levels: np.ndarray, bounds: tuple[float, float] = (-np.inf, np.inf)
) -> tuple[np.ndarray, np.ndarray]:
    """Per level, the quantile interval of ``S x ...`` draws, started at an end of the support that holds a point mass.

    A central interval takes ``(1 - level) / 2`` from each tail. Where at least that share of the draws sits at the
    lower end of the support, its lower quantile is the end itself and the interval ``[low, q(0.5 + level / 2)]``
    holds ``0.5 + level / 2`` of the predictive (0.975 at 95%), not its level. The interval reported there is
    ``[low, q(level)]``, which holds the level (for a predictive with a mass at 0 K, 0.95 of it at 95%); likewise
    ``[q(1 - level), high]`` at the upper end, and the whole support where both ends hold such a mass. Elsewhere the
    interval is the central one.

    Why: with a hurdle at 0 K (``sbin_loop.model.floor_mass``) most Tc predictions put some mass at 0 K, and central
    intervals covered 0.979 of held-out Tc values at 95% (``benchmarks/model_accuracy.py``), wider than they need
    to be. ``conformal_fit.reported_scale`` calibrates the same interval.

    Args:
        draws: ``S x ...`` draws inside ``bounds``.
        levels: ``L`` probabilities in ``(0, 1)``.
        bounds: ``(low, high)``, infinite for an open end.

    Returns:
        ``(lower, upper)``, each ``L x ...`` (the draws' shape without ``S``).
    """
    levels = np.asarray(levels, dtype=np.float64)
    tails = (1 - levels) / 2
    probabilities = np.concatenate([tails, 1 - tails, 1 - levels, levels])
    central_low, central_high, tail_low, tail_high = np.split(np.quantile(draws, probabilities, axis=0), 4)
    low, high = bounds
    shape = (-1,) + (1,) * (draws.ndim - 1)
    at_low = mass_at(draws, low, 1.0) >= tails.reshape(shape) - 1e-12  # L x ...
    at_high = mass_at(draws, high, -1.0) >= tails.reshape(shape) - 1e-12
    return ends_at_bounds((central_low, central_high), (tail_low, tail_high), at_low, at_high, bounds)


def ends_at_bounds(
    central: tuple[np.ndarray, np.ndarray],
    inner: tuple[np.ndarray, np.ndarray],
    at_low: np.ndarray,
    at_high: np.ndarray,
    bounds: tuple[np.ndarray | float, np.ndarray | float],
) -> tuple[np.ndarray, np.ndarray]:
    """The rule of ``bounded_quantiles``, given each row's ends at level ``p``.

    Args:
        central: ``(q((1 - p) / 2), q((1 + p) / 2))``.
        inner: ``(q(1 - p), q(p))``.
        at_low: Where the lower end of the support holds a mass of at least ``(1 - p) / 2``.
        at_high: The same at the upper end.
        bounds: The support's ends. ``conformal_fit.reported_ends`` passes held-out rows' offsets from their medians.
    """
    low, high = bounds
    lower = np.where(at_low, low, np.where(at_high, inner[0], central[0]))
    upper = np.where(at_high, high, np.where(at_low, inner[1], central[1]))
    return lower, upper


class Interval(BaseModel):
    """One candidate's summary for one quantity, as stored in campaign documents.

    ``lower``/``upper`` is the quantile interval (the one the loop reports and plots), ``t_lower``/``t_upper`` the
    t-based predictive interval and ``mc_mean_lower``/``mc_mean_upper`` the interval on the Monte Carlo mean. For
    skewed predictive distributions (``log1p`` targets) the mean can lie outside the quantile interval; the median
    never does, and is the point prediction plots centre on.
    """

    mean: float
    median: float
    std: float
    lower: float
    upper: float
    t_lower: float
    t_upper: float
    mc_mean_lower: float
    mc_mean_upper: float
    n_draws: int
    level: float

    @property
    def width(self) -> float:
        """Width of the quantile interval."""
        return self.upper - self.lower


def candidate_intervals(
    draws: np.ndarray, level: float = 0.95, bounds: tuple[float | None, float | None] | None = None
) -> list[Interval]:
    """One ``Interval`` per column of ``S x n`` draws of one quantity in its support ``bounds``."""
    summary = summarise_draws(draws, level, bounds)
    if summary.mean.ndim != 1:
        raise ValueError(f"expected S x n draws of one quantity, got shape {np.shape(draws)}")
    return [
        Interval(
            mean=summary.mean[j],
            median=summary.median[j],
            std=summary.std[j],
            lower=summary.quantile_interval[0][j],
            upper=summary.quantile_interval[1][j],
            t_lower=summary.t_predictive_interval[0][j],
            t_upper=summary.t_predictive_interval[1][j],
            mc_mean_lower=summary.mc_mean_interval[0][j],
            mc_mean_upper=summary.mc_mean_interval[1][j],
            n_draws=summary.n_draws,
            level=level,
        )
        for j in range(summary.mean.shape[0])
    ]

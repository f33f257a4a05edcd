"""Monte Carlo intervals from posterior predictive draws.

Three intervals are reported per candidate, because they answer different questions:

- ``lower``/``upper``: the central empirical-quantile interval of the predictive draws. This is where a new
  measurement is expected to fall with the stated probability; it is the interval the campaign loop stores, plots and
  uses for the "mean interval width" summary, because it needs no normality assumption and stays correct for skewed
  (log1p-modelled) targets.
- ``t_lower``/``t_upper``: a t-based predictive interval ``mean ± t(α/2, n−1) · s · sqrt(1 + 1/n)``, the normal-theory
  counterpart of the quantile interval.
- ``mc_mean_lower``/``mc_mean_upper``: the seed's ``mean ± t(α/2, n−1) · s / sqrt(n)``. It is an interval on the Monte
  Carlo estimate of the posterior mean (it shrinks as draws are added), not on the property itself.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel
from scipy import stats


class Interval(BaseModel):
    """Summary of the predictive draws of one quantity for one candidate."""

    mean: float
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


def summarise_draws(draws: np.ndarray, level: float = 0.95) -> list[Interval]:
    """Intervals for each column of a draws matrix.

    Args:
        draws: ``S x n`` predictive draws (``S >= 2``) for ``n`` candidates of one quantity.
        level: Central probability of every interval.

    Returns:
        One ``Interval`` per candidate.
    """
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or draws.shape[0] < 2:
        raise ValueError(f"draws must be S x n with S >= 2, got shape {draws.shape}")
    n_draws = draws.shape[0]
    alpha = 1.0 - level
    mean = draws.mean(axis=0)
    std = draws.std(axis=0, ddof=1)
    lower, upper = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    t = stats.t.ppf(1 - alpha / 2, df=n_draws - 1)
    predictive_half = t * std * np.sqrt(1 + 1 / n_draws)
    mc_half = t * std / np.sqrt(n_draws)
    return [
        Interval(
            mean=mean[j],
            std=std[j],
            lower=lower[j],
            upper=upper[j],
            t_lower=mean[j] - predictive_half[j],
            t_upper=mean[j] + predictive_half[j],
            mc_mean_lower=mean[j] - mc_half[j],
            mc_mean_upper=mean[j] + mc_half[j],
            n_draws=n_draws,
            level=level,
        )
        for j in range(draws.shape[1])
    ]

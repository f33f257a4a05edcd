"""Scores of predictive distributions shared by the accuracy benchmarks: points, intervals, CRPS, NLL, calibration.

``metrics`` turns a ``Prediction`` (point predictions, and for probabilistic models central predictive quantiles,
moments, per-row CRPS and PIT) into the figures every benchmark table reports.

Two miscalibration areas: ``miscalibration_area`` compares the coverage of central intervals with their level, and
``miscalibration_area_pit`` the share of randomised PIT values within ``level / 2`` of 0.5 with the level. For a
continuous predictive they are the same number. Where a predictive has a point mass (Tc = 0 K), a central interval
with its end on the mass holds more than its level, and only the randomised PIT (the share of draws below the value
plus a uniform share of those equal to it; Czado, Gneiting and Held, Biometrics 2009) is uniform for a calibrated
model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from sbin_loop.model.intervals import bounded_quantiles, support_ends

LEVELS = np.linspace(0.01, 0.99, 99)
"""Central probabilities of the intervals scored (0.01 ... 0.99)."""

AT_95 = int(np.argmin(np.abs(LEVELS - 0.95)))
"""Index of the 95% level in ``LEVELS``."""


@dataclass
class Prediction:
    """Point predictions and, for probabilistic models, predictive quantiles and moments for test rows."""

    point: np.ndarray
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    quantiles: np.ndarray | None = None  # 2 x len(LEVELS) x n: lower bounds, then upper bounds of central intervals
    crps: np.ndarray | None = None  # n: continuous ranked probability score of each test row (set with the targets)
    pit: np.ndarray | None = None  # n: (randomised) probability integral transform of each test row


def gaussian_prediction(mean: np.ndarray, std: np.ndarray, y: np.ndarray) -> Prediction:
    """A Gaussian predictive distribution per test row; its CRPS against ``y`` in closed form."""
    z = stats.norm.ppf(0.5 + LEVELS / 2)
    quantiles = np.stack([mean - z[:, None] * std, mean + z[:, None] * std])
    u = (y - mean) / std
    crps = std * (u * (2 * stats.norm.cdf(u) - 1) + 2 * stats.norm.pdf(u) - 1 / np.sqrt(np.pi))
    return Prediction(mean, mean, std, quantiles, crps, stats.norm.cdf(u))


def draws_prediction(
    draws: np.ndarray, y: np.ndarray, bounds: tuple[float | None, float | None] | None = None
) -> Prediction:
    """The predictive distribution of ``S x n`` draws; CRPS ``E|X - y| - E|X - X'| / 2`` of the empirical draws.

    CRPS assumes no shape (the Gaussian NLL beside it does), so it scores heavy-tailed (Laplace) draws fairly.

    Args:
        draws: ``S x n`` predictive draws.
        y: ``n`` measured values.
        bounds: The support of sbin's draws: its intervals are then the ones sbin reports
            (``intervals.bounded_quantiles``: started at an end of the support that holds a point mass). None: central
            quantile intervals, as the references report theirs.
    """
    if bounds is None:
        probabilities = np.concatenate([0.5 - LEVELS / 2, 0.5 + LEVELS / 2])
        quantiles = np.quantile(draws, probabilities, axis=0).reshape(2, len(LEVELS), -1)
    else:
        quantiles = np.stack(bounded_quantiles(draws, LEVELS, support_ends(bounds)))
    ordered = np.sort(draws, axis=0)
    n_draws = len(draws)
    weights = (2 * np.arange(1, n_draws + 1) - n_draws - 1)[:, None]  # E|X - X'| from sorted draws
    spread = 2 * (weights * ordered).sum(axis=0) / n_draws**2
    crps = np.abs(draws - y).mean(axis=0) - spread / 2
    pit = (draws < y).mean(axis=0) + np.random.default_rng(0).random(len(y)) * (draws == y).mean(axis=0)
    return Prediction(np.median(draws, axis=0), draws.mean(axis=0), draws.std(axis=0), quantiles, crps, pit)


def pit_coverage(pit: np.ndarray) -> np.ndarray:
    """Per ``LEVELS`` entry, the share of PIT values within ``level / 2`` of 0.5 (the level itself when calibrated)."""
    return (np.abs(pit - 0.5)[None, :] <= LEVELS[:, None] / 2).mean(axis=1)


def interval_score(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, alpha: float) -> np.ndarray:
    """Winkler's interval score of central ``1 - alpha`` intervals: width plus ``2 / alpha`` times each miss's distance.

    Lower is better; it rewards narrow intervals only as long as they cover (Gneiting & Raftery, JASA 2007).
    """
    below, above = np.clip(lower - y, 0, None), np.clip(y - upper, 0, None)
    return (upper - lower) + (2 / alpha) * (below + above)


def metrics(y: np.ndarray, prediction: Prediction, high_threshold: float | None) -> dict[str, float]:
    """Point scores of ``prediction`` against ``y``, and interval and distribution scores where it has quantiles.

    ``high_threshold`` (Tc tasks) adds the share within 5% of the measured value and the MAE above the threshold.
    """
    error = prediction.point - y
    result = {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": float(1 - (error**2).sum() / ((y - y.mean()) ** 2).sum()),
        "pearson_r": float(np.corrcoef(prediction.point, y)[0, 1]),
    }
    if high_threshold is not None:
        within = np.abs(error) <= 0.05 * np.abs(y)
        result["within_5pct"] = float(within.mean())
        result["within_5pct_tc_gt_10K"] = float(within[y > 10].mean())
        result["mae_tc_gt_77K"] = float(np.abs(error[y > high_threshold]).mean())
    if prediction.quantiles is not None:
        lower, upper = prediction.quantiles
        covered = (y >= lower) & (y <= upper)  # len(LEVELS) x n
        coverage = covered.mean(axis=1)
        std = np.maximum(prediction.std, 1e-9)
        result.update(
            coverage_95=float(coverage[AT_95]),
            miscalibration_area=float(np.abs(coverage - LEVELS).mean()),
            miscalibration_area_pit=float(np.abs(pit_coverage(prediction.pit) - LEVELS).mean()),
            nll_gaussian=float((0.5 * np.log(2 * np.pi * std**2) + 0.5 * ((y - prediction.mean) / std) ** 2).mean()),
            crps=float(prediction.crps.mean()),
            sharpness=float(np.sqrt((prediction.std**2).mean())),
            interval_width_95=float((upper[AT_95] - lower[AT_95]).mean()),
            median_width_95=float(np.median(upper[AT_95] - lower[AT_95])),
            winkler_95=float(interval_score(y, lower[AT_95], upper[AT_95], 0.05).mean()),
        )
    return result

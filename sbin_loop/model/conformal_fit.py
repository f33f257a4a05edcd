"""Conformal fits of the interval sbin reports: the reported-interval rule on held-out rows, and the conformal shape.

``reported_ends`` gives the 95% interval of held-out rows as prediction reports it (central, or from an end of the
support that holds a point mass), and ``reported_scale`` the split-conformal factor under which it covers its
finite-sample share of them. ``fit_conformal_shape`` fits a fixed predictive shape, scaled per row by its central
spread, and chooses its spread offset and skew by the width those two give. ``recalibration`` applies both.
"""

from __future__ import annotations

import numpy as np

from sbin_loop.model.calibration import (
    CALIBRATION_LEVELS,
    SPREAD_OFFSETS,
    HeldOutErrors,
    clamped,
    conformal_count,
    conformal_scale,
    row_spread,
)
from sbin_loop.model.intervals import ends_at_bounds

CONFORMAL_SKEWS = tuple(float(v) for v in np.exp(np.linspace(np.log(0.25), np.log(4.0), 33)))
"""Candidate ratios of a conformal shape's upper to its lower reach (``fit_conformal_shape`` with
``ModelConfig.skewed_intervals``): 1/4 ... 4, steps of 9%."""


def conformal_template(errors: HeldOutErrors, gamma: float, skew: float = 1.0) -> np.ndarray:
    """A fixed-shape predictive distribution, scaled per row by ``s + gamma``, fitted to held-out errors.

    The row's own draws give only its median and ``s``, the half-width of its central 50% interval; its interval at
    level ``p`` is ``[median - (s + gamma) T(p), median + skew (s + gamma) T(p)]``, clamped to the support, with
    ``T(p)`` the split-conformal quantile of the normalised errors (``conformal_scale`` at level ``p``: an error below
    the median divided by ``s + gamma``, one above by ``skew (s + gamma)``; the share ``ceil(p (n + 1)) / n`` of them
    is covered). With ``skew`` 1 this is normalised split-conformal prediction (Lei et al., JASA 2018), the intervals
    the references of ``benchmarks/conformal_references.py`` use. Unlike the per-level factors, it does not keep a
    row's own tail shape: the draws of an ensemble whose members disagree have a long tail on one side, which widens
    that row's 95% interval many times beyond its central spread, and on a few dozen out-of-fold rows such rows were
    not the ones with large errors.

    Returns:
        ``T`` at ``CALIBRATION_LEVELS`` (``L``, non-decreasing). ``shaped_errors`` gives the held-out rows' intervals
        under it.
    """
    unit = np.broadcast_to(row_spread(errors.lower, errors.upper) + gamma, errors.lower.shape)  # L x n
    scaled = HeldOutErrors(errors.offset, -unit, skew * unit, errors.floor, errors.ceiling, errors.mass_at_bounds)
    template = np.asarray([conformal_scale(scaled, level) for level in CALIBRATION_LEVELS])
    return np.maximum.accumulate(np.nan_to_num(template, nan=0.0, posinf=0.0))


def shaped_errors(errors: HeldOutErrors, template: np.ndarray, gamma: float, skew: float) -> HeldOutErrors:
    """The held-out rows with their intervals replaced by a conformal shape's (``conformal_template``)."""
    reach = template[:, None] * (row_spread(errors.lower, errors.upper) + gamma)[None, :]  # L x n
    return HeldOutErrors(errors.offset, -reach, skew * reach, errors.floor, errors.ceiling, errors.mass_at_bounds)


def fit_conformal_shape(
    errors: HeldOutErrors, skews: tuple[float, ...] = (1.0,)
) -> tuple[np.ndarray, float, float, float]:
    """``conformal_template`` at the ``SPREAD_OFFSETS`` (times the median ``s``) and ``skews``: the narrowest.

    The offset is chosen by width, as ``calibration.fit_output`` chooses its own: every candidate covers the same
    conformal share of the held-out rows. On 60 out-of-fold rows (SuperCon tuning rows, eight training sets) choosing
    it by the interval (Winkler) score instead gave wider intervals on new rows, 72.0 against 61.1 K, and a worse
    score on them (81.2 against 73.9 K): the misses' penalty rests on three or four held-out rows.

    A skew other than 1 lets the interval reach further on one side of the median than on the other. Where values
    sit near a bound of the support (Tc near 0 K), the interval's end on that side is clamped to the bound whatever
    its reach, so a long reach there costs little width, and the misses it covers need not be paid for on the other
    side. With several ``skews`` the candidates are compared by their width as reported (``width_as_reported``):
    the interval of a row whose lower end reaches the bound is reported from the bound to an upper end at a narrower
    level, so the skew that fits the central intervals best need not give the narrowest reported ones. With one
    (the default, symmetric) they are compared as fitted, before that factor.

    Returns:
        The template ``T`` (``L``), ``gamma`` and the skew (the smallest offset, then the skew nearest 1, within 0.5%
        of the narrowest), and the held-out rows' mean widest-interval width under them.
    """
    median = float(np.median(row_spread(errors.lower, errors.upper)))
    fits = []
    for gamma in (g * median for g in SPREAD_OFFSETS):
        for skew in skews:
            template = conformal_template(errors, gamma, skew)
            shaped = shaped_errors(errors, template, gamma, skew)
            width = width_as_reported(shaped) if len(skews) > 1 else widest_width(shaped)
            fits.append((template, width, gamma, skew))
    narrowest = min(fit[1] for fit in fits)
    near = [fit for fit in fits if fit[1] <= 1.005 * narrowest]
    template, width, gamma, skew = min(near, key=lambda fit: (fit[2], abs(np.log(fit[3]))))
    return template, float(gamma), float(skew), width


def width_as_reported(errors: HeldOutErrors) -> float:
    """Mean reported 95% width of held-out rows under their last conformal factor (``inf`` if none covers).

    The factor is the one ``recalibration.match_widest_level`` applies: the smallest under which the interval as
    reported (``reported_ends``) covers the conformal share of the rows (``reported_scale``).
    """
    scale = reported_scale(errors)
    if not np.isfinite(scale) or scale <= 0:
        return float("inf")
    low, high = reported_ends(errors, scale)
    return float((high - low).mean())


REPORTED_INNER = CALIBRATION_LEVELS.index(round(2 * CALIBRATION_LEVELS[-1] - 1, 2))
"""Index of the central level whose upper end is the widest level's quantile (0.90: q95), where the reported
interval ends when it starts at the support's lower end (``reported_ends``)."""


def reported_ends(errors: HeldOutErrors, scale: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The widest level's intervals of held-out rows as sbin reports them, with every row's offsets times ``scale``.

    The rule of ``intervals.bounded_quantiles``: a row whose central interval reaches the lower end of the support
    (its ``(1 - level) / 2`` quantile at or below ``floor``: that share of its draws is clamped there) starts at the
    end and reaches its ``level`` quantile, the upper bound of the central ``2 level - 1`` interval; the same at the
    upper end; elsewhere the central interval. Offsets from the median, standardised units. Without
    ``errors.mass_at_bounds``, the central interval clamped to the support.

    Args:
        errors: One output's held-out errors (``lower`` and ``upper`` at every ``CALIBRATION_LEVELS`` entry).
        scale: A factor on every offset (a scalar, or one per row).

    Returns:
        ``(lower, upper)``, one entry per row.
    """
    floor = np.broadcast_to(errors.floor, errors.offset.shape)
    ceiling = np.broadcast_to(errors.ceiling, errors.offset.shape)
    lower, upper = scale * errors.lower[-1], scale * errors.upper[-1]
    if not errors.mass_at_bounds:
        return clamped(lower, floor, ceiling), clamped(upper, floor, ceiling)
    inner = (
        clamped(scale * errors.lower[REPORTED_INNER], floor, ceiling),
        clamped(scale * errors.upper[REPORTED_INNER], floor, ceiling),
    )
    return ends_at_bounds((lower, upper), inner, lower <= floor, upper >= ceiling, (floor, ceiling))


def reported_scale(errors: HeldOutErrors) -> float:
    """The smallest factor on every row's offsets under which the reported intervals cover their conformal share.

    ``conformal_scale`` for the interval sbin reports (``reported_ends``) rather than the central one. A row's
    coverage is no longer monotone in the factor: as the lower end of a wider interval reaches the support's end, its
    upper end falls back from the 97.5% to the 95% quantile. So each row's coverage is evaluated at every factor where
    it can change (where an end reaches the row's value or the support), which makes it a union of ranges of factors,
    and the answer is the smallest factor that lies in ``ceil(level (n + 1))`` of them (all ``n`` at most).

    Returns:
        The factor, ``inf`` if no factor covers enough rows.
    """
    if not errors.mass_at_bounds:
        return conformal_scale(errors, CALIBRATION_LEVELS[-1])
    offset = errors.offset
    floor = np.broadcast_to(errors.floor, offset.shape)
    ceiling = np.broadcast_to(errors.ceiling, offset.shape)
    ends = (errors.lower[-1], errors.upper[-1], errors.lower[REPORTED_INNER], errors.upper[REPORTED_INNER])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = [target / end for target in (offset, floor, ceiling) for end in ends]
    points = np.stack([np.zeros_like(offset), *ratios])  # P x n: the factors where a row's coverage can change
    points = np.sort(np.where(np.isfinite(points) & (points > 0), points, 0.0), axis=0)
    low, high = reported_ends(errors, points)
    covered = (offset >= low - 1e-6) & (offset <= high + 1e-6)  # P x n, each until the row's next point
    previous = np.vstack([np.zeros((1, len(offset)), dtype=bool), covered[:-1]])
    values = np.concatenate([points[covered & ~previous], points[~covered & previous]])
    steps = np.concatenate([np.ones(int((covered & ~previous).sum())), -np.ones(int((~covered & previous).sum()))])
    order = np.lexsort((steps, values))  # at a tie, a row's range ends before another's starts
    values, counts = values[order], np.cumsum(steps[order])
    last = np.r_[values[1:] != values[:-1], True]  # the count once every change at a factor is in
    rank = int(conformal_count(np.asarray(CALIBRATION_LEVELS[-1]), len(offset)))
    reaching = np.flatnonzero(last & (counts >= rank))
    return float(values[reaching[0]]) if len(reaching) else float("inf")


def widest_width(errors: HeldOutErrors) -> float:
    """Mean width of the widest level's intervals of held-out rows as reported (``reported_ends``; standardised)."""
    low, high = reported_ends(errors)
    return float((high - low).mean())

"""A hurdle for values at the lower bound (Tc = 0: no transition found): a tree classifier beside the network.

A quarter of the SuperCon rows have Tc = 0. They are mostly compositions in which no superconducting transition was
found, a population of their own rather than the low end of the superconductors' Tc. The censored (Tobit) likelihood
of ``sbin_loop.model.likelihood`` models them as a latent value below 0, and so spreads one unimodal predictive over
"not a superconductor" and "a superconductor at some Tc"; neighbours at 0 K also pull down the prediction of a
superconductor.

From ``model.floor_mass_rows`` training values on, an output with a finite lower bound and at least
``MIN_FLOOR_ROWS`` values at it and above it gets a hurdle:

- a classifier of "at the lower bound", trained on every measured row: a random forest (LightGBM's ``rf`` mode,
  ``CLASSIFIER_PARAMS``), stored like the boosters as LightGBM's text model;
- the network, its boosted inputs, stopping point, noise level and recalibration see only the values above the bound
  (``rows_above_floor``): they model a measurement given that it is not at the bound;
- each predictive draw of a candidate is the bound with the classifier's probability, the network's calibrated draw
  otherwise (``floored_draws``). The network's draws stay clamped to the support, so they may add a little mass there.

The function draws that acquisition reads carry the mass too (``floored_functions``): a composition with no transition
has Tc = 0 whatever it is measured with, so expected improvement is about the network's times the probability of a
transition, and a constraint such as Tc >= 10 K holds with the classifier's doubt. ``benchmarks/hurdle_acquisition.py``
measures what it changes in a round's picks.

On the fixed SuperCon holdout (``benchmarks/holdout.py``, 10,896 training rows) the hurdle, with the boosted classifier
it was first fitted with, lowered the MAE from 5.03 to 4.77 K and the mean 95% width from 28.9 to 22.7 K; mixing the
classifier's mass into networks trained on every row gave 4.91 K, and its probability as one more network input 5.11 K
(``benchmarks/README.md``, "Hurdle at 0 K").

Why a forest: that classifier was 500 boosted trees at learning rate 0.1, as the boosted inputs. Their
probabilities are near 0 or 1, which at 10,896 rows left the 95% coverage at 0.956 but on fewer rows put confident
intervals at 0 K on superconductors and above 0 K on non-superconductors. Mixed with the same networks' draws on the
holdout (MAE / CRPS / 95% coverage / mean width in K; log loss of the classifier), boosted against the forest:

- 1,000 rows: 9.19 / 7.03 / 0.893 / 34.2, log loss 1.17, against 8.88 / 6.17 / 0.978 / 41.0, log loss 0.50;
- 3,000 rows: 6.92 / 5.26 / 0.911 / 26.5, log loss 0.93, against 6.64 / 4.79 / 0.977 / 34.1, log loss 0.42;
- 10,896 rows: 4.78 / 3.66 / 0.956 / 22.8, log loss 0.41, against 4.79 / 3.57 / 0.980 / 26.9, log loss 0.33.

The coverages above are of central intervals. A central 95% interval whose lower end is the bound holds the mass there
and 97.5% of the rest, so a calibrated hurdle covered more than 95% of the values; the interval sbin reports runs from
the bound to the 95% quantile instead (``intervals.bounded_quantiles``), and holds 95%. The network's own
recalibration stays central (``calibration.HeldOutErrors.mass_at_bounds``): its draws describe the values above the
bound. The randomised probability integral transform (``benchmarks/scoring.py``) measures calibration at every level
and counts the point mass as it should.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from sbin_loop.model.boosted_inputs import BoostedInputs, train_booster

if TYPE_CHECKING:
    import lightgbm

    from sbin_loop.model.surrogate import BNNSurrogate

MIN_FLOOR_ROWS = 50
"""Fewest training values at the lower bound, and above it, for an output to get a classifier."""

CLASSIFIER_PARAMS: dict[str, Any] = {
    "boosting": "rf",
    "objective": "regression",
    "bagging_fraction": 0.632,
    "bagging_freq": 1,
    "feature_fraction_bynode": 0.5,
    "num_leaves": 1023,
    "min_data_in_leaf": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
"""LightGBM in random-forest mode: each tree on a bootstrap-sized share of the rows, half the descriptors tried at each
split, grown until its leaves are pure or hold one row. A forest's average of leaf shares is a probability that
holds up on a few hundred rows, where boosting (``sbin_loop.model.boosted_inputs``, 500 trees at learning rate 0.1)
drives its probabilities to 0 and 1. See the module docstring for the measurements."""

CLASSIFIER_TREES = 100
"""Trees of the classifier. On the fixed holdout 300 trees gave the same figures (CRPS 3.55 against 3.57 K at 10,896
training rows, 4.77 against 4.79 K at 3,000) at three times the training time. Trees grown to single-row leaves are
large: the forest's text is about 1 MB at 1,000 training rows and 10 MB at 10,896 (the boosted classifier was 1.8
and 3.4 MB; the checkpoint stores it gzip-compressed, 2.5 MB at 10,896), and it trains in about 20 s at 10,896 rows
on one core."""


def fit_floor_mass(
    surrogate: BNNSurrogate, descriptors: Tensor, censored: Tensor, mask: Tensor, seed: int
) -> BoostedInputs:
    """Per output, a classifier of "at the lower bound" from ``floor_mass_rows`` values on, with enough of both kinds.

    Args:
        surrogate: The model being fitted (its support and config).
        descriptors: ``n x d`` descriptors as given (NaN where missing).
        censored: ``n x m``: -1 where a value sits at the lower bound (``likelihood.masked_nll``).
        mask: ``n x m``, True where observed.
        seed: Seeds the classifiers.

    Returns:
        One classifier or None per output (``BoostedInputs``: its ``predict`` gives the probabilities).
    """
    classifiers: list = [None] * surrogate.n_outputs
    threshold = surrogate.config.floor_mass_rows
    if threshold is None:
        return BoostedInputs(classifiers)
    x = descriptors.numpy()
    for j in range(surrogate.n_outputs):
        at_floor = (censored[:, j] < 0) & mask[:, j]
        above = mask[:, j] & ~at_floor
        finite_low = bool(torch.isfinite(surrogate.support[j, 0]))
        enough = int(mask[:, j].sum()) >= threshold and min(int(at_floor.sum()), int(above.sum())) >= MIN_FLOOR_ROWS
        if finite_low and enough:
            rows = mask[:, j].numpy()
            labels = at_floor.numpy()[rows].astype(np.float64)
            classifiers[j] = train_classifier(x[rows], labels, seed + 2, surrogate.config.train_threads)
    return BoostedInputs(classifiers)


def train_classifier(x: np.ndarray, at_floor: np.ndarray, seed: int, threads: int) -> lightgbm.Booster:
    """A random forest (``CLASSIFIER_PARAMS``) whose prediction for ``n x d`` descriptors is P(at the bound).

    Each tree is a least-squares regression tree on the 0/1 labels ``at_floor`` (``n``), so its leaves hold the share
    of training rows at the bound, and the forest's average is a probability in [0, 1].
    """
    return train_booster(x, at_floor, seed, threads, CLASSIFIER_PARAMS, CLASSIFIER_TREES)


def rows_above_floor(
    surrogate: BNNSurrogate, x: Tensor, y: Tensor, censored: Tensor, groups: np.ndarray | None
) -> tuple[Tensor, Tensor, Tensor, np.ndarray | None]:
    """The rows the network trains on: values at the bound of an output with a classifier are left out (NaN).

    Rows left with no measured value are dropped, with their descriptors, censoring flags and groups.

    Args:
        surrogate: The model being fitted, its ``floor_mass`` already fitted.
        x: ``n x d`` descriptors.
        y: ``n x m`` targets in their own units, NaN where not measured.
        censored: ``n x m`` censoring flags (-1 at the lower bound).
        groups: Optional group label per row.
    """
    if not any(surrogate.floor_mass.fitted):
        return x, y, censored, groups
    at_floor = (censored < 0) & torch.as_tensor(surrogate.floor_mass.fitted)
    y = torch.where(at_floor, torch.nan, y)
    censored = torch.where(at_floor, 0, censored).to(censored.dtype)
    keep = ~torch.isnan(y).all(dim=1)
    return x[keep], y[keep], censored[keep], None if groups is None else np.asarray(groups)[keep.numpy()]


def floor_probability(surrogate: BNNSurrogate, descriptors: Tensor) -> Tensor:
    """``n x m``: each output's probability of a value at its lower bound, 0 without a classifier.

    The forest's average of leaf shares can fall a rounding error outside [0, 1]; it is clamped.
    """
    return surrogate.floor_mass.predict(descriptors).clamp(0.0, 1.0)


def floored_draws(surrogate: BNNSurrogate, descriptors: Tensor, draws: Tensor, seed: int) -> Tensor:
    """``S x n x m`` draws in target units, each at its output's lower bound with the classifier's probability.

    Outputs without a classifier keep their draws. The uniform numbers come from their own generator
    (``seed + 2``), so the network's draws of a seed are unchanged.
    """
    if not any(surrogate.floor_mass.fitted):
        return draws
    probability = floor_probability(surrogate, descriptors)  # n x m, 0 without a classifier
    generator = torch.Generator().manual_seed(seed + 2)
    uniform = torch.rand(draws.shape, generator=generator)
    return torch.where(uniform < probability, surrogate.support[:, 0], draws)


HASH_COLUMNS = 32
"""Descriptor columns hashed at a time (``row_offsets``): 16 MB of 64-bit words for a chunk of 65,536 candidates."""

GOLDEN = 0.6180339887498949
"""Step of the draws' low-discrepancy sequence (``floored_functions``): the fractional parts of ``s * GOLDEN`` spread
evenly over [0, 1) for any run of consecutive draws ``s``."""


def row_offsets(descriptors: Tensor, seed: int) -> Tensor:
    """``n``: a number in [0, 1) per row, a hash of its descriptors' bits and ``seed``.

    The same row gets the same number in any batch, order or chunk, and different rows (or seeds) unrelated ones.
    """
    bits = np.ascontiguousarray(descriptors.detach().numpy(), dtype=np.float32).view(np.uint32)  # n x d
    weights = np.random.default_rng(seed).integers(1, 2**63, size=bits.shape[1], dtype=np.uint64) | np.uint64(1)
    mixed = np.full(bits.shape[0], seed, dtype=np.uint64)  # n
    with np.errstate(over="ignore"):  # every product and sum wraps modulo 2^64
        for start in range(0, bits.shape[1], HASH_COLUMNS):  # a block of columns at a time bounds the memory
            block = bits[:, start : start + HASH_COLUMNS].astype(np.uint64)
            mixed += (block * weights[start : start + HASH_COLUMNS]).sum(axis=1, dtype=np.uint64)
        for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):  # splitmix64 finaliser
            mixed = (mixed ^ (mixed >> np.uint64(shift))) * np.uint64(factor)
        mixed ^= mixed >> np.uint64(31)
    return torch.as_tensor((mixed >> np.uint64(11)).astype(np.float64) / 2.0**53, dtype=torch.float32)


def floored_functions(surrogate: BNNSurrogate, descriptors: Tensor, values: Tensor, seed: int) -> Tensor:
    """``S x n x m`` function draws in target units, each at its output's lower bound with the classifier's probability.

    Draw ``s`` of row ``i`` is at the bound where ``frac(s * GOLDEN + offset_i) < p_i``, with ``offset_i`` a hash of
    the row (``row_offsets``). So a row's functions are the same in any batch or chunk (the contract of
    ``function_draws`` that pool scoring relies on); the share of its ``S`` draws at the bound is ``p_i`` to within a
    few draws, where independent uniforms would scatter it binomially (the expected improvement over an incumbent
    above the bound is then close to the network's times ``1 - p_i``); and the draws at the bound are spread over the
    ensemble's members instead of replacing one member's. Outputs without a classifier keep their draws.
    """
    if not any(surrogate.floor_mass.fitted):
        return values
    probability = floor_probability(surrogate, descriptors)  # n x m, 0 without a classifier
    n_draws, n_outputs = values.shape[0], values.shape[-1]
    steps = torch.remainder(torch.arange(n_draws, dtype=torch.float64) * GOLDEN, 1.0).float()[
        :, None, None
    ]  # S x 1 x 1
    offsets = row_offsets(descriptors, seed)[:, None] + torch.arange(n_outputs) * GOLDEN**2  # n x m
    uniform = torch.remainder(steps + offsets, 1.0)  # S x n x m
    return torch.where(uniform < probability, surrogate.support[:, 0].to(values.dtype), values)

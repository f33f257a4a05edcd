"""A hurdle for values at the lower bound (Tc = 0: no transition found): a tree classifier beside the network.

A quarter of the SuperCon rows have Tc = 0. They are mostly compositions in which no superconducting transition was
found, a population of their own rather than the low end of the superconductors' Tc. The censored (Tobit) likelihood
of ``sbin_loop.model.likelihood`` models them as a latent value below 0, and so spreads one unimodal predictive over
"not a superconductor" and "a superconductor at some Tc"; neighbours at 0 K also pull down the prediction of a
superconductor.

From ``model.boosted_input_rows`` training values on (the fits with boosted inputs), an output with a finite lower
bound and at least ``MIN_FLOOR_ROWS`` values at it and above it gets a hurdle:

- a LightGBM classifier of "at the lower bound", trained on every measured row;
- the network, its boosted inputs, stopping point, noise level and recalibration see only the values above the bound
  (``rows_above_floor``): they model a measurement given that it is not at the bound;
- each predictive draw of a candidate is the bound with the classifier's probability, the network's calibrated draw
  otherwise (``floored_draws``). The network's draws stay clamped to the support, so they may add a little mass there.

Only the predictive draws (intervals, medians, stored predictions) carry the classifier's mass: the noise-free function
draws that acquisition reads are the network's, a superconductor's Tc as the network sees it.

On the fixed SuperCon holdout (``benchmarks/holdout.py``, 10,896 training rows) the hurdle lowered the MAE from 5.03 to
4.77 K and the mean 95% width from 28.9 to 22.7 K; mixing the classifier's mass into networks trained on every row
gave 4.91 K, and its probability as one more network input 5.11 K (``benchmarks/README.md``, "Hurdle at 0 K").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from sbin_loop.model.boosted_inputs import BoostedInputs, train_booster

if TYPE_CHECKING:
    from sbin_loop.model.surrogate import BNNSurrogate

MIN_FLOOR_ROWS = 50
"""Fewest training values at the lower bound, and above it, for an output to get a classifier."""


def fit_floor_mass(
    surrogate: BNNSurrogate, descriptors: Tensor, censored: Tensor, mask: Tensor, seed: int
) -> BoostedInputs:
    """Per output, a classifier of "at the lower bound" where the fit has boosted inputs and enough of both kinds.

    Args:
        surrogate: The model being fitted (its support, config and ``n_boosted``).
        descriptors: ``n x d`` descriptors as given (NaN where missing).
        censored: ``n x m``: -1 where a value sits at the lower bound (``likelihood.masked_nll``).
        mask: ``n x m``, True where observed.
        seed: Seeds the classifiers.

    Returns:
        One classifier or None per output (``BoostedInputs``: its ``predict`` gives the probabilities).
    """
    classifiers: list = [None] * surrogate.n_outputs
    if not surrogate.n_boosted:
        return BoostedInputs(classifiers)
    x = descriptors.numpy()
    for j in range(surrogate.n_outputs):
        at_floor = (censored[:, j] < 0) & mask[:, j]
        above = mask[:, j] & ~at_floor
        finite_low = bool(torch.isfinite(surrogate.support[j, 0]))
        if finite_low and min(int(at_floor.sum()), int(above.sum())) >= MIN_FLOOR_ROWS:
            rows = mask[:, j].numpy()
            labels = at_floor.numpy()[rows].astype(np.float64)
            classifiers[j] = train_booster(x[rows], labels, seed + 2, surrogate.config.train_threads, "binary")
    return BoostedInputs(classifiers)


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


def floored_draws(surrogate: BNNSurrogate, descriptors: Tensor, draws: Tensor, seed: int) -> Tensor:
    """``S x n x m`` draws in target units, each at its output's lower bound with the classifier's probability.

    Outputs without a classifier keep their draws. The uniform numbers come from their own generator
    (``seed + 2``), so the network's draws of a seed are unchanged.
    """
    if not any(surrogate.floor_mass.fitted):
        return draws
    probability = surrogate.floor_mass.predict(descriptors)  # n x m, 0 without a classifier
    generator = torch.Generator().manual_seed(seed + 2)
    uniform = torch.rand(draws.shape, generator=generator)
    return torch.where(uniform < probability, surrogate.support[:, 0], draws)

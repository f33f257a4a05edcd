"""Gradient-boosted trees' predictions as extra inputs of the BNN (stacking on a learned feature).

From ``ModelConfig.boosted_input_rows`` observed values of an output on, a LightGBM model of that output is trained on
the descriptors and its prediction is appended to the network's scaled inputs, one column per output. The network learns
how far to trust it; its posterior, noise level and recalibration stay the BNN's, so the intervals the loop uses are
still the variational ensemble's.

The training rows' column is out-of-fold: the booster that predicts a row never saw it (``BOOSTER_FOLDS`` folds,
whole groups where the fit has groups). A network trained on in-sample tree predictions would learn to copy a column
that is nearly the target on its rows and far from it on new ones. Candidates get the prediction of a booster trained
on every row. The folds are dealt independently of the cross-fitted members' folds: a member's held-out rows then
get columns from trees that saw some of the other held-out rows, as a candidate's column comes from trees that saw
every row, and the members' stopping point and noise level are chosen on columns like the candidates'. On the
SuperCon holdout (10,896 training rows, two seeds) the members' own folds stacked to MAE 5.37 / 5.16 K, independent
folds to 5.03 / 5.07 K.

The trees read the descriptors as given (missing ones as NaN, which LightGBM routes by itself), not the network's
scaled inputs: in principle trees do not care about monotone maps of an input, but the scaled inputs are float32
normal scores clipped at ``input_clip``, and on the SuperCon holdout trees on them stacked to a worse network (MAE 5.30
against 5.02 K at the same seed). A booster is stored as LightGBM's text model format (no pickle): ``to_text``,
``from_text``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from sbin_loop.model.input_scaling import N_KNOTS, fit_scaler, scaled_inputs
from sbin_loop.model.splits import cross_validation_folds

if TYPE_CHECKING:
    import lightgbm

    from sbin_loop.model.surrogate import BNNSurrogate

BOOSTER_PARAMS: dict[str, Any] = {
    "objective": "regression_l1",
    "learning_rate": 0.1,
    "num_leaves": 63,
    "min_data_in_leaf": 5,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.5,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
"""LightGBM settings of the boosted inputs: absolute error (the targets are heavy-tailed, like the BNN's Laplace
likelihood), the leaves and sampling of ``benchmarks/model_accuracy.py``'s boosted baseline. Stacked outside the
model on the fixed 2,000-row SuperCon holdout (``benchmarks/holdout.py``, 10,896 training rows, one fit each), its
learning rate of 0.03 over 2,000 trees gave a BNN MAE of 4.94 K, 0.1 over 500 trees 5.02 K at a quarter of the cost;
the plain BNN has 5.28 K."""

BOOSTER_FOLDS = 5
"""Folds of the out-of-fold column (whole groups where the fit has groups)."""

BOOSTER_ROUNDS = 500
"""Trees per booster (``BOOSTER_PARAMS``)."""


def _lightgbm() -> Any:
    import lightgbm  # imported when first used: its import costs every sbin command otherwise

    return lightgbm


def train_booster(
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    threads: int,
    params: dict[str, Any] = BOOSTER_PARAMS,
    rounds: int = BOOSTER_ROUNDS,
) -> lightgbm.Booster:
    """A LightGBM model of ``y`` (``n``) on ``x`` (``n x d``), seeded and deterministic.

    ``params`` and ``rounds`` default to the boosted inputs' (``BOOSTER_PARAMS``, ``BOOSTER_ROUNDS``); the hurdle's
    classifier passes its own (``sbin_loop.model.floor_mass``).
    """
    lightgbm = _lightgbm()
    params = {**params, "seed": seed, "num_threads": threads}
    return lightgbm.train(params, lightgbm.Dataset(x, y, params={"verbose": -1}), num_boost_round=rounds)


class BoostedInputs:
    """Per output, the booster whose prediction is that output's extra input (None: the column is 0).

    Args:
        boosters: One entry per output.
    """

    def __init__(self, boosters: list[lightgbm.Booster | None]) -> None:
        self.boosters = boosters

    @classmethod
    def empty(cls, n_outputs: int) -> BoostedInputs:
        """No booster for any output: every extra column is 0."""
        return cls([None] * n_outputs)

    @classmethod
    def fit(
        cls,
        x: Tensor,
        y: Tensor,
        mask: Tensor,
        folds: list[np.ndarray],
        min_rows: int,
        seed: int,
        threads: int,
    ) -> tuple[BoostedInputs, Tensor]:
        """Boosters on every row, and the training rows' out-of-fold column.

        Args:
            x: ``n x d`` descriptors.
            y: ``n x m`` standardised targets (any value where not observed).
            mask: ``n x m``, True where observed.
            folds: Disjoint row sets covering the rows; a row's column comes from the booster trained without its fold.
            min_rows: Fewest observed values of an output that get a booster; below, its column is 0.
            seed: Seeds every booster alike, so that the fold boosters that make the training rows' column draw the
                same rows and features at each tree as the booster that predicts candidates.
            threads: LightGBM threads while training.

        Returns:
            The fitted inputs and the ``n x m`` out-of-fold column.
        """
        x_np, y_np, observed = x.numpy(), y.numpy(), mask.numpy()
        column = np.zeros(y_np.shape, dtype=np.float32)
        boosters: list[lightgbm.Booster | None] = []
        for j in range(y_np.shape[1]):
            if observed[:, j].sum() < min_rows:
                boosters.append(None)
                continue
            for rows in folds:
                train = np.ones(len(x_np), dtype=bool)
                train[rows] = False
                train &= observed[:, j]
                column[rows, j] = train_booster(x_np[train], y_np[train, j], seed, threads).predict(x_np[rows])
            boosters.append(train_booster(x_np[observed[:, j]], y_np[observed[:, j], j], seed, threads))
        return cls(boosters), torch.as_tensor(column)

    def predict(self, x: Tensor) -> Tensor:
        """``n x m``: each output's booster prediction for descriptors ``x`` (``n x d``), 0 without a booster."""
        column = torch.zeros(x.shape[0], len(self.boosters))
        if x.shape[0]:
            values = x.detach().numpy()
            for j, booster in enumerate(self.boosters):
                if booster is not None:
                    column[:, j] = torch.as_tensor(booster.predict(values, num_threads=torch.get_num_threads()))
        return column

    @property
    def fitted(self) -> tuple[bool, ...]:
        """Per output, whether it has a booster."""
        return tuple(booster is not None for booster in self.boosters)

    def to_text(self) -> list[str | None]:
        """Per output, the booster in LightGBM's text model format (None without one)."""
        return [None if booster is None else booster.model_to_string() for booster in self.boosters]

    @classmethod
    def from_text(cls, texts: list[str | None], n_inputs: int) -> BoostedInputs:
        """Boosters from ``to_text``'s strings.

        Raises:
            ValueError: If a string is not a LightGBM model, or one of another input width than ``n_inputs``.
        """
        lightgbm = _lightgbm()
        boosters: list[lightgbm.Booster | None] = []
        for j, text in enumerate(texts):
            if text is None:
                boosters.append(None)
                continue
            try:
                booster = lightgbm.Booster(model_str=text)
            except lightgbm.basic.LightGBMError as error:
                raise ValueError(f"output {j}: not a LightGBM model ({str(error).strip()})") from None
            if booster.num_feature() != n_inputs:
                raise ValueError(f"output {j}: the booster reads {booster.num_feature()} inputs, the model {n_inputs}")
            boosters.append(booster)
        return cls(boosters)


def with_boosted_inputs(
    surrogate: BNNSurrogate,
    descriptors: Tensor,
    x: Tensor,
    y: Tensor,
    mask: Tensor,
    seed: int,
    groups: np.ndarray | None,
) -> tuple[BoostedInputs, Tensor]:
    """The boosters a fit predicts candidates with, and its ``n x (d + n_boosted)`` training inputs.

    With ``n_boosted`` 0 (no output has ``boosted_input_rows`` values) the inputs are ``x`` alone. An output with
    fewer values than that, beside one with enough, gets no booster and a column of 0.

    Args:
        surrogate: The model being fitted (its config and ``n_boosted``).
        descriptors: ``n x d`` descriptors as given (NaN where missing), which the trees read.
        x: ``n x d`` scaled inputs, which the network reads beside the trees' column.
        y: ``n x m`` standardised targets, 0 where missing.
        mask: ``n x m``, True where observed.
        seed: Seeds the folds and boosters.
        groups: Optional group label per row.
    """
    config, width = surrogate.config, surrogate.n_boosted
    if not width or config.boosted_input_rows is None:
        return BoostedInputs.empty(width), x
    folds = cross_validation_folds(x.shape[0], BOOSTER_FOLDS, seed + 1, groups)
    boosted, column = BoostedInputs.fit(
        descriptors, y, mask, folds, config.boosted_input_rows, seed, config.train_threads
    )
    mean, std, knots = fit_scaler(column, bool(surrogate.x_quantile), torch.zeros(width, dtype=torch.bool))
    surrogate.boost_mean.copy_(mean)
    surrogate.boost_std.copy_(std)
    surrogate.boost_knots.copy_(knots)
    return boosted, torch.cat([x, scaled_column(surrogate, boosted, column)], dim=1)


def scaled_column(surrogate: BNNSurrogate, boosted: BoostedInputs, column: Tensor) -> Tensor:
    """``n x m``: the trees' predictions as the network reads them, 0 for an output without a booster.

    They are scaled like the descriptors (quantile normal scores from ``quantile_rows`` rows on, else standardised),
    on the training rows' out-of-fold values (the ``boost_*`` buffers). Appended in standardised target units instead
    (with the members' folds), the network stacked to a MAE of 5.36 against 5.21 K on the SuperCon holdout.
    """
    knots = surrogate.boost_knots if surrogate.x_quantile else None
    scaled = scaled_inputs(column, surrogate.boost_mean, surrogate.boost_std, knots, surrogate.config.input_clip)
    return torch.where(torch.as_tensor(boosted.fitted), scaled, torch.zeros(()))


def register_scaler(surrogate: BNNSurrogate) -> None:
    """The boosted columns' scaler buffers (as ``x_mean``, ``x_std``, ``x_knots``), sized ``n_boosted``."""
    surrogate.register_buffer("boost_mean", torch.zeros(surrogate.n_boosted))
    surrogate.register_buffer("boost_std", torch.ones(surrogate.n_boosted))
    surrogate.register_buffer("boost_knots", torch.zeros(N_KNOTS, surrogate.n_boosted))


def use_boosted_inputs(surrogate: BNNSurrogate, mask: Tensor) -> bool:
    """Give the members boosted inputs if an output has ``boosted_input_rows`` observed values; True on a change.

    Members of the other input width are replaced by fresh ones (``BNNSurrogate.fit`` initialises them), and the
    scaler buffers resized.

    Args:
        surrogate: The model about to be fitted.
        mask: ``n x m``, True where a target is observed.
    """
    threshold = surrogate.config.boosted_input_rows
    wanted = surrogate.n_outputs if threshold is not None and int(mask.sum(dim=0).max()) >= threshold else 0
    if wanted == surrogate.n_boosted:
        return False
    surrogate.n_boosted = wanted
    surrogate.members = surrogate.new_members(surrogate.n_features + wanted)
    register_scaler(surrogate)
    return True

"""Settings of the variational BNN and of the Monte Carlo intervals, and how a stored model config reads back."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator

from sbin_loop import limits
from sbin_loop.config_base import Section


class ModelConfig(Section):
    """Mean-field variational BNN (Bayes-by-backprop) settings.

    The seed's settings were 64-128-64 ReLU, Adam 1e-3, batch 32, a unit prior on every weight and the plain ELBO;
    those underfit (see ``benchmarks/model_accuracy.py``). The defaults here are what that benchmark measured to be
    accurate and calibrated; each departure from the seed is a field that can be set back.

    Attributes:
        hidden: Widths of the hidden layers (ReLU).
        prior_std: Standard deviation of the zero-mean Gaussian prior on every weight and bias (divided by
            ``sqrt(fan_in)`` of the layer when ``fan_in_scaling`` is set).
        posterior_std_init: Initial standard deviation of the variational posterior of each weight (scaled like the
            prior).
        fan_in_scaling: Scale prior and initial posterior standard deviations by ``1 / sqrt(fan_in)`` per layer.
        kl_weight: Weight of the KL term in the ELBO (1 is the proper ELBO; below 1 tempers the posterior) on up to
            ``kl_rows`` training rows. On 30-120 SuperCon rows (tuning rows, not the benchmark's), 0.1 gave a lower MAE
            and CRPS than 0.01 with the cross-fitted ensemble; 1 costs 2-4 K of MAE.
        kl_rows: Training rows above which the KL weight falls as ``kl_weight * sqrt(kl_rows / n)``
            (``effective_kl_weight``); None keeps ``kl_weight`` at every size. A weight fixed at 30-120 rows pulled the
            mean network off large training sets. On a fixed 2,000-row SuperCon holdout (seed 12345; the accuracy
            benchmark's folds hold these rows too, so one law was chosen, not a weight per size) the better weight
            fell with n, by CRPS: at 300 rows 0.04 against 0.1 (8.17 against 8.34 K), at 1,000 rows 0.012 against
            0.1 (7.02 against 7.45 K), at 3,000 rows 0.01 against 0.1 (5.85 against 6.76 K), at 10,896 rows 0.01
            against 0.0011 and 0.1 (4.51 against 4.60 and 5.54 K). The square root keeps 0.1 at 120 rows and gives
            about 0.01 at 10^4; a ``1 / n`` fall (0.0011 at 10^4) had a lower MAE there (5.69 against 5.89 K) but
            wider intervals (52.9 against 46.1 K).
        learning_rate: Adam learning rate (the starting one under a schedule).
        learning_rate_schedule: ``constant``, or ``cosine``: annealed to 1% of ``learning_rate`` over the step
            budget (on SuperCon Tc, fold 0, one member: 7.26 K MAE constant, 6.17 K cosine with ``mse`` selection).
        batch_size: Minibatch size.
        epochs: Passes over the training data.
        min_steps: Lower bound on optimiser steps, so tiny training sets are still fitted.
        max_steps: Upper bound on optimiser steps per ensemble member, so large training sets stay within a time
            budget.
        noise: ``homoscedastic``: one learned noise level per output; ``heteroscedastic``: the network predicts a
            noise level per input and output.
        likelihood: Observation noise model of the training likelihood and of predictive draws: ``laplace`` (heavy
            tails; the mean head learns the conditional median, which absolute errors reward, and is not pulled by
            outliers such as one composition reported with very different values) or ``gaussian``. Inner validation
            (``validation_metric`` ``mae`` with it): SuperCon Tc 6.02 -> 5.63 K and 6.09 -> 5.87 K on two folds,
            O-vacancy energies 0.73 -> 0.59 eV and 0.74 -> 0.61 eV, coverage unchanged.
        nll_beta: Exponent of the beta-NLL weighting of the training likelihood (0: plain NLL; 0.5 helps a
            heteroscedastic model fit the mean where it predicts large noise).
        ensemble_size: Variational networks; the posterior is their equal-weight mixture. From 2 members on they are
            cross-fitted: the rows are dealt into ``ensemble_size`` folds (whole groups when the fit has groups) and
            each member trains on all folds but its own, so every row trains the ensemble and is predicted by a
            member that did not see it. Those out-of-fold predictions choose the stopping point, the noise level and
            the recalibration (``sbin_loop.model.training``, ``sbin_loop.model.recalibration``); nothing is held out
            of the final model. With 1 member the network trains on every row for the full step budget and keeps its
            own spread.
        quantile_rows: Training rows from which descriptors are scaled through their training quantiles onto normal
            scores (linear in standard deviations beyond them; ``sbin_loop.model.input_scaling``) instead of
            standardised; None always standardises. On a fixed 2,000-row SuperCon holdout (seed 12345;
            ``benchmarks/input_scaling_probe.py``) quantile scaling lowered the CRPS from 200 training rows on (8.7 /
            9.2 / 8.7 against 8.7 / 9.8 / 9.2 K on three 200-row sets; 4.30 against 4.53 K and MAE 5.56 against 5.93
            K on 10,896 rows) and raised it below (10.7 / 8.9 against 9.9 / 8.5 K on two 120-row sets): a few dozen
            rows' ranks say less than their values.
        boosted_input_rows: Observed values of an output from which the network also gets, as one more input per
            output, the prediction of gradient-boosted trees trained on the same descriptors (stacking;
            ``sbin_loop.model.boosted_inputs``), out-of-fold on its training rows; None never adds it. Below it the
            networks read the descriptors alone, exactly as with None; a fit that reaches it builds members with the
            extra inputs, and a warm start (``warm_start_steps``) does not continue such a model. On the fixed
            2,000-row SuperCon holdout (seed 12345, tuning rows; ``benchmarks/boosted_inputs_probe.py``), MAE / CRPS
            in K with against without, two disjoint training sets a size: 1,000 rows 8.69 / 6.44 and 8.56 / 6.58
            against 8.83 / 6.66 and 8.80 / 6.51; 3,000 rows 6.65 / 5.13 and 7.20 / 5.44 against 6.99 / 5.25 and
            7.41 / 5.64; 10,896 rows (fit seeds 0 and 1) 5.03 / 3.98 and 5.07 / 4.05 against 5.28 / 4.14 (seed
            0); coverage 0.96-0.97 throughout. Stacking outside the model did nothing at 300 rows (MAE 11.07 / 11.13
            against 10.94 / 11.26 K), nor with a random forest's prediction at 30 and 120 rows.
        floor_mass_rows: Observed values of an output from which an output with a lower bound (and at least
            ``floor_mass.MIN_FLOOR_ROWS`` values at it and above it) gets the hurdle of ``sbin_loop.model.floor_mass``:
            a random-forest classifier of values at the bound, the networks trained on the values above it. None
            never fits it. On the fixed SuperCon holdout (seed 12345, two training sets a size;
            ``benchmarks/hurdle_probe.py``) it lowered the CRPS at 300 / 1,000 / 3,000 rows from 8.23 / 6.45 / 5.31
            to 7.71 / 6.08 / 4.89 K, against the networks trained on every row with the censored likelihood, at MAE
            11.02 / 8.68 / 6.87 against 11.10 / 8.63 / 6.93 K. 300 is the smallest size measured; the
            small-data intervals (at most 120 rows) and the quickstart (110 results) stay without it.
        input_clip: Scaled descriptors of candidates are clipped to ``±input_clip`` (training standard deviations, or
            normal scores).
            A descriptor nearly constant over a small training set (e.g. magnetic moment over 6 non-magnetic
            compounds) would otherwise put a magnetic candidate 10^5 deviations out, where a ReLU network's linear
            extrapolation means nothing and overflows.
        validation_interval: Optimiser steps between two checks of the members' pooled out-of-fold loss.
        patience: Checks without improvement before training stops; every member keeps its weights of the best check.
        validation_metric: What "best" means on the out-of-fold rows: ``nll`` (NLL of the mean network under
            ``likelihood``), ``mse`` (squared error of its mean, standardised units) or ``mae`` (absolute error of its
            mean, the natural match of the ``laplace`` likelihood). The NLL of a heteroscedastic network is best
            early, before the mean has converged, so selecting on it stops too soon.
        recalibrate: Fit, per output on the out-of-fold predictions, the map of predictive draws under which central
            intervals have their nominal coverage: factors that scale the spread (one per central level for the
            tails, and an offset that evens out the widths), or a conformal shape scaled by each row's central
            spread, whichever gives the narrower out-of-fold 95% interval (``sbin_loop.model.recalibration``). It
            changes predictive draws (intervals) only; acquisition keeps the ensemble's own function spread.
        skewed_intervals: Let the conformal shape of recalibration reach further on one side of the median than on the
            other (``conformal_fit.CONFORMAL_SKEWS`` and ``fit_conformal_shape``): the offset and the skew whose
            reported 95% interval is narrowest on the out-of-fold rows, at the same conformal coverage of them. Where
            values sit near a bound of the support (Tc near 0 K), the interval's end on that side is clamped to the
            bound whatever its reach, so reaching further there costs little width, and misses there need not be paid
            for on the other side. On SuperCon tuning rows (``benchmarks/small_data_calibration.py --rows-seed 5000
            --seeds 20``) it narrowed the mean 95% interval at 60 / 120 rows from 67.8 / 56.3 to 55.2 / 48.3 K (coverage
            0.980 / 0.960 against 0.960 / 0.950). False keeps the shape symmetric, as in models stored before the
            setting existed.
        train_threads: Intra-op threads while training. Minibatch steps are too small to gain from more (on a busy
            machine more threads make training several times slower); one thread also makes trained weights
            independent of the machine's thread setting.
        warm_start_steps: Optimiser steps per member when a fit is given the previous round's model to continue from
            (``BNNSurrogate.fit(warm_start=...)``; the campaign loop does so when this is above 0 and the previous
            checkpoint has the same inputs and architecture): training starts from its weights instead of a fresh
            initialisation and runs this many steps under the same learning-rate schedule. A round adds a few results
            to hundreds, so a short continuation fits them (but explores less, below); 0 (the default) trains every
            round from scratch.
            Continuing explores less: on the discovery benchmark it found more of the top 1% early and less late,
            so it is off by default and worth it only where training is slow and the budget short.
        warm_start_rounds: Consecutive rounds that may continue from the previous model; the round after them trains
            from scratch.
        warm_start_keep: Share of the previous model kept when continuing: weight means start at ``keep * previous +
            (1 - keep) * fresh initialisation`` and posterior spreads at their initial value (shrink and perturb,
            Ash & Adams, NeurIPS 2020); 1 continues from the previous model unchanged.
    """

    hidden: tuple[int, ...] = (64, 128, 64)
    prior_std: float = Field(default=1.0, gt=0)
    posterior_std_init: float = Field(default=1e-2, gt=0)
    fan_in_scaling: bool = True
    kl_weight: float = Field(default=0.1, ge=0, le=1e6)
    kl_rows: int | None = Field(default=120, gt=0, le=limits.MAX_COUNT)
    learning_rate: float = Field(default=3e-3, gt=0, le=10)
    learning_rate_schedule: Literal["constant", "cosine"] = "cosine"
    batch_size: int = Field(default=128, gt=0, le=limits.MAX_COUNT)
    epochs: int = Field(default=200, gt=0, le=limits.MAX_STEPS)
    min_steps: int = Field(default=1500, ge=0, le=limits.MAX_STEPS)
    max_steps: int = Field(default=20000, gt=0, le=limits.MAX_STEPS)
    noise: Literal["homoscedastic", "heteroscedastic"] = "heteroscedastic"
    likelihood: Literal["gaussian", "laplace"] = "laplace"
    nll_beta: float = Field(default=0.5, ge=0, le=1)
    ensemble_size: int = Field(default=5, gt=0, le=limits.MAX_MEMBERS)
    quantile_rows: int | None = Field(default=200, gt=0, le=limits.MAX_COUNT)
    boosted_input_rows: int | None = Field(default=1000, gt=0, le=limits.MAX_COUNT)
    floor_mass_rows: int | None = Field(default=300, gt=0, le=limits.MAX_COUNT)
    input_clip: float = Field(default=10.0, gt=0)
    validation_interval: int = Field(default=200, gt=0, le=limits.MAX_STEPS)
    patience: int = Field(default=10, gt=0, le=limits.MAX_STEPS)
    validation_metric: Literal["nll", "mse", "mae"] = "mae"
    recalibrate: bool = True
    skewed_intervals: bool = True
    train_threads: int = Field(default=1, gt=0, le=limits.MAX_THREADS)
    warm_start_steps: int = Field(default=0, ge=0, le=limits.MAX_STEPS)
    warm_start_rounds: int = Field(default=4, gt=0, le=limits.MAX_ROUNDS)
    warm_start_keep: float = Field(default=1.0, gt=0, le=1)

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, hidden: tuple[int, ...]) -> tuple[int, ...]:
        if not hidden or len(hidden) > limits.MAX_LAYERS or any(not 0 < width <= limits.MAX_WIDTH for width in hidden):
            raise ValueError(
                f"hidden layer widths must be a list of 1 to {limits.MAX_LAYERS} integers from 1 to {limits.MAX_WIDTH}"
            )
        return hidden


def quantile_scaled(config: ModelConfig, n_rows: int) -> bool:
    """Whether a fit on ``n_rows`` training rows maps its inputs through their quantiles (``quantile_rows``)."""
    return config.quantile_rows is not None and n_rows >= config.quantile_rows


def effective_kl_weight(config: ModelConfig, n_rows: float) -> float:
    """The KL weight of a fit on ``n_rows`` training rows (``ModelConfig.kl_rows``)."""
    if config.kl_rows is None or n_rows <= config.kl_rows:
        return config.kl_weight
    return config.kl_weight * math.sqrt(config.kl_rows / n_rows)


LEGACY_MODEL_DEFAULTS: dict[str, Any] = {
    "likelihood": "gaussian",
    "kl_rows": None,
    "quantile_rows": None,
    "boosted_input_rows": None,
    "skewed_intervals": False,
}
"""What a model setting added to sbin with a new behaviour as its default meant before it existed. A config stored
before then (a campaign's start, a checkpoint) lacks the field and is read with these values, so it keeps its model."""


REMOVED_MODEL_FIELDS = ("validation_fraction", "min_validation_rows", "calibration_folds")
"""Model settings of earlier sbin versions that no longer exist (a held-out validation share, out-of-fold
calibration models): the members are cross-fitted instead. A stored config that has them still loads."""


def stored_model_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A model config as stored when it was written, read by this sbin.

    Fields it lacks get their ``LEGACY_MODEL_DEFAULTS``; ``REMOVED_MODEL_FIELDS`` are dropped. A config without
    ``floor_mass_rows`` had the hurdle from ``boosted_input_rows`` on, and keeps it there.
    """
    kept = {key: value for key, value in stored.items() if key not in REMOVED_MODEL_FIELDS}
    merged = {**LEGACY_MODEL_DEFAULTS, **kept}
    merged.setdefault("floor_mass_rows", merged["boosted_input_rows"])  # the hurdle came with the boosted inputs
    return merged


class IntervalConfig(Section):
    """Monte Carlo intervals recomputed after each retraining.

    Attributes:
        n_draws: Posterior predictive draws per candidate.
        level: Central probability of the interval.
        top_k: How many of the best candidates get intervals stored with the round.
    """

    n_draws: int = Field(default=1000, gt=1, le=limits.MAX_DRAWS)
    level: float = Field(default=0.95, gt=0, lt=1)
    top_k: int = Field(default=5, gt=0, le=limits.MAX_COUNT)

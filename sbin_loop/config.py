"""Campaign configuration: the YAML file a user writes, validated field by field.

Every section is a pydantic model with ``extra="forbid"`` so that a misspelt key is an error naming the key, not a
silently ignored setting. ``load_config`` turns pydantic's errors into one message listing each bad field.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from sbin_loop import limits, plugins
from sbin_loop.workflows.defect_settings import setting_default
from sbin_loop.yaml_safe import YamlLimitError, load_yaml


class ConfigError(ValueError):
    """A campaign config that cannot be used; the message names each offending field."""


def _not_only_dots(name: str) -> str:
    if not name.strip("."):
        raise ValueError("must contain a letter, digit, '-' or '_': it is used as a directory name")
    return name


PathComponent = Annotated[
    str,
    Field(min_length=1, max_length=limits.MAX_NAME_LENGTH, pattern=r"^[A-Za-z0-9_.-]+$"),
    AfterValidator(_not_only_dots),
]
"""A name used as one directory or file name: letters, digits, ``-_.``, not ``.`` or ``..``, at most 100 chars."""


class _Section(BaseModel):
    """Base of every config section: unknown keys are errors, and numbers must be finite.

    Infinity and NaN are refused: JSON stores them as null, and a stored campaign config must read back as written.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PerovskiteRulesConfig(_Section):
    """The rules a composition must pass to count as a perovskite (``sbin_loop.space.rules``).

    Attributes:
        oxidation_states: Allowed oxidation states per element, overriding the default (pymatgen's common and
            ICSD states of the site's sign that have a Shannon radius).
        tolerance_factor: Inclusive bounds on the Goldschmidt tolerance factor.
        octahedral_factor: Inclusive bounds on the octahedral factor r_B / r_X.
        min_electronegativity_gap: If set, the anion's Pauling electronegativity must exceed the mean of each
            cation site by at least this much.
    """

    oxidation_states: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    tolerance_factor: tuple[float, float] = (0.80, 1.10)
    octahedral_factor: tuple[float, float] = (0.37, 0.90)
    min_electronegativity_gap: float | None = None

    @model_validator(mode="after")
    def _ordered_rule_bounds(self) -> PerovskiteRulesConfig:
        bounds = {"tolerance_factor": self.tolerance_factor, "octahedral_factor": self.octahedral_factor}
        for name, (low, high) in bounds.items():
            if not 0 < low <= high:
                raise ValueError(f"{name}: need 0 < lower <= upper, got [{low}, {high}]")
        return self


class PoolPerovskiteFilter(PerovskiteRulesConfig):
    """Keep only the compositions of a pool that are perovskites by the rules of an enumerated perovskite space.

    Each formula's cations are placed on the A and B sites as the defect workflow places them
    (``sbin_loop.workflows.perovskite.site_occupancies``: by decreasing ionic radius until A holds one per formula
    unit), so a composition passes under the very assignment its supercell is built with. It is then screened by
    charge neutrality with the allowed oxidation states (mixed valence allowed) and the Goldschmidt tolerance,
    octahedral-factor and optional electronegativity rules, as in ``PerovskiteSpaceConfig``.

    Attributes:
        x_site: Anions a kept composition may have on its X site (``[O]``: oxides only).
    """

    x_site: tuple[str, ...] = ("O",)

    @field_validator("x_site")
    @classmethod
    def _some_anions(cls, x_site: tuple[str, ...]) -> tuple[str, ...]:
        if not x_site:
            raise ValueError("list at least one anion")
        return x_site


class PoolSpaceConfig(_Section):
    """Candidates read from a table of formulas.

    Attributes:
        kind: Discriminator; ``pool`` for a table of formulas.
        source: ``bundled:NAME`` for a table shipped with sbin, or a CSV path (relative paths are taken relative to the
            config file).
        formula_column: Column holding the chemical formulas.
        sample: If set, a seeded random subset of this many unique compositions forms the pool (drawn from those
            that pass ``perovskite_filter``, when given).
        perovskite_filter: If set, only the compositions that pass these perovskite rules are candidates.
    """

    kind: Literal["pool"] = "pool"
    source: str = "bundled:supercon"
    formula_column: str = "formula"
    sample: int | None = Field(default=None, gt=0, le=limits.MAX_COUNT)
    perovskite_filter: PoolPerovskiteFilter | None = None

    @model_serializer(mode="wrap")
    def _without_absent_filter(self, handler: SerializerFunctionWrapHandler) -> dict:
        """Leave ``perovskite_filter`` out when unset: a pool's stored config and cache fingerprint read as before."""
        data = handler(self)
        if data.get("perovskite_filter") is None:
            data.pop("perovskite_filter", None)
        return data


class PerovskiteSpaceConfig(PerovskiteRulesConfig):
    """Perovskites ``(A_{1-x} A'_x)_{1-δ_A} (B_{1-y} B'_y) X_{3-δ_X}`` on a fraction grid, screened by rules.

    Each candidate mixes up to ``max_species_*`` elements per site with fractions that are multiples of
    ``1 / fraction_denominator``. A candidate is kept if it can be charge-neutral with the allowed oxidation
    states (mixed valence allowed) and its Goldschmidt tolerance factor, octahedral factor and (optionally)
    the electronegativity gap between anion and cations lie within bounds.

    Attributes:
        kind: Discriminator; ``perovskite`` for an enumerated perovskite space.
        a_site: Elements allowed on the A site (12-coordinated).
        b_site: Elements allowed on the B site (6-coordinated).
        x_site: Anions (6-coordinated).
        max_species_a: Most elements mixed on the A site.
        max_species_b: Most elements mixed on the B site.
        max_species_x: Most elements mixed on the X site.
        fraction_denominator: Site fractions are multiples of ``1 / fraction_denominator``.
        a_deficiency: A-site deficiencies δ_A to enumerate (0 is the stoichiometric perovskite).
        anion_deficiency: Anion deficiencies δ_X to enumerate.

    The rules (``oxidation_states``, ``tolerance_factor``, ``octahedral_factor``, ``min_electronegativity_gap``) are
    those of ``PerovskiteRulesConfig``.
    """

    kind: Literal["perovskite"] = "perovskite"
    a_site: tuple[str, ...] = ("Na", "K", "Ca", "Sr", "Ba", "La", "Pr", "Nd", "Sm", "Bi")
    b_site: tuple[str, ...] = ("Mg", "Al", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Ga", "Zr", "Nb")
    x_site: tuple[str, ...] = ("O",)
    max_species_a: int = Field(default=2, ge=1, le=4)
    max_species_b: int = Field(default=2, ge=1, le=4)
    max_species_x: int = Field(default=1, ge=1, le=3)
    fraction_denominator: int = Field(default=8, ge=1, le=100)
    a_deficiency: tuple[float, ...] = (0.0,)
    anion_deficiency: tuple[float, ...] = (0.0,)

    @model_validator(mode="after")
    def _consistent(self) -> PerovskiteSpaceConfig:
        sites = {"a_site": self.a_site, "b_site": self.b_site, "x_site": self.x_site}
        for name, elements in sites.items():
            if not elements:
                raise ValueError(f"{name}: list at least one element")
            if len(set(elements)) != len(elements):
                raise ValueError(f"{name}: duplicate elements in {list(elements)}")
        a_site, b_site, x_site = set(self.a_site), set(self.b_site), set(self.x_site)
        shared = (a_site & b_site) | (x_site & (a_site | b_site))
        if shared:
            raise ValueError(f"elements on more than one site would make ids ambiguous: {sorted(shared)}")
        unknown = set(self.oxidation_states) - a_site - b_site - x_site
        if unknown:
            raise ValueError(f"oxidation_states: {sorted(unknown)} are on no site")
        deficiencies = {
            "a_deficiency": (self.a_deficiency, 1),
            "anion_deficiency": (self.anion_deficiency, 3),
        }
        for name, (values, upper) in deficiencies.items():
            in_range = all(0 <= value < upper for value in values)
            if not values or not in_range or len(set(values)) != len(values):
                raise ValueError(f"{name}: distinct values in [0, {upper}) required, got {list(values)}")
        return self


def _kind_or(default: str) -> Callable[[object], str]:
    """Discriminator reading ``kind`` from a mapping or model, with a default when a section leaves it out."""

    def kind(value: object) -> str:
        return value.get("kind", default) if isinstance(value, dict) else getattr(value, "kind", default)

    return kind


_UNION_TAGS: set[str] = set()
"""Tags of tagged unions; pydantic puts them in error locations, where users do not write them."""


def _tagged(model: type[BaseModel], tag: str) -> object:
    _UNION_TAGS.add(tag)
    return Annotated[model, Tag(tag)]


SpaceConfig = Annotated[
    _tagged(PoolSpaceConfig, "pool") | _tagged(PerovskiteSpaceConfig, "perovskite"),
    Discriminator(_kind_or("pool")),
]
"""Either kind of candidate space, chosen by its ``kind`` key."""


Bounds = tuple[float | None, float | None]
"""A quantity's support ``(low, high)``; None for an open end."""


class ObjectiveConfig(_Section):
    """One quantity the model learns and the campaign optimises or explores.

    Attributes:
        name: Name of the quantity; also the column the dataset oracle reads unless ``column`` is given.
        column: Column in the oracle's table that holds the measured value.
        goal: ``maximize`` or ``minimize`` the quantity.
        transform: ``log1p`` models log(1 + y) (for non-negative, skewed targets such as Tc); ``none`` models y.
        unit: Unit shown in logs and reports.
        bounds: The quantity's physical support ``[low, high]``; either end may be null (``Tc_K: [0, null]``). The
            model's draws, means, intervals and acquisition values stay inside it by construction, and a measured
            value outside it is recorded as a failed result instead of being trained on.
    """

    name: str = Field(min_length=1)
    column: str | None = None
    goal: Literal["maximize", "minimize"] = "maximize"
    transform: Literal["none", "log1p"] = "none"
    unit: str = ""
    bounds: Bounds | None = None

    @field_validator("bounds")
    @classmethod
    def _ordered_bounds(cls, bounds: Bounds | None) -> Bounds | None:
        if bounds is None:
            return None
        if any(end is not None and not math.isfinite(end) for end in bounds):
            raise ValueError("bounds must be finite numbers or null")
        low, high = bounds
        if low is not None and high is not None and not low < high:
            raise ValueError(f"bounds: low ({low}) must be below high ({high})")
        return None if low is None and high is None else bounds

    @property
    def data_column(self) -> str:
        """Column in the oracle's table holding this objective."""
        return self.column or self.name

    def support_violation(self, value: float) -> str | None:
        """Why ``value`` cannot be a measurement of this quantity (not finite, or outside ``bounds``), else None."""
        if not math.isfinite(value):
            return f"{self.name} = {value} is not a finite number"
        low, high = self.bounds or (None, None)
        if low is not None and value < low:
            return f"{self.name} = {value:g} is below its lower bound {low:g}"
        if high is not None and value > high:
            return f"{self.name} = {value:g} is above its upper bound {high:g}"
        return None


class ModelConfig(_Section):
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
        kl_weight: Weight of the KL term in the ELBO (1 is the proper ELBO; below 1 tempers the posterior). On 30-120
            SuperCon rows (tuning rows, not the benchmark's), 0.1 gave a lower MAE and CRPS than 0.01 with the
            cross-fitted ensemble; 1 costs 2-4 K of MAE.
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
            the recalibration (``sbin_loop.model.training``); nothing is held out of the final model. With 1 member
            the network trains on every row for the full step budget and keeps its own spread.
        input_clip: Standardised descriptors of candidates are clipped to ``±input_clip`` training standard deviations.
            A descriptor nearly constant over a small training set (e.g. magnetic moment over 6 non-magnetic
            compounds) would otherwise put a magnetic candidate 10^5 deviations out, where a ReLU network's linear
            extrapolation means nothing and overflows.
        validation_interval: Optimiser steps between two checks of the members' pooled out-of-fold loss.
        patience: Checks without improvement before training stops; every member keeps its weights of the best check.
        validation_metric: What "best" means on the out-of-fold rows: ``nll`` (NLL of the mean network under
            ``likelihood``), ``mse`` (squared error of its mean, standardised units) or ``mae`` (absolute error of its
            mean, the natural match of the ``laplace`` likelihood). The NLL of a heteroscedastic network is best
            early, before the mean has converged: selecting on it cost 1 K MAE on SuperCon Tc (7.16 K vs 6.17 K).
        recalibrate: Fit, per output on the out-of-fold predictions, factors that scale the predictive spread (one
            per central level for the tails, and an offset that evens out the widths) so that central intervals
            have their nominal coverage. They widen predictive draws (intervals) only; acquisition keeps the
            ensemble's own function spread.
        train_threads: Intra-op threads while training. Minibatch steps are too small to gain from more, and on a
            busy 2-core machine two threads made training 5x slower (18.7 s vs 103 s for 4,500 steps); one thread
            also makes trained weights independent of the machine's thread setting.
        warm_start_steps: Optimiser steps per member when a fit is given the previous round's model to continue from
            (``BNNSurrogate.fit(warm_start=...)``; the campaign loop does so when this is above 0 and the previous
            checkpoint has the same inputs and architecture): training starts from its weights instead of a fresh
            initialisation and runs this many steps under the same learning-rate schedule. A round adds a few results
            to hundreds, so a short continuation fits them (but explores less, below); 0 (the default) trains every
            round from scratch.
            Out-of-fold calibration models always start fresh (a previous model has seen their held-out fold).
            Measured on SuperCon discovery (``benchmarks/campaign.py``, qLogEI, 64-64 network, seeds 0-5 to 500
            evaluations, paired with fresh training, per-layer trainer): a round's fit took 1.1 s instead of 4.1-4.8 s
            at 250 steps, and found more of the top 1% early (0.35 vs 0.27 at 200 evaluations) but less late (0.50 vs
            0.73 at 500); a fresh round after every four continued ones (``warm_start_rounds``) did not close the late
            gap (0.55 at 250 steps on seeds 0-4, 0.59 at 100). Worth it where training is slow and the budget short.
        warm_start_rounds: Consecutive rounds that may continue from the previous model; the round after them trains
            from scratch.
        warm_start_keep: Share of the previous model kept when continuing: weight means start at ``keep * previous +
            (1 - keep) * fresh initialisation`` and posterior spreads at their initial value (shrink and perturb,
            Ash & Adams, NeurIPS 2020); 1 continues from the previous model unchanged, as in the measurements above.
            At 0.5 (250 steps, no fresh rounds) it was level with fresh training on tuning seeds 100-104 (0.735 vs
            0.747 of the top 1% at 500, ahead at 150-300) but not on the reported seeds 0-8 (0.46 vs 0.75 at 500,
            behind on all 9), so it does not cure the late loss either.
    """

    hidden: tuple[int, ...] = (64, 128, 64)
    prior_std: float = Field(default=1.0, gt=0)
    posterior_std_init: float = Field(default=1e-2, gt=0)
    fan_in_scaling: bool = True
    kl_weight: float = Field(default=0.1, ge=0, le=1e6)
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
    input_clip: float = Field(default=10.0, gt=0)
    validation_interval: int = Field(default=200, gt=0, le=limits.MAX_STEPS)
    patience: int = Field(default=10, gt=0, le=limits.MAX_STEPS)
    validation_metric: Literal["nll", "mse", "mae"] = "mae"
    recalibrate: bool = True
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


LEGACY_MODEL_DEFAULTS: dict[str, Any] = {"likelihood": "gaussian"}
"""What a model setting added to sbin with a new behaviour as its default meant before it existed. A config stored
before then (a campaign's start, a checkpoint) lacks the field and is read with these values, so it keeps its model."""


REMOVED_MODEL_FIELDS = ("validation_fraction", "min_validation_rows", "calibration_folds")
"""Model settings of earlier sbin versions that no longer exist (a held-out validation share, out-of-fold
calibration models): the members are cross-fitted instead. A stored config that has them still loads."""


def stored_model_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A model config as stored when it was written, read by this sbin.

    Fields it lacks get their ``LEGACY_MODEL_DEFAULTS``; ``REMOVED_MODEL_FIELDS`` are dropped.
    """
    kept = {key: value for key, value in stored.items() if key not in REMOVED_MODEL_FIELDS}
    return {**LEGACY_MODEL_DEFAULTS, **kept}


def explicit_fields(config: BaseModel, prefix: str = "") -> set[str]:
    """Dotted paths of the settings given explicitly (in the file), not left to their defaults.

    A nested section given in the file contributes the paths of its own explicit settings; a list of sections (e.g.
    ``oracles``) counts as one setting.
    """
    paths = set()
    for name in config.model_fields_set:
        value = getattr(config, name)
        path = f"{prefix}.{name}" if prefix else name
        paths |= explicit_fields(value, path) if isinstance(value, BaseModel) else {path}
    return paths


AcquisitionKind = Literal[
    "expected_improvement",
    "noisy_expected_improvement",
    "upper_confidence_bound",
    "uncertainty",
    "thompson",
    "greedy",
    "random",
]
"""Acquisition rules a policy (or a component of a composite policy) can use; see ``sbin_loop.policies``."""


class _AcquisitionFields(_Section):
    """What to optimise and how; shared by a single policy and each component of a composite one.

    Attributes:
        kind: ``expected_improvement`` (BoTorch qLogEI against the best measured value),
            ``noisy_expected_improvement`` (qLogNEI: the incumbent is the posterior of the measured candidates; use it
            when measurements are noisy), ``upper_confidence_bound`` (qUCB), ``uncertainty`` (largest posterior
            variance, conditioned on the picks already in the batch), ``thompson`` (argmax of one posterior draw per
            pick), ``greedy`` (largest posterior mean) or ``random``.
        objective: Objective the rule acts on; the first objective if neither this nor ``weights`` is given.
        weights: Weighted scalarisation instead of one objective: ``{objective: weight}``. Each objective is first
            oriented (negated when minimised); the weights multiply values in their own units, so choose them to
            balance the scales (e.g. 1 / typical spread).
        beta: Exploration weight of ``upper_confidence_bound``.
    """

    kind: AcquisitionKind = "expected_improvement"
    objective: str | None = None
    weights: dict[str, float] | None = None
    beta: float = Field(default=4.0, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> _AcquisitionFields:
        if self.objective is not None and self.weights is not None:
            raise ValueError("give either objective or weights, not both")
        if self.weights is not None and (not self.weights or not any(self.weights.values())):
            raise ValueError("weights must name at least one objective with a non-zero weight")
        return self

    @property
    def target_field(self) -> str:
        """``weights`` for a scalarisation, else ``objective``."""
        return "weights" if self.weights is not None else "objective"

    def objective_names(self) -> list[str]:
        """Objectives this rule reads (empty: the campaign's first objective)."""
        if self.weights is not None:
            return list(self.weights)
        return [self.objective] if self.objective is not None else []


class AcquisitionConfig(_AcquisitionFields):
    """One component of a composite policy: an acquisition rule and how many picks of the batch it makes.

    Attributes:
        count: Picks made by this component; the counts of all components add up to ``policy.batch_size``.
    """

    count: int = Field(gt=0, le=limits.MAX_COUNT)


class ConstraintConfig(_Section):
    """A bound on a modelled objective that picks should satisfy (e.g. predicted defect density below a threshold).

    Attributes:
        objective: Objective the bound applies to (in its own units, whatever its goal).
        lower: Smallest acceptable value.
        upper: Largest acceptable value.
    """

    objective: str = Field(min_length=1)
    lower: float | None = None
    upper: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ConstraintConfig:
        if self.lower is None and self.upper is None:
            raise ValueError("a constraint needs a lower or an upper bound")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        return self


BUILTIN_POLICIES = (*get_args(AcquisitionKind), "composite")
"""Policy kinds sbin itself provides; any other ``kind`` names a plugin (``sbin_loop.plugins``)."""


def _policy_kind(kind: str) -> str:
    if kind in BUILTIN_POLICIES:
        return kind
    return plugins.check_installed(plugins.POLICIES, kind, BUILTIN_POLICIES)


class PolicyConfig(_AcquisitionFields):
    """Acquisition policy: one acquisition rule, or (``kind: composite``) a batch split between several.

    Every model-based rule scores the same cached ``mc_samples`` posterior draws of the pool and fills its share of
    the batch greedily, one pick at a time, given the picks already made.

    Attributes:
        kind: An acquisition rule (see ``_AcquisitionFields``), ``composite``, or the name of a policy a third-party
            package registers (``sbin_loop.plugins``).
        options: A plugin policy's own settings, passed to its factory untouched.
        components: For ``composite``: the rules and their pick counts, applied in order (e.g. 8 by
            ``expected_improvement`` on Tc, then 2 by ``uncertainty`` on a defect energy).
        constraints: Bounds on objectives; a candidate is eligible only if the joint probability that all hold,
            estimated on the posterior draws, is at least ``min_feasibility``.
        min_feasibility: Probability of feasibility a candidate needs. If fewer candidates qualify than picks are
            needed, the most probably feasible remaining candidates are eligible.
        min_distance: Batch diversity: no pick lies closer than this to an earlier pick of the same batch, in
            root-mean-square distance over pool-standardised descriptors (0 disables the penalty).
        batch_size: Candidates picked per round (q).
        mc_samples: Posterior draws (ensemble members) used to score the pool.
        shortlist: Pools with more available candidates than this are screened a chunk at a time and the batch is
            picked from each rule's top ``shortlist`` single-point values (see ``sbin_loop.policies.screening``);
            smaller pools are scored whole. 20,000 keeps the shortlist's draws at ``S x 20,000 x m`` float64 values
            (20 MB per objective for 128 draws) while staying three orders of magnitude above a batch.
    """

    kind: Annotated[str, AfterValidator(_policy_kind)] = "expected_improvement"
    options: dict[str, Any] = Field(default_factory=dict)
    components: tuple[AcquisitionConfig, ...] = ()
    constraints: tuple[ConstraintConfig, ...] = ()
    min_feasibility: float = Field(default=0.5, gt=0, le=1)
    min_distance: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=10, gt=0, le=limits.MAX_COUNT)
    mc_samples: int = Field(default=128, gt=1, le=limits.MAX_DRAWS)
    shortlist: int = Field(default=20_000, gt=0, le=limits.MAX_COUNT)

    @model_validator(mode="after")
    def _components_fill_the_batch(self) -> PolicyConfig:
        if self.options and not self.plugin:
            raise ValueError(f"options are only used by a plugin policy, not by {self.kind!r}")
        if self.kind != "composite":
            if self.components:
                raise ValueError(f"components are only used with kind 'composite', not {self.kind!r}")
            return self
        if not self.components:
            raise ValueError("kind 'composite' needs at least one component")
        total = sum(component.count for component in self.components)
        if total != self.batch_size:
            raise ValueError(f"component counts add up to {total}, but batch_size is {self.batch_size}")
        return self

    @property
    def plugin(self) -> bool:
        """Whether ``kind`` names a policy a third-party package registers (``sbin_loop.plugins``)."""
        return self.kind not in BUILTIN_POLICIES

    @property
    def acquisitions(self) -> tuple[AcquisitionConfig, ...]:
        """The rules that fill the batch, in order (a single rule makes all ``batch_size`` picks; none for a plugin)."""
        if self.plugin:
            return ()
        if self.kind == "composite":
            return self.components
        fields = self.model_dump(include={"kind", "objective", "weights", "beta"})
        return (AcquisitionConfig(**fields, count=self.batch_size),)

    @property
    def needs_model(self) -> bool:
        """Whether any pick depends on the model's posterior (everything except unconstrained random picks)."""
        return self.plugin or bool(self.constraints) or any(rule.kind != "random" for rule in self.acquisitions)


class OracleSelection(_Section):
    """Which picks of a round an oracle stage evaluates: all of them, or the best few.

    A later stage only sees the picks whose job in the stage before it completed (failed picks are never promoted).
    They are ranked in the direction of the ``rank_by`` objective's goal by the latest value an earlier stage of the
    round measured for it, else by the model's predicted mean stored with the pick; picks with neither (random picks
    of round 0 before anything measured ``rank_by``) come last. Ties keep pick order.

    Attributes:
        top_k: Evaluate only the ``top_k`` best-ranked picks; ``None`` for every pick the previous stage completed.
        rank_by: Objective that ranks the picks; the policy objective if not given.
    """

    top_k: int | None = Field(default=None, gt=0, le=limits.MAX_COUNT)
    rank_by: str | None = None


class _OracleBase(_Section):
    """Settings every oracle shares.

    Attributes:
        max_attempts: How often a failed job is tried before it is recorded as failed for good.
        poll_seconds: Pause between polls of jobs that are still running.
        timeout_seconds: A job attempt running longer than this fails with a timeout (and may be retried).
        select: Which picks of a round this oracle evaluates.
    """

    max_attempts: int = Field(default=2, gt=0, le=limits.MAX_MEMBERS)
    poll_seconds: float = Field(default=1.0, gt=0, le=limits.MAX_POLL_SECONDS)
    timeout_seconds: float = Field(default=86400.0, gt=0, le=limits.MAX_SECONDS)
    select: OracleSelection = OracleSelection()


class DatasetOracleConfig(_OracleBase):
    """Replay measured values from a table.

    Attributes:
        kind: Discriminator, ``dataset``.
        source: Table to replay; defaults to the pool's source.
        formula_column: Formula column of that table; defaults to the pool's.
        latency_seconds: Delay before an answer is available (exercises asynchronous polling).
        noise_std: Standard deviation of Gaussian noise added to replayed values (seeded).
        where: Keep only the table's rows whose columns equal these values, e.g.
            ``{is_lowest_ehull_assignment: true}`` for the physical A/B site assignment of the Emery-Wolverton table.
    """

    kind: Literal["dataset"] = "dataset"
    source: str | None = None
    formula_column: str | None = None
    latency_seconds: float = Field(default=0.0, ge=0, le=limits.MAX_SECONDS)
    noise_std: float = Field(default=0.0, ge=0)
    where: dict[str, str | float | bool] | None = None


def _maker_default(name: str) -> Callable[[], Any]:
    """Default factory of a defect setting: the value ``DefectWorkflowMaker`` uses (``workflows/defect_settings``)."""
    return partial(setting_default, name)


class SupercellConfig(_Section):
    """Site-disordered perovskite supercell built for each composition, optionally melt-quenched into a glass.

    The amorphous cell follows atomate2's MPMorph protocol with the force field: NVT runs at
    ``melt_temperature_K`` on cells strained by +-``volume_strain`` fix the equilibrium volume by a p(V) fit
    (``volume_attempts`` further runs if it lies outside), a melt of ``melt_steps`` at that volume, then a stepwise
    cooling ramp of ``quench_steps`` per ``quench_temperature_step_K`` down to ``quench_end_temperature_K``; the bulk
    relax follows, and a cell that kept ``max_long_range_order`` or more of the crystal's Bragg order fails the job.

    Attributes:
        min_atoms: Smallest number of atoms; the most compact n1 x n2 x n3 multiple of the 5-atom cubic cell with at
            least this many atoms is used (40 -> 2x2x2, 80 -> 2x2x4, 128 -> 3x3x3).
        decoration: ``random`` shuffles each sublattice; ``sqs`` additionally swaps sites to bring nearest-neighbour
            pair counts on each sublattice to their random-alloy values (special-quasirandom-like).
        sqs_steps: Swap attempts of the ``sqs`` decoration.
        lattice_parameter: Starting cubic lattice parameter in angstrom; estimated from ionic radii if not given.
        amorphous: Melt-quench the cell before the defect calculations (force field only).
        melt_temperature_K: Temperature of the volume equilibration and the melt.
        melt_steps: MD steps of the melt.
        volume_steps: MD steps of each volume-equilibration run; 0 melts at the crystal's volume.
        volume_strain: Linear strain of the first volume-equilibration runs (MPMorph uses 0.2).
        volume_attempts: Further volume runs when the fitted volume lies outside the strained ones.
        quench_end_temperature_K: The cooling ramp stops above this temperature.
        quench_temperature_step_K: Temperature drop per stage of the ramp.
        quench_steps: MD steps per stage of the ramp.
        time_step_fs: MD time step.
        max_long_range_order: Largest fraction of the crystal's Bragg order an amorphous cell may keep.
    """

    min_atoms: int = Field(default=40, ge=5, le=limits.MAX_ATOMS)
    decoration: Literal["random", "sqs"] = "sqs"
    sqs_steps: int = Field(default=2000, ge=0, le=limits.MAX_STEPS)
    lattice_parameter: float | None = Field(default=None, gt=0)
    amorphous: bool = False
    melt_temperature_K: float = Field(default=5000.0, gt=0)
    melt_steps: int = Field(default=2000, gt=0, le=limits.MAX_STEPS)
    volume_steps: int = Field(default=500, ge=0, le=limits.MAX_STEPS)
    volume_strain: float = Field(default=0.1, gt=0, lt=0.5)
    volume_attempts: int = Field(default=2, ge=0, le=100)
    quench_end_temperature_K: float = Field(default=500.0, gt=0)
    quench_temperature_step_K: float = Field(default=500.0, gt=0)
    quench_steps: int = Field(default=500, gt=0, le=limits.MAX_STEPS)
    time_step_fs: float = Field(default=2.0, gt=0, le=10.0)
    max_long_range_order: float = Field(default_factory=_maker_default("max_long_range_order"), gt=0, lt=1)

    @model_validator(mode="after")
    def _ramp_has_a_stage(self) -> SupercellConfig:
        first = self.melt_temperature_K - self.quench_temperature_step_K
        if self.amorphous and first <= self.quench_end_temperature_K:
            raise ValueError(
                f"supercell.quench_end_temperature_K ({self.quench_end_temperature_K:g}) must be below the first "
                f"cooling stage, melt_temperature_K - quench_temperature_step_K ({first:g})"
            )
        return self


class DefectConfig(_Section):
    """Defects computed in each supercell and how their energies become densities.

    The fields are passed as they are to the ``DefectWorkflowMaker`` fields of the same names, whose defaults they
    take.

    Attributes:
        vacancies: Elements whose vacancies are computed (absent elements are skipped).
        sites_per_species: Sites sampled per element among the symmetry-distinct ones (every site differs in a
            disordered cell); also the number of voids each interstitial element is placed at.
        antisites: Antisite pairs sampled (0: none): an A-site cation swapped with its nearest B-site cation of
            another element (per element pair when ``antisite_pairs`` are given).
        antisite_pairs: Element pairs ``[X, Y]`` whose sites are swapped instead of the perovskite A and B sites.
        interstitials: Elements inserted at the largest voids of the relaxed bulk (none by default).
        temperature_K: Temperature of the Boltzmann (Fermi-Dirac site-occupancy) defect densities and of the oxygen
            reservoir.
        oxygen_partial_pressure_atm: O2 partial pressure of the oxygen reservoir.
        formation_energy_bounds: Formation energies (eV) outside these bounds reject the job as implausible.
        chemical_potentials: Fixed chemical potentials (eV/atom) by element; the others come from elemental
            references computed with the same energy model (O, N, F, Cl, H from molecules in a box).
        competing_phases: Compute binary-oxide competing phases for the O-rich and O-poor limits (cached per
            element in the campaign directory by the force-field oracle).
    """

    vacancies: tuple[str, ...] = Field(default_factory=_maker_default("vacancies"))
    sites_per_species: int = Field(default_factory=_maker_default("sites_per_species"), gt=0, le=limits.MAX_ATOMS)
    antisites: int = Field(default_factory=_maker_default("antisites"), ge=0, le=limits.MAX_ATOMS)
    antisite_pairs: tuple[tuple[str, str], ...] = Field(default_factory=_maker_default("antisite_pairs"))
    interstitials: tuple[str, ...] = Field(default_factory=_maker_default("interstitials"))
    temperature_K: float = Field(default_factory=_maker_default("temperature_K"), gt=0)
    oxygen_partial_pressure_atm: float = Field(default_factory=_maker_default("oxygen_partial_pressure_atm"), gt=0)
    formation_energy_bounds: tuple[float, float] = Field(default_factory=_maker_default("formation_energy_bounds"))
    chemical_potentials: dict[str, float] = Field(default_factory=_maker_default("chemical_potentials"))
    competing_phases: bool = Field(default_factory=_maker_default("competing_phases"))


class _DefectOracleBase(_OracleBase):
    """Settings the force-field and VASP defect workflows share.

    Attributes:
        supercell: Supercell construction.
        defects: Defects and densities.
        values: Objective name -> quantity of the result (e.g. ``Ef_vac_O: Ef_vac_O_mean``, ``Ef_antisite_mean``,
            ``Ef_int_O_min``, ``log10_int_O_site_fraction``; see ``DefectWorkflowDoc.quantities``); quantities whose
            names equal an objective's name are returned without a mapping.
        seed: Seed of the decoration and site sampling (combined with each candidate's id).
    """

    supercell: SupercellConfig = SupercellConfig()
    defects: DefectConfig = Field(default_factory=DefectConfig)
    values: dict[str, str] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0, le=limits.MAX_SEED)


class ForceFieldOracleConfig(_DefectOracleBase):
    """Defect workflow with a universal machine-learned potential, run here through jobflow.

    Attributes:
        kind: Discriminator, ``forcefield``.
        force_field: atomate2 force-field name (``CHGNet`` ships its weights; others may download them).
        fmax: Force convergence of relaxations, eV/angstrom.
        max_steps: Optimiser steps per relaxation.
        workers: Jobs run at once, each in its own process.
        threads_per_worker: Torch threads per worker process.
    """

    kind: Literal["forcefield"] = "forcefield"
    force_field: str = "CHGNet"
    fmax: float = Field(default=0.05, gt=0)
    max_steps: int = Field(default=500, gt=0, le=limits.MAX_STEPS)
    workers: int = Field(default=1, gt=0, le=limits.MAX_THREADS)
    threads_per_worker: int = Field(default=1, gt=0, le=limits.MAX_THREADS)


class VaspOracleConfig(_DefectOracleBase):
    """The same defect workflow with atomate2 VASP makers (PBE), submitted to a cluster through jobflow-remote.

    Attributes:
        kind: Discriminator, ``vasp``.
        encut: Plane-wave cutoff, eV.
        incar_updates: Further INCAR settings for every calculation.
        supercell: Supercell construction; at least 128 atoms by default.
        worker: jobflow-remote worker that runs the jobs (required to submit).
        project: jobflow-remote project; its default project if not given.
    """

    kind: Literal["vasp"] = "vasp"
    encut: float = Field(default=400.0, gt=0)
    incar_updates: dict[str, str | int | float | bool] = Field(default_factory=dict)
    supercell: SupercellConfig = SupercellConfig(min_atoms=128)
    worker: str | None = None
    project: str | None = None


class SynthesisConditions(_Section):
    """Conditions a synthesis request asks for.

    Attributes:
        temperature_C: Firing temperature.
        dwell_hours: Time at temperature.
        atmosphere: Furnace atmosphere.
        batch_mmol: Amount of product per request, in millimoles of formula units.
    """

    temperature_C: float = Field(default=1000.0, gt=0)
    dwell_hours: float = Field(default=12.0, gt=0)
    atmosphere: str = "air"
    batch_mmol: float = Field(default=5.0, gt=0)


CAMPAIGN_ENTRIES = frozenset(
    {
        "campaign.json",
        "checkpoints",
        "daemon.out",
        "forcefield",
        "oracle",
        "pool",
        "report.html",
        "sbin.lock",
        "sbin.log",
        "store",
        "vasp",
    }
)
"""Entries of a campaign directory that sbin writes itself; a lab's queue directory may be none of them, nor inside."""


def queue_directory_problem(parts: tuple[str, ...]) -> str | None:
    """Why a directory (its path components, relative to the campaign directory) cannot be a lab's queue, or None.

    A lab writes into its queue directories and sbin moves what it finds there, so a queue must be a directory of its
    own: not the campaign directory, not above it, and not one of (or inside) the campaign's own entries.
    """
    if not parts:
        return "is the campaign directory itself; name a directory inside it (e.g. synthesis/inbox)"
    if ".." in parts:
        return "has a '..' component; name a directory inside the campaign directory"
    top = parts[0]
    if top in CAMPAIGN_ENTRIES or top.startswith("sbin.log."):
        return f"is (or is inside) the campaign's own {top!r}; give the lab a directory of its own (synthesis/inbox)"
    return None


class FileQueueConfig(_Section):
    """A lab served through directories: requests written to ``outbox``, results read from ``inbox``.

    The files, their schema and what survives a restart: ``sbin_loop.oracles.file_queue`` and the README.

    Attributes:
        kind: Discriminator, ``file_queue``.
        outbox: Directory requests are written to, relative to the campaign directory and inside it.
        inbox: Directory results are read from, relative to the campaign directory and inside it.
    """

    kind: Literal["file_queue"] = "file_queue"
    outbox: str = "synthesis/outbox"
    inbox: str = "synthesis/inbox"

    @field_validator("outbox", "inbox")
    @classmethod
    def _inside_the_campaign(cls, value: str) -> str:
        if PurePosixPath(value).is_absolute() or value.startswith("~"):
            raise ValueError(f"{value!r} must be relative to the campaign directory, not absolute")
        problem = queue_directory_problem(PurePosixPath(value).parts)
        if problem is not None:
            raise ValueError(f"{value!r} {problem}")
        return value

    @property
    def parts(self) -> dict[str, tuple[str, ...]]:
        """Path components of ``outbox`` and ``inbox``, by field."""
        return {"outbox": PurePosixPath(self.outbox).parts, "inbox": PurePosixPath(self.inbox).parts}


class SimulatedLabConfig(_Section):
    """A simulated lab replaying a table with noise, delays and failures (for tests and rehearsals).

    Attributes:
        kind: Discriminator, ``simulated``.
        source: Table replayed (as the pool's ``source``); the pool's source if not given.
        formula_column: Formula column of that table.
        noise_std: Standard deviation of Gaussian noise added to each measured value.
        delay_seconds: Range of the uniform random delay before a result arrives.
        failure_rate: Probability that a synthesis fails.
        seed: Seed of noise, delays and failures (combined with each request's id).
    """

    kind: Literal["simulated"] = "simulated"
    source: str | None = None
    formula_column: str = "formula"
    noise_std: float = Field(default=0.0, ge=0)
    delay_seconds: tuple[float, float] = (0.0, 0.0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int = Field(default=0, ge=0, le=limits.MAX_SEED)


class SynthesisOracleConfig(_OracleBase):
    """Robot (or human) synthesis and measurement.

    Attributes:
        kind: Discriminator, ``synthesis``.
        backend: Where requests go and results come from.
        conditions: Synthesis conditions sent with every request.
        values: Objective name -> measured quantity (``Tc_K``, ``phase_purity``); same-named ones need no mapping.
    """

    kind: Literal["synthesis"] = "synthesis"
    backend: Annotated[
        _tagged(FileQueueConfig, "file_queue") | _tagged(SimulatedLabConfig, "simulated"),
        Discriminator(_kind_or("file_queue")),
    ] = FileQueueConfig()
    conditions: SynthesisConditions = SynthesisConditions()
    values: dict[str, str] = Field(default_factory=dict)


class ManualOracleConfig(_OracleBase):
    """A scientist who measures by hand: nothing is launched, results arrive only by ``tell``.

    Attributes:
        kind: Discriminator, ``manual``.
    """

    kind: Literal["manual"] = "manual"


BUILTIN_ORACLES = ("dataset", "forcefield", "vasp", "synthesis", "manual")
"""Oracle kinds sbin itself provides; any other ``kind`` names a plugin (``sbin_loop.plugins``)."""


def _plugin_oracle(kind: str) -> str:
    return plugins.check_installed(plugins.ORACLES, kind, BUILTIN_ORACLES)


class PluginOracleConfig(_OracleBase):
    """An oracle a third-party package registers (entry point group ``sbin.oracles``).

    Attributes:
        kind: The name it is registered under.
        options: Its own settings, passed to its factory untouched (JSON values).
    """

    kind: Annotated[str, Field(min_length=1, max_length=limits.MAX_NAME_LENGTH), AfterValidator(_plugin_oracle)]
    options: dict[str, Any] = Field(default_factory=dict)


def _oracle_kind(value: object) -> str:
    kind = _kind_or("dataset")(value)
    return kind if kind in BUILTIN_ORACLES else "plugin"


OracleConfig = Annotated[
    _tagged(DatasetOracleConfig, "dataset")
    | _tagged(ForceFieldOracleConfig, "forcefield")
    | _tagged(VaspOracleConfig, "vasp")
    | _tagged(SynthesisOracleConfig, "synthesis")
    | _tagged(ManualOracleConfig, "manual")
    | _tagged(PluginOracleConfig, "plugin"),
    Discriminator(_oracle_kind),
]
"""Any oracle's settings, told apart by ``kind``."""


class InitialMeasurements(_Section):
    """Measurements one already has, told to a new campaign before round 0 (which is then model-driven).

    Attributes:
        source: CSV file (``from:`` in the YAML; relative to the config file) with a ``formula`` or
            ``candidate_id`` column, one column per objective and an optional ``status`` column (``failed`` rows are
            recorded as failures); the layout ``sbin tell`` reads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    source: str = Field(alias="from", serialization_alias="from", min_length=1, max_length=4096)


def _initial_kind(value: object) -> str:
    """``budget.initial`` is a file of measurements when it is a mapping, else a count of random picks."""
    return "measurements" if isinstance(value, dict | InitialMeasurements) else "count"


class BudgetConfig(_Section):
    """When the campaign stops: after ``rounds``, or earlier when any other criterion given is met.

    Attributes:
        initial: Candidates picked at random (seeded) in round 0, before any model exists; or ``{from: FILE}``:
            measurements one already has, so that round 0 is picked by the model (a batch of ``policy.batch_size``).
        rounds: Acquisition rounds after round 0.
        max_evaluations: Stop once this many results are stored.
        max_hours: Stop once this many hours have passed since the campaign was created.
        target: Stop once a measured value of the policy's objective reaches this (at least it when maximising,
            at most it when minimising).
    """

    initial: Annotated[
        _tagged(Annotated[int, Field(gt=1, le=limits.MAX_COUNT)], "count")
        | _tagged(InitialMeasurements, "measurements"),
        Discriminator(_initial_kind),
    ] = 20
    rounds: int = Field(default=10, ge=0, le=limits.MAX_ROUNDS)
    max_evaluations: int | None = Field(default=None, gt=0, le=limits.MAX_COUNT)
    max_hours: float | None = Field(default=None, gt=0, le=limits.MAX_HOURS)
    target: float | None = None

    @property
    def initial_count(self) -> int | None:
        """Random picks of round 0, or ``None`` when round 0 starts from measurements (``initial: {from: FILE}``)."""
        return self.initial if isinstance(self.initial, int) else None

    @property
    def initial_source(self) -> str | None:
        """The file of initial measurements, or ``None`` when round 0 is random."""
        return None if isinstance(self.initial, int) else self.initial.source


class IntervalConfig(_Section):
    """Monte Carlo intervals recomputed after each retraining.

    Attributes:
        n_draws: Posterior predictive draws per candidate.
        level: Central probability of the interval.
        top_k: How many of the best candidates get intervals stored with the round.
    """

    n_draws: int = Field(default=1000, gt=1, le=limits.MAX_DRAWS)
    level: float = Field(default=0.95, gt=0, lt=1)
    top_k: int = Field(default=5, gt=0, le=limits.MAX_COUNT)


class StoreConfig(_Section):
    """Campaign document store.

    The URI is a secret: it is shown and stored only redacted (``mongodb://user:***@host/db``), so neither the
    campaign document, the log, a report nor an error message carries its password. Connection settings are not part
    of what a campaign is: changing them (another host, a new password) does not block a resume.

    Attributes:
        uri: ``None`` for the embedded MontyStore inside the campaign directory, or a ``mongodb://`` URI.
        database: Database name.
        server_selection_timeout_ms: How long to wait for an unreachable MongoDB server before giving up.
    """

    uri: SecretStr | None = None
    database: PathComponent = "sbin"
    server_selection_timeout_ms: int = Field(default=5000, gt=0, le=600_000)

    @field_validator("uri")
    @classmethod
    def _mongo_uri(cls, uri: SecretStr | None) -> SecretStr | None:
        if uri is not None and not uri.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must be a mongodb:// or mongodb+srv:// URI, or omitted for the embedded store")
        return uri

    @field_serializer("uri", when_used="always")
    def _redacted(self, uri: SecretStr | None) -> str | None:
        return None if uri is None else self.redact(uri.get_secret_value())

    @property
    def secret_uri(self) -> str | None:
        """The URI with its credentials, for connecting only: never log, store or show it."""
        return None if self.uri is None else self.uri.get_secret_value()

    @property
    def redacted_uri(self) -> str | None:
        """The URI as it may be shown: password and query options replaced by ``***``."""
        return None if self.uri is None else self.redact(self.uri.get_secret_value())

    @staticmethod
    def redact(uri: str) -> str:
        """``uri`` with the password of its user info and its query options replaced by ``***``."""
        scheme, separator, rest = uri.partition("://")
        if not separator:
            return "***"
        address, slash, path = rest.partition("/")
        if "@" in address:
            user_info, _, hosts = address.rpartition("@")
            address = f"{user_info.split(':', 1)[0]}:***@{hosts}"
        if "?" in path:
            path = path.split("?", 1)[0] + "?***"
        elif "?" in address:
            address = address.split("?", 1)[0] + "?***"
        return f"{scheme}://{address}{slash}{path}"


class StructureFeaturesConfig(_Section):
    """Structural descriptors of relaxed cells as model inputs (``sbin_loop.features.structure_inputs``).

    When an oracle returns a relaxed structure for a candidate (the force-field and VASP defect workflows do), the
    model is trained on its partial RDFs, coordination statistics, bond angles and density beside the composition
    descriptors. Candidates without a structure have these inputs missing: imputed with the training mean and marked
    by a ``structure present`` input of 0, never filled with zeros.

    Attributes:
        enabled: Use structural descriptors once at least one result carries a structure.
        r_max: Largest distance of the partial radial distribution functions (Angstrom).
        n_bins: Bins of each partial RDF.
        angle_bins: Bins of each bond-angle histogram on 0-180 degrees.
        bond_tolerance: Neighbours within ``(1 + bond_tolerance)`` x a site group's bond length are bonded.
    """

    enabled: bool = True
    r_max: float = Field(default=6.0, gt=0, le=30)
    n_bins: int = Field(default=20, gt=0, le=limits.MAX_BINS)
    angle_bins: int = Field(default=9, gt=0, le=limits.MAX_BINS)
    bond_tolerance: float = Field(default=0.2, gt=0)


class FeaturesConfig(_Section):
    """Model inputs beyond the composition descriptors every candidate has.

    Attributes:
        structure: Structural descriptors of relaxed cells returned by oracles.
    """

    structure: StructureFeaturesConfig = StructureFeaturesConfig()


class CampaignConfig(_Section):
    """A whole campaign: what to search, what to learn, how to pick, where results come from and go.

    Attributes:
        name: Campaign name (used in documents and logs).
        seed: Master seed; every random choice of the campaign derives from it.
        space: Candidate space: a table of formulas (``kind: pool``) or an enumerated perovskite space
            (``kind: perovskite``).
        objectives: Quantities learned by the model (at least one).
        features: Model inputs beyond the composition descriptors (structural descriptors of relaxed cells).
        surrogate: The model the campaign learns with: ``bnn`` (the variational BNN of ``model``, the default),
            ``forest`` (a random forest with conformal intervals) or ``gp`` (an exact ARD GP); see
            ``sbin_loop.surrogates``. The peers ignore ``model``.
        model: BNN settings.
        policy: Acquisition policy.
        oracles: Sources of results, run as stages of each round in this order. The first oracle must evaluate every
            pick; each later one evaluates the picks its previous stage completed, or only the best few of them
            (``select.top_k`` by ``select.rank_by``). A single ``oracle:`` mapping in the YAML is read as a
            one-element list.
        budget: Stop criteria.
        intervals: Monte Carlo interval settings.
        store: Document store.
    """

    name: PathComponent
    seed: int = Field(default=0, ge=0, le=limits.MAX_SEED)
    space: SpaceConfig = PoolSpaceConfig()
    objectives: tuple[ObjectiveConfig, ...] = Field(min_length=1)
    features: FeaturesConfig = FeaturesConfig()
    surrogate: Literal["bnn", "forest", "gp"] = "bnn"
    model: ModelConfig = ModelConfig()
    policy: PolicyConfig = PolicyConfig()
    oracles: tuple[OracleConfig, ...] = (DatasetOracleConfig(),)
    budget: BudgetConfig = BudgetConfig()
    intervals: IntervalConfig = IntervalConfig()
    store: StoreConfig = StoreConfig()

    @model_validator(mode="before")
    @classmethod
    def _single_oracle_shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "oracle" in data:
            if "oracles" in data:
                raise ValueError("give either oracle (one) or oracles (a list), not both")
            data["oracles"] = [data.pop("oracle")]
        return data

    @model_validator(mode="after")
    def _oracles_consistent(self) -> CampaignConfig:
        names = {objective.name for objective in self.objectives}
        if not self.oracles or self.oracles[0].select.top_k is not None:
            raise ValueError("oracles: the first oracle must evaluate every pick (no select.top_k)")
        if len(self.oracles) > 1 and any(isinstance(oracle, ManualOracleConfig) for oracle in self.oracles):
            raise ValueError("oracles: a manual oracle (results told by hand) must be the campaign's only oracle")
        for position, oracle in enumerate(self.oracles):
            unknown = sorted(set(getattr(oracle, "values", {})) - names)
            if unknown:
                raise ValueError(f"oracles.{position}.values: {unknown} are not objectives {sorted(names)}")
            if oracle.select.rank_by is not None and oracle.select.rank_by not in names:
                raise ValueError(f"oracles.{position}.select.rank_by: {oracle.select.rank_by!r} is not an objective")
        self._own_queue_directories()
        return self

    def _own_queue_directories(self) -> None:
        """Every queue directory is its own: two sharing one, or one inside another, would take each other's files."""
        used: list[tuple[tuple[str, ...], str]] = []
        for position, oracle in enumerate(self.oracles):
            if not isinstance(oracle, SynthesisOracleConfig) or not isinstance(oracle.backend, FileQueueConfig):
                continue
            for field, parts in oracle.backend.parts.items():
                where, directory = f"oracles.{position}.backend.{field}", "/".join(parts)
                for other_parts, other in used:
                    if parts == other_parts:
                        raise ValueError(f"{where}: {directory!r} is also {other}; give each lab its own")
                    if parts[: len(other_parts)] == other_parts or other_parts[: len(parts)] == parts:
                        raise ValueError(f"{where}: {directory!r} and {other} are nested; give each its own directory")
                used.append((parts, where))

    @property
    def oracle(self) -> OracleConfig:
        """The primary oracle: the one that evaluates every pick."""
        return self.oracles[0]

    @property
    def manual(self) -> bool:
        """Whether results arrive only by ``tell`` (``oracle: {kind: manual}``)."""
        return isinstance(self.oracle, ManualOracleConfig)

    @model_validator(mode="after")
    def _policy_objective_exists(self) -> CampaignConfig:
        names = [objective.name for objective in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives: names must be unique, got {names}")
        rules = [("policy", self.policy)]
        rules += [(f"policy.components.{i}", component) for i, component in enumerate(self.policy.components)]
        used = [(f"{where}.{rule.target_field}", name) for where, rule in rules for name in rule.objective_names()]
        used += [(f"policy.constraints.{i}.objective", c.objective) for i, c in enumerate(self.policy.constraints)]
        for where, name in used:
            if name not in names:
                raise ValueError(f"{where}: {name!r} is not one of the objectives {names}")
        return self

    @property
    def policy_objective(self) -> ObjectiveConfig:
        """The objective the acquisition policy acts on."""
        name = self.policy.objective or self.objectives[0].name
        return next(objective for objective in self.objectives if objective.name == name)


def _format_errors(error: ValidationError, single_oracle: bool = False) -> str:
    lines = []
    for item in error.errors():
        loc = item["loc"]
        if single_oracle and loc[:2] == ("oracles", 0):
            loc = ("oracle", *loc[2:])  # name the field as the user wrote it
        field = ".".join(str(part) for part in loc if part not in _UNION_TAGS) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check spelling)"
        value = _shorten(_without_passwords(reprlib.repr(_scrubbed(item.get("input")))))
        lines.append(f"  {field}: {_shorten(_without_passwords(message), 4 * limits.MAX_ERROR_VALUE)} (got {value})")
    if len(lines) > limits.MAX_ERROR_LINES:
        lines[limits.MAX_ERROR_LINES :] = [f"  ... and {len(lines) - limits.MAX_ERROR_LINES} more errors"]
    return "\n".join(lines)


_PASSWORD_IN_URI = re.compile(r"(://[^:/@\s'\"]*):[^@\s'\"]*@")
"""The password of a ``scheme://user:password@host`` address inside any text."""


def _without_passwords(text: str) -> str:
    """``text`` with the password of every address in it replaced by ``***``: errors never echo a credential."""
    return _PASSWORD_IN_URI.sub(r"\1:***@", text)


def _scrubbed(value: object) -> object:
    """``value`` with ``_without_passwords`` applied to every string in it, before a repr could cut one apart."""
    if isinstance(value, str):
        return _without_passwords(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item) for item in value]
    return value


def _shorten(text: str, limit: int = limits.MAX_ERROR_VALUE) -> str:
    """``text``, cut to ``limit`` characters with ``...`` if longer (an error must not echo a huge value)."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def parse_config(data: object, origin: str = "config") -> CampaignConfig:
    """Validate a mapping as a campaign config.

    Args:
        data: The parsed YAML (or an equivalent dict).
        origin: Where the data came from, for the error message.

    Raises:
        ConfigError: Naming every invalid field and why.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a campaign config must be a mapping of sections, got {type(data).__name__}")
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as error:
        single_oracle = "oracle" in data and "oracles" not in data
        raise ConfigError(f"{origin}: invalid campaign config\n{_format_errors(error, single_oracle)}") from None


def load_config(path: str | Path) -> tuple[CampaignConfig, Path]:
    """Read and validate a campaign YAML file.

    Args:
        path: The YAML file.

    Returns:
        The validated config and the directory relative paths in it are resolved against.

    Raises:
        ConfigError: If the file is missing, is not YAML, passes a limit of ``sbin_loop.yaml_safe`` (size, alias
            expansion, nesting), or any field is invalid.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = load_yaml(path)
    except YamlLimitError as error:
        raise ConfigError(f"{path}: {_shorten(str(error), 300)}") from None
    return parse_config(data, origin=str(path)), path.resolve().parent

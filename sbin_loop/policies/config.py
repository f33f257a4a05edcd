"""Settings of the acquisition policy: its rules, their batch shares, constraints, and plugin policy kinds."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from sbin_loop import limits, plugins
from sbin_loop.config_base import Section

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


class AcquisitionFields(Section):
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
    def _one_target(self) -> AcquisitionFields:
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


class AcquisitionConfig(AcquisitionFields):
    """One component of a composite policy: an acquisition rule and how many picks of the batch it makes.

    Attributes:
        count: Picks made by this component; the counts of all components add up to ``policy.batch_size``.
    """

    count: int = Field(gt=0, le=limits.MAX_COUNT)


class ConstraintConfig(Section):
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


class PolicyConfig(AcquisitionFields):
    """Acquisition policy: one acquisition rule, or (``kind: composite``) a batch split between several.

    Every model-based rule scores the same cached ``mc_samples`` posterior draws of the pool and fills its share of
    the batch greedily, one pick at a time, given the picks already made.

    Attributes:
        kind: An acquisition rule (see ``AcquisitionFields``), ``composite``, or the name of a policy a third-party
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

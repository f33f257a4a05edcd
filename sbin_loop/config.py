"""Campaign configuration: the YAML file a user writes, validated field by field.

Every section is a pydantic model with ``extra="forbid"`` so that a misspelt key is an error naming the key, not a
silently ignored setting. ``load_config`` turns pydantic's errors into one message listing each bad field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A campaign config that cannot be used; the message names each offending field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolSpaceConfig(_Section):
    """Candidates read from a table of formulas.

    Attributes:
        kind: Discriminator; ``pool`` for a table of formulas.
        source: ``bundled:NAME`` for a table shipped with sbin, or a CSV path (relative paths are taken relative to the
            config file).
        formula_column: Column holding the chemical formulas.
        sample: If set, a seeded random subset of this many unique compositions forms the pool.
    """

    kind: Literal["pool"] = "pool"
    source: str = "bundled:supercon"
    formula_column: str = "formula"
    sample: int | None = Field(default=None, gt=0)


class ObjectiveConfig(_Section):
    """One quantity the model learns and the campaign optimises or explores.

    Attributes:
        name: Name of the quantity; also the column the dataset oracle reads unless ``column`` is given.
        column: Column in the oracle's table that holds the measured value.
        goal: ``maximize`` or ``minimize`` the quantity.
        transform: ``log1p`` models log(1 + y) (for non-negative, skewed targets such as Tc); ``none`` models y.
        unit: Unit shown in logs and reports.
    """

    name: str = Field(min_length=1)
    column: str | None = None
    goal: Literal["maximize", "minimize"] = "maximize"
    transform: Literal["none", "log1p"] = "none"
    unit: str = ""

    @property
    def data_column(self) -> str:
        """Column in the oracle's table holding this objective."""
        return self.column or self.name


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
        kl_weight: Weight of the KL term in the ELBO (1 is the proper ELBO; below 1 tempers the posterior).
        learning_rate: Adam learning rate.
        batch_size: Minibatch size.
        epochs: Passes over the training data.
        min_steps: Lower bound on optimiser steps, so tiny training sets are still fitted.
        max_steps: Upper bound on optimiser steps per ensemble member, so large training sets stay within a time
            budget.
        noise: ``homoscedastic``: one learned noise level per output; ``heteroscedastic``: the network predicts a
            noise level per input and output.
        nll_beta: Exponent of the beta-NLL weighting of the training likelihood (0: plain NLL; 0.5 helps a
            heteroscedastic model fit the mean where it predicts large noise).
        ensemble_size: Independently initialised variational networks; the posterior is their equal-weight mixture.
        validation_fraction: Share of the training rows held out (never used for gradient steps) for early stopping
            and for recalibrating the predictive spread.
        min_validation_rows: Below this many held-out rows no validation split is made: all rows train the network,
            training runs its full length and the spread is not recalibrated.
        validation_interval: Optimiser steps between two validation checks.
        patience: Validation checks without improvement before training stops; the best checkpoint is kept.
        input_clip: Standardised descriptors are clipped to ``[-input_clip, input_clip]``. A descriptor that is
            almost constant in the training data (an element fraction seen in one composition) otherwise standardises
            to huge values for new candidates, and a ReLU network extrapolates linearly from them.
        recalibrate: Fit one factor per output on the validation rows that scales the predictive spread so that
            central intervals have their nominal coverage.
    """

    hidden: tuple[int, ...] = (64, 128, 64)
    prior_std: float = Field(default=1.0, gt=0)
    posterior_std_init: float = Field(default=1e-2, gt=0)
    fan_in_scaling: bool = True
    kl_weight: float = Field(default=0.01, ge=0)
    learning_rate: float = Field(default=3e-3, gt=0)
    batch_size: int = Field(default=128, gt=0)
    epochs: int = Field(default=200, gt=0)
    min_steps: int = Field(default=1500, ge=0)
    max_steps: int = Field(default=20000, gt=0)
    noise: Literal["homoscedastic", "heteroscedastic"] = "heteroscedastic"
    nll_beta: float = Field(default=0.5, ge=0, le=1)
    ensemble_size: int = Field(default=3, gt=0)
    validation_fraction: float = Field(default=0.15, ge=0, lt=1)
    min_validation_rows: int = Field(default=30, gt=1)
    validation_interval: int = Field(default=200, gt=0)
    patience: int = Field(default=10, gt=0)
    input_clip: float = Field(default=10.0, gt=0)
    recalibrate: bool = True

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, hidden: tuple[int, ...]) -> tuple[int, ...]:
        if not hidden or any(width <= 0 for width in hidden):
            raise ValueError("hidden layer widths must be a non-empty list of positive integers")
        return hidden


class PolicyConfig(_Section):
    """Acquisition policy.

    Attributes:
        kind: ``expected_improvement`` (BoTorch qLogEI, batch chosen greedily on cached posterior samples) or
            ``random``.
        objective: Name of the objective the policy acts on; the first objective if not given.
        batch_size: Candidates picked per round (q).
        mc_samples: Posterior draws (ensemble members) used to score the pool.
    """

    kind: Literal["expected_improvement", "random"] = "expected_improvement"
    objective: str | None = None
    batch_size: int = Field(default=10, gt=0)
    mc_samples: int = Field(default=128, gt=1)


class OracleConfig(_Section):
    """Where results come from.

    Attributes:
        kind: ``dataset``: replay measured values from a table.
        source: Table to replay; defaults to the pool's source.
        formula_column: Formula column of that table; defaults to the pool's.
        max_attempts: How often a failed job is tried before it is recorded as failed for good.
        poll_seconds: Pause between polls of jobs that are still running.
        timeout_seconds: A job attempt running longer than this fails with a timeout (and may be retried).
        latency_seconds: Dataset replay only: delay before an answer is available (exercises asynchronous polling).
        noise_std: Dataset replay only: standard deviation of Gaussian noise added to replayed values (seeded).
    """

    kind: Literal["dataset"] = "dataset"
    source: str | None = None
    formula_column: str | None = None
    max_attempts: int = Field(default=2, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    timeout_seconds: float = Field(default=86400.0, gt=0)
    latency_seconds: float = Field(default=0.0, ge=0)
    noise_std: float = Field(default=0.0, ge=0)


class BudgetConfig(_Section):
    """When the campaign stops: after ``rounds``, or earlier when any other criterion given is met.

    Attributes:
        initial: Candidates picked at random (seeded) in round 0, before any model exists.
        rounds: Acquisition rounds after round 0.
        max_evaluations: Stop once this many results are stored.
        max_hours: Stop once this many hours have passed since the campaign was created.
        target: Stop once a measured value of the policy's objective reaches this (at least it when maximising,
            at most it when minimising).
    """

    initial: int = Field(default=20, gt=1)
    rounds: int = Field(default=10, ge=0)
    max_evaluations: int | None = Field(default=None, gt=0)
    max_hours: float | None = Field(default=None, gt=0)
    target: float | None = None


class IntervalConfig(_Section):
    """Monte Carlo intervals recomputed after each retraining.

    Attributes:
        n_draws: Posterior predictive draws per candidate.
        level: Central probability of the interval.
        top_k: How many of the best candidates get intervals stored with the round.
    """

    n_draws: int = Field(default=1000, gt=1)
    level: float = Field(default=0.95, gt=0, lt=1)
    top_k: int = Field(default=5, gt=0)


class StoreConfig(_Section):
    """Campaign document store.

    Attributes:
        uri: ``None`` for the embedded MontyStore inside the campaign directory, or a ``mongodb://`` URI.
        database: Database name.
    """

    uri: str | None = None
    database: str = "sbin"

    @field_validator("uri")
    @classmethod
    def _mongo_uri(cls, uri: str | None) -> str | None:
        if uri is not None and not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must be a mongodb:// or mongodb+srv:// URI, or omitted for the embedded store")
        return uri


class CampaignConfig(_Section):
    """A whole campaign: what to search, what to learn, how to pick, where results come from and go.

    Attributes:
        name: Campaign name (used in documents and logs).
        seed: Master seed; every random choice of the campaign derives from it.
        space: Candidate space.
        objectives: Quantities learned by the model (at least one).
        model: Surrogate model settings.
        policy: Acquisition policy.
        oracle: Source of results.
        budget: Stop criteria.
        intervals: Monte Carlo interval settings.
        store: Document store.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(default=0, ge=0)
    space: PoolSpaceConfig = PoolSpaceConfig()
    objectives: tuple[ObjectiveConfig, ...] = Field(min_length=1)
    model: ModelConfig = ModelConfig()
    policy: PolicyConfig = PolicyConfig()
    oracle: OracleConfig = OracleConfig()
    budget: BudgetConfig = BudgetConfig()
    intervals: IntervalConfig = IntervalConfig()
    store: StoreConfig = StoreConfig()

    @model_validator(mode="after")
    def _policy_objective_exists(self) -> CampaignConfig:
        names = [objective.name for objective in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives: names must be unique, got {names}")
        if self.policy.objective is not None and self.policy.objective not in names:
            raise ValueError(f"policy.objective: {self.policy.objective!r} is not one of the objectives {names}")
        return self

    @property
    def policy_objective(self) -> ObjectiveConfig:
        """The objective the acquisition policy acts on."""
        name = self.policy.objective or self.objectives[0].name
        return next(objective for objective in self.objectives if objective.name == name)


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check spelling)"
        lines.append(f"  {field}: {message} (got {item.get('input')!r})")
    return "\n".join(lines)


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
        raise ConfigError(f"{origin}: invalid campaign config\n{_format_errors(error)}") from None


def load_config(path: str | Path) -> tuple[CampaignConfig, Path]:
    """Read and validate a campaign YAML file.

    Args:
        path: The YAML file.

    Returns:
        The validated config and the directory relative paths in it are resolved against.

    Raises:
        ConfigError: If the file is missing, is not YAML, or any field is invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_config(data, origin=str(path)), path.resolve().parent

"""Campaign configuration: the YAML file a user writes, validated field by field.

``CampaignConfig`` is the whole campaign; each subsystem's section is defined beside the subsystem
(``sbin_loop.model.config``, ``sbin_loop.policies.config``, ``sbin_loop.oracles.config``, ``sbin_loop.space.config``,
``sbin_loop.stores.config``, ``sbin_loop.features.config``, ``sbin_loop.workflows.config``) and re-exported here.
Every section is a pydantic model with ``extra="forbid"`` so that a misspelt key is an error naming the key, not a
silently ignored setting. ``load_config`` turns pydantic's errors into one message listing each bad field.
"""

from __future__ import annotations

import math
import re
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Discriminator, Field, ValidationError, field_validator, model_validator

from sbin_loop import limits
from sbin_loop.config_base import UNION_TAGS, Bounds, PathComponent, Section, tagged
from sbin_loop.features.config import FeaturesConfig, StructureFeaturesConfig, stored_features_config
from sbin_loop.model.config import IntervalConfig, ModelConfig, stored_model_config
from sbin_loop.oracles.config import (
    DatasetOracleConfig,
    FileQueueConfig,
    ForceFieldOracleConfig,
    ManualOracleConfig,
    OracleConfig,
    OracleSelection,
    PluginOracleConfig,
    SimulatedLabConfig,
    SynthesisConditions,
    SynthesisOracleConfig,
    VaspOracleConfig,
)
from sbin_loop.policies.config import AcquisitionConfig, ConstraintConfig, PolicyConfig
from sbin_loop.space.config import (
    PerovskiteRulesConfig,
    PerovskiteSpaceConfig,
    PoolPerovskiteFilter,
    PoolSpaceConfig,
    SpaceConfig,
)
from sbin_loop.stores.config import StoreConfig
from sbin_loop.surrogates.config import surrogate_kind
from sbin_loop.workflows.config import DefectConfig, SupercellConfig
from sbin_loop.yaml_safe import YamlLimitError, load_yaml

__all__ = [
    "AcquisitionConfig",
    "BudgetConfig",
    "CampaignConfig",
    "ConfigError",
    "ConstraintConfig",
    "DatasetOracleConfig",
    "DefectConfig",
    "FeaturesConfig",
    "FileQueueConfig",
    "ForceFieldOracleConfig",
    "InitialMeasurements",
    "IntervalConfig",
    "ManualOracleConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OracleConfig",
    "OracleSelection",
    "PerovskiteRulesConfig",
    "PerovskiteSpaceConfig",
    "PluginOracleConfig",
    "PolicyConfig",
    "PoolPerovskiteFilter",
    "PoolSpaceConfig",
    "SimulatedLabConfig",
    "SpaceConfig",
    "StoreConfig",
    "StructureFeaturesConfig",
    "SupercellConfig",
    "SynthesisConditions",
    "SynthesisOracleConfig",
    "VaspOracleConfig",
    "load_config",
    "parse_config",
]


class ConfigError(ValueError):
    """A campaign config that cannot be used; the message names each offending field."""


class ObjectiveConfig(Section):
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


class InitialMeasurements(Section):
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


class BudgetConfig(Section):
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
        tagged(Annotated[int, Field(gt=1, le=limits.MAX_COUNT)], "count") | tagged(InitialMeasurements, "measurements"),
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


class CampaignConfig(Section):
    """A whole campaign: what to search, what to learn, how to pick, where results come from and go.

    Attributes:
        name: Campaign name (used in documents and logs).
        seed: Master seed; every random choice of the campaign derives from it.
        space: Candidate space: a table of formulas (``kind: pool``) or an enumerated perovskite space
            (``kind: perovskite``).
        objectives: Quantities learned by the model (at least one).
        features: Model inputs beyond the composition descriptors (structural descriptors of relaxed cells).
        surrogate: The model the campaign learns with: ``bnn`` (the variational BNN of ``model``, the default),
            ``forest`` (a random forest with conformal intervals), ``gp`` (an exact ARD GP), or the name of a
            surrogate a third-party package registers (entry point group ``sbin.surrogates``); see
            ``sbin_loop.surrogates``. Surrogates other than ``bnn`` ignore ``model``.
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
    surrogate: Annotated[
        str, Field(min_length=1, max_length=limits.MAX_NAME_LENGTH), AfterValidator(surrogate_kind)
    ] = "bnn"
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
        field = ".".join(str(part) for part in loc if part not in UNION_TAGS) or "(top level)"
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


def stored_campaign_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A campaign config as stored when the campaign started, read by this sbin.

    Its ``model`` and ``features`` sections get the legacy values of the settings they lack
    (``stored_model_config``, ``stored_features_config``), so a default that sbin changed since does not change the
    model or the inputs of a running campaign.
    """
    stored = dict(stored)
    if isinstance(stored.get("model"), dict):
        stored["model"] = stored_model_config(stored["model"])
    features = stored.get("features")
    if features is None or isinstance(features, dict):
        stored["features"] = stored_features_config(features)
    return stored


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

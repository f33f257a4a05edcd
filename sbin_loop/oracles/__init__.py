"""Oracles: where the values of picked candidates come from.

Each oracle kind has a factory, found by name: sbin's own in ``ORACLE_FACTORIES``, any other kind among the
``sbin.oracles`` entry points of installed packages (``sbin_loop.plugins``).

``build_oracles`` makes every configured oracle as an ``OracleStage``: the oracle with the selection of a round's picks
it evaluates and its retry, polling and timeout settings. The campaign loop runs the stages of a round in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sbin_loop import plugins
from sbin_loop.config import (
    CampaignConfig,
    ConfigError,
    DatasetOracleConfig,
    ForceFieldOracleConfig,
    ManualOracleConfig,
    OracleSelection,
    SynthesisOracleConfig,
    VaspOracleConfig,
)
from sbin_loop.oracles.base import JobRequest, Oracle, OracleOutcome, checked_outcome, rename_values
from sbin_loop.oracles.dataset import DatasetReplayOracle
from sbin_loop.space import FormulaTable, read_formula_table

__all__ = [
    "DatasetReplayOracle",
    "JobRequest",
    "Oracle",
    "OracleContext",
    "OracleFactory",
    "OracleOutcome",
    "OracleStage",
    "build_oracles",
    "checked_outcome",
    "dataset_table",
    "oracle_factory",
    "rename_values",
]


@dataclass(frozen=True)
class OracleStage:
    """A configured oracle and which picks of a round it evaluates.

    Attributes:
        oracle: The oracle.
        select: ``top_k`` / ``rank_by`` (``top_k`` ``None``: every pick).
        max_attempts: Tries per job before it is recorded as failed.
        poll_seconds: Pause between polls.
        timeout_seconds: A job attempt running longer than this fails (and may be retried).
    """

    oracle: Oracle
    select: OracleSelection
    max_attempts: int
    poll_seconds: float
    timeout_seconds: float


def _objective_columns(config: CampaignConfig) -> dict[str, str]:
    return {objective.name: objective.data_column for objective in config.objectives}


def dataset_table(settings: DatasetOracleConfig, config: CampaignConfig, base_dir: Path) -> FormulaTable:
    """The table a dataset oracle replays: its own source, or the pool's, with ``where`` applied.

    Raises:
        ConfigError: If neither the oracle nor the space names a table.
    """
    source = settings.source or getattr(config.space, "source", None)
    if source is None:
        raise ConfigError("oracle.source: required for a dataset oracle when the space is not a pool of formulas")
    return read_formula_table(
        source,
        settings.formula_column or getattr(config.space, "formula_column", "formula"),
        value_columns=tuple(_objective_columns(config).values()),
        base_dir=base_dir,
        where=settings.where,
    )


@dataclass(frozen=True)
class OracleContext:
    """What an oracle factory gets besides its own settings.

    Attributes:
        config: The campaign config.
        base_dir: Directory relative paths in the config are resolved against.
        work_dir: Campaign directory; an oracle keeps its job directories, queues and ledgers under it.
        position: Index of the oracle's stage in ``config.oracles``.
        table: For a primary dataset oracle, its table if the caller has already read it.
    """

    config: CampaignConfig
    base_dir: Path
    work_dir: Path
    position: int = 0
    table: FormulaTable | None = None


OracleFactory = Callable[[Any, OracleContext], Oracle]
"""Makes an oracle from its config section and the context; plugins register one under their kind."""


def _dataset(settings: DatasetOracleConfig, context: OracleContext) -> Oracle:
    config = context.config
    return DatasetReplayOracle(
        context.table if context.table is not None else dataset_table(settings, config, context.base_dir),
        _objective_columns(config),
        ledger=context.work_dir / "oracle" / "dataset_ledger.jsonl",
        latency_seconds=settings.latency_seconds,
        noise_std=settings.noise_std,
        seed=config.seed,
    )


def _manual(settings: ManualOracleConfig, context: OracleContext) -> Oracle:
    from sbin_loop.oracles.manual import ManualOracle

    return ManualOracle()


def _forcefield(settings: ForceFieldOracleConfig, context: OracleContext) -> Oracle:
    from sbin_loop.oracles.forcefield import forcefield_oracle

    return forcefield_oracle(settings, context.work_dir / "forcefield")


def _vasp(settings: VaspOracleConfig, context: OracleContext) -> Oracle:
    from sbin_loop.oracles.vasp import VaspDefectOracle

    return VaspDefectOracle(settings, context.work_dir / "vasp" / "submitted.jsonl")


def _synthesis(settings: SynthesisOracleConfig, context: OracleContext) -> Oracle:
    from sbin_loop.oracles.file_queue import campaign_file_queue
    from sbin_loop.oracles.synthesis import SimulatedLab, SynthesisOracle

    config, backend = context.config, settings.backend
    if backend.kind == "file_queue":
        lab = campaign_file_queue(context.work_dir, backend, f"oracles.{context.position}.backend")
    else:
        measured = {name: name for name in settings.values.values()} or _objective_columns(config)
        measured.pop("phase_purity", None)
        source = backend.source or getattr(config.space, "source", None)
        if source is None:
            raise ConfigError("oracle.backend.source: required for a simulated lab when the space is not a pool")
        table = read_formula_table(
            source,
            backend.formula_column,
            value_columns=tuple(measured.values()),
            base_dir=context.base_dir,
        )
        lab = SimulatedLab(table, measured, backend)
    return SynthesisOracle(lab, settings.conditions, settings.values)


ORACLE_FACTORIES: dict[str, OracleFactory] = {
    "dataset": _dataset,
    "forcefield": _forcefield,
    "vasp": _vasp,
    "synthesis": _synthesis,
    "manual": _manual,
}
"""sbin's own oracles by kind; other kinds are looked up among the ``sbin.oracles`` entry points."""


def oracle_factory(kind: str) -> OracleFactory:
    """The factory of an oracle kind: sbin's own, else the plugin registered under it (``sbin_loop.plugins``)."""
    return ORACLE_FACTORIES.get(kind) or plugins.load(plugins.ORACLES, kind)


def build_oracles(
    config: CampaignConfig, base_dir: Path, work_dir: Path, table: FormulaTable | None = None
) -> list[OracleStage]:
    """Every oracle of a campaign as a stage, in config order (the first evaluates every pick).

    Dataset oracles of all stages share one submission ledger (``oracle/dataset_ledger.jsonl``); their job ids differ
    by stage, so their entries never collide.

    Args:
        config: The campaign config.
        base_dir: Directory relative paths in the config are resolved against.
        work_dir: Campaign directory; oracles keep job directories, queues and stores under it.
        table: For a primary (first) dataset oracle, its table if the caller has already read it (``dataset_table``).
    """
    return [
        OracleStage(
            oracle_factory(settings.kind)(
                settings, OracleContext(config, base_dir, work_dir, position, table if position == 0 else None)
            ),
            settings.select,
            settings.max_attempts,
            settings.poll_seconds,
            settings.timeout_seconds,
        )
        for position, settings in enumerate(config.oracles)
    ]

"""Oracle factories found by name, and the configured oracles of a campaign built as stages.

Each oracle kind has a factory: sbin's own in ``ORACLE_FACTORIES``, any other kind among the ``sbin.oracles`` entry
points of installed packages (``sbin_loop.plugins``).

``build_oracles`` makes every configured oracle as an ``OracleStage``: the oracle with the selection of a round's picks
it evaluates and its retry, polling and timeout settings. The campaign loop runs the stages of a round in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sbin_loop import plugins
from sbin_loop.config import CampaignConfig, ConfigError
from sbin_loop.oracles.base import Oracle
from sbin_loop.oracles.config import (
    DatasetOracleConfig,
    ForceFieldOracleConfig,
    ManualOracleConfig,
    OracleSelection,
    SynthesisOracleConfig,
    VaspOracleConfig,
)
from sbin_loop.oracles.dataset import DatasetReplayOracle
from sbin_loop.oracles.outputs import OracleOutput, declared_outputs
from sbin_loop.space import FormulaTable, read_formula_table, resolve_source

__all__ = [
    "ORACLE_FACTORIES",
    "OracleContext",
    "OracleFactory",
    "OracleStage",
    "build_oracles",
    "computed_elsewhere",
    "dataset_table",
    "oracle_factory",
    "replayed_columns",
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
        outputs: What the oracle declares it produces (``declared_outputs``).
    """

    oracle: Oracle
    select: OracleSelection
    max_attempts: int
    poll_seconds: float
    timeout_seconds: float
    outputs: tuple[OracleOutput, ...] = ()


def _objective_columns(config: CampaignConfig) -> dict[str, str]:
    return {objective.name: objective.data_column for objective in config.objectives}


def computed_elsewhere(config: CampaignConfig, position: int) -> set[str]:
    """Objectives that an oracle stage other than ``position`` and other than a dataset replay declares it produces."""
    return {
        output.objective
        for stage, settings in enumerate(config.oracles)
        if stage != position and not isinstance(settings, DatasetOracleConfig)
        for output in declared_outputs(settings, config.objectives)
        if output.objective is not None
    }


def _table_header(path: Path) -> set[str] | None:
    try:
        return set(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        return None  # ``read_formula_table`` reports the unreadable file


def replayed_columns(
    settings: DatasetOracleConfig, config: CampaignConfig, base_dir: Path | None, position: int
) -> dict[str, str]:
    """Objective name -> column of the objectives a dataset stage replays.

    Every objective whose column its table has. An objective whose column is missing is left to the stage that
    computes it (a defect workflow's ``Ef_vac_O`` beside a replayed ``Tc_K``); one no other stage produces stays, so
    reading the table names the missing column.
    """
    columns = _objective_columns(config)
    header = _table_header(resolve_source(_source(settings, config), base_dir))
    if header is None:
        return columns
    elsewhere = computed_elsewhere(config, position)
    return {name: column for name, column in columns.items() if column in header or name not in elsewhere}


def _source(settings: DatasetOracleConfig, config: CampaignConfig) -> str:
    source = settings.source or getattr(config.space, "source", None)
    if source is None:
        raise ConfigError("oracle.source: required for a dataset oracle when the space is not a pool of formulas")
    return source


def dataset_table(
    settings: DatasetOracleConfig, config: CampaignConfig, base_dir: Path, position: int = 0
) -> FormulaTable:
    """The table a dataset oracle (stage ``position``) replays: its own source, or the pool's, with ``where`` applied.

    Raises:
        ConfigError: If neither the oracle nor the space names a table.
    """
    return read_formula_table(
        _source(settings, config),
        settings.formula_column or getattr(config.space, "formula_column", "formula"),
        value_columns=tuple(replayed_columns(settings, config, base_dir, position).values()),
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
        context.table
        if context.table is not None
        else dataset_table(settings, config, context.base_dir, context.position),
        replayed_columns(settings, config, context.base_dir, context.position),
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
            tuple(declared_outputs(settings, config.objectives)),
        )
        for position, settings in enumerate(config.oracles)
    ]

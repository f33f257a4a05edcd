"""Settings of every oracle kind, told apart by ``kind``: sbin's own and those third-party packages register.

The defect and synthesis sections are defined in ``config_defects`` and ``config_synthesis``; every oracle section
can be imported from here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field

from sbin_loop import limits, plugins
from sbin_loop.config_base import kind_or, tagged
from sbin_loop.oracles.config_base import OracleBase, OracleSelection
from sbin_loop.oracles.config_defects import DefectOracleBase, ForceFieldOracleConfig, VaspOracleConfig
from sbin_loop.oracles.config_synthesis import (
    CAMPAIGN_ENTRIES,
    FileQueueConfig,
    SimulatedLabConfig,
    SynthesisConditions,
    SynthesisOracleConfig,
    queue_directory_problem,
)

__all__ = [
    "BUILTIN_ORACLES",
    "CAMPAIGN_ENTRIES",
    "DatasetOracleConfig",
    "DefectOracleBase",
    "FileQueueConfig",
    "ForceFieldOracleConfig",
    "ManualOracleConfig",
    "OracleBase",
    "OracleConfig",
    "OracleSelection",
    "PluginOracleConfig",
    "SimulatedLabConfig",
    "SynthesisConditions",
    "SynthesisOracleConfig",
    "VaspOracleConfig",
    "queue_directory_problem",
]


class DatasetOracleConfig(OracleBase):
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


class ManualOracleConfig(OracleBase):
    """A scientist who measures by hand: nothing is launched, results arrive only by ``tell``.

    Attributes:
        kind: Discriminator, ``manual``.
    """

    kind: Literal["manual"] = "manual"


BUILTIN_ORACLES = ("dataset", "forcefield", "vasp", "synthesis", "manual")
"""Oracle kinds sbin itself provides; any other ``kind`` names a plugin (``sbin_loop.plugins``)."""


def _plugin_oracle(kind: str) -> str:
    return plugins.check_installed(plugins.ORACLES, kind, BUILTIN_ORACLES)


class PluginOracleConfig(OracleBase):
    """An oracle a third-party package registers (entry point group ``sbin.oracles``).

    Attributes:
        kind: The name it is registered under.
        options: Its own settings, passed to its factory untouched (JSON values).
    """

    kind: Annotated[str, Field(min_length=1, max_length=limits.MAX_NAME_LENGTH), AfterValidator(_plugin_oracle)]
    options: dict[str, Any] = Field(default_factory=dict)


def _oracle_kind(value: object) -> str:
    kind = kind_or("dataset")(value)
    return kind if kind in BUILTIN_ORACLES else "plugin"


OracleConfig = Annotated[
    tagged(DatasetOracleConfig, "dataset")
    | tagged(ForceFieldOracleConfig, "forcefield")
    | tagged(VaspOracleConfig, "vasp")
    | tagged(SynthesisOracleConfig, "synthesis")
    | tagged(ManualOracleConfig, "manual")
    | tagged(PluginOracleConfig, "plugin"),
    Discriminator(_oracle_kind),
]
"""Any oracle's settings, told apart by ``kind``."""

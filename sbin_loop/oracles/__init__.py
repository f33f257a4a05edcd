"""Oracles: where the values of picked candidates come from.

Each oracle kind has a factory, found by name: sbin's own, and any other kind among the ``sbin.oracles`` entry points
of installed packages (``sbin_loop.plugins``). ``build_oracles`` makes a campaign's configured oracles as the stages of
a round (``sbin_loop.oracles.factories``).
"""

from sbin_loop.lazy import lazy_exports

_HOMES = {
    "DatasetReplayOracle": "dataset",
    "JobRequest": "base",
    "Oracle": "base",
    "OracleContext": "factories",
    "OracleFactory": "factories",
    "OracleOutcome": "base",
    "OracleOutput": "outputs",
    "OracleStage": "factories",
    "build_oracles": "factories",
    "checked_outcome": "base",
    "dataset_table": "factories",
    "declared_outputs": "outputs",
    "oracle_factory": "factories",
    "rename_values": "base",
    "replayed_columns": "factories",
}
"""Public names, by the module they are defined in (imported on first use: the oracles load pandas)."""

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

"""Oracles: where the values of picked candidates come from.

Each oracle kind has a factory, found by name: sbin's own, and any other kind among the ``sbin.oracles`` entry points
of installed packages (``sbin_loop.plugins``). ``build_oracles`` makes a campaign's configured oracles as the stages of
a round (``sbin_loop.oracles.factories``).
"""

from sbin_loop.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "base": "JobRequest Oracle OracleOutcome checked_outcome rename_values",
        "dataset": "DatasetReplayOracle",
        "factories": (
            "OracleContext OracleFactory OracleStage build_oracles dataset_table oracle_factory replayed_columns"
        ),
        "outputs": "OracleOutput declared_outputs",
    },
)

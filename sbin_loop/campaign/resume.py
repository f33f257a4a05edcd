"""Opening a campaign directory: whose it is, whether the config may resume it, and its candidate pool.

A directory belongs to one campaign (its ``campaign.json``). A campaign resumes only under the config it started
with, but for its budget and how its store is reached. The pool is built once and cached in ``pool/``; a cache built
from another space, or with other descriptors than this sbin computes for the space, is rebuilt while no round exists,
and refused after (``sbin_loop.candidates.reuse_pool``, ``CandidatePool.load``).
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from sbin_loop.candidates import CandidatePool, PoolCacheError, pool_feature_names, reuse_pool, space_fingerprint
from sbin_loop.config import CampaignConfig, ConfigError, stored_campaign_config
from sbin_loop.config_base import explicit_fields
from sbin_loop.oracles.config import DatasetOracleConfig
from sbin_loop.seeds import POOL, derive_seed
from sbin_loop.space import FormulaTable, read_formula_table, sample_rows
from sbin_loop.space.config import PoolSpaceConfig
from sbin_loop.space.pool_perovskites import pool_candidates, pool_extra_names
from sbin_loop.space.spaces import open_space
from sbin_loop.status import read_marker
from sbin_loop.stores import CampaignDoc, CampaignStore

logger = logging.getLogger(__name__)

_RESUMABLE_SECTIONS = ("budget", "store")
"""Config sections that may change when a campaign resumes: its budget, and how its store is reached."""


def _config_differences(old: object, new: object, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        differences = []
        for key in sorted(set(old) | set(new)):
            differences += _config_differences(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return differences
    return [] if old == new else [path]


def _within(path: str, settings: set[str]) -> bool:
    """Whether the dotted ``path`` is one of ``settings`` or lies inside one."""
    return any(path == setting or path.startswith(f"{setting}.") for setting in settings)


def _value_at(config: dict, path: str) -> object:
    """The value at the dotted ``path`` of a nested dict (None where a key is missing)."""
    for key in path.split("."):
        config = config.get(key) if isinstance(config, dict) else None
    return config


def check_directory_belongs_to(directory: Path, name: str) -> None:
    """Refuse a directory whose marker names another campaign."""
    marker = read_marker(directory)
    if marker is not None and marker["campaign"] != name:
        raise ConfigError(f"name: {directory} holds campaign {marker['campaign']!r}, not {name!r}; use another --dir")


def resumed_config(
    config: CampaignConfig, stored: CampaignDoc, store: CampaignStore, directory: Path
) -> CampaignConfig:
    """The config to resume a stored campaign with; refuses one that differs from the campaign's own but its budget.

    A setting the config file leaves out keeps the value the campaign started with, not today's default: a default
    that sbin changed since (e.g. ``model.likelihood``) does not change the model of a running campaign. Settings
    added to sbin since the campaign started take the value that meant its behaviour then. The ``store`` section is
    how to reach the documents, not what the campaign is (a new password or host is no change of campaign); the
    campaign document keeps it without credentials. The campaign document is updated to the returned config.
    """
    current = config.model_dump(mode="json")
    stored_dump = stored_campaign_config(stored.config)
    explicit: set[str] | None = explicit_fields(config)
    try:
        stored_config = CampaignConfig.model_validate(stored_dump).model_dump(mode="json")
    except ValidationError:
        stored_config, explicit = stored_dump, None  # unreadable today: every difference counts
    old = {key: value for key, value in stored_config.items() if key not in _RESUMABLE_SECTIONS}
    new = {key: value for key, value in current.items() if key not in _RESUMABLE_SECTIONS}
    differences = _config_differences(old, new)
    changed = [path for path in differences if explicit is None or _within(path, explicit)]
    if changed:
        raise ConfigError(
            f"{directory} holds campaign {config.name!r} started with a different config; "
            f"changed fields: {', '.join(changed)}. Only budget.* may change on resume; "
            "use a new --dir for a new campaign."
        )
    if differences:
        logger.warning(
            "kept the campaign's own %s: not set in the config file, and sbin's default has changed since the "
            "campaign started",
            ", ".join(f"{path}={_value_at(stored_config, path)!r}" for path in differences),
        )
        kept = CampaignConfig.model_validate({**stored_config, "budget": current["budget"]})
        config = kept.model_copy(update={"store": config.store})
        current = config.model_dump(mode="json")
    if stored.config != current:
        store.put_campaign(stored.model_copy(update={"config": current}))
    return config


def oracle_reads_pool_source(config: CampaignConfig) -> bool:
    """Whether the primary oracle replays the pool's own table (read once for both)."""
    oracle, space = config.oracle, config.space
    return (
        isinstance(space, PoolSpaceConfig)
        and isinstance(oracle, DatasetOracleConfig)
        and oracle.where is None
        and oracle.source in (None, space.source)
        and oracle.formula_column in (None, space.formula_column)
    )


class PoolLoader:
    """Loads a campaign's cached pool, or builds (and caches) it from the config's space.

    Args:
        config: The campaign config.
        directory: The campaign directory (the cache is ``pool/`` in it).
        base_dir: Directory that relative paths in the config are resolved against.
        oracle_table: Reads the primary dataset oracle's table, when it is the pool's source too.
    """

    def __init__(self, config: CampaignConfig, directory: Path, base_dir: Path, oracle_table: object = None) -> None:
        self.config = config
        self.directory = directory
        self.base_dir = base_dir
        self._oracle_table = oracle_table

    @property
    def fingerprint(self) -> str:
        """What the pool is built from: the space, the seed and the objectives' data columns."""
        columns = [objective.data_column for objective in self.config.objectives]
        return space_fingerprint(self.config.space.model_dump(mode="json"), self.config.seed, columns)

    def load(self, has_rounds: bool) -> CandidatePool:
        """The cached pool if it was built from this config's space, else a pool built (and cached) now.

        Raises:
            CampaignIntegrityError: If the campaign has rounds and its pool was built from another space.
            PoolCacheError: If the campaign has rounds and its pool cannot be read or holds other descriptors than
                this sbin computes for the space (an older sbin's pool).
        """
        pool_dir = self.directory / "pool"
        if (pool_dir / "pool.json").is_file():
            if reuse_pool(self.directory, CandidatePool.fingerprint(pool_dir), self.fingerprint, has_rounds):
                try:
                    return CandidatePool.load(pool_dir, pool_feature_names(self._extra_names(), self._fractions))
                except PoolCacheError as error:
                    if has_rounds:
                        raise
                    logger.info("%s: rebuilding it", error)
            shutil.rmtree(pool_dir)
        if isinstance(self.config.space, PoolSpaceConfig):
            table = self._table()
            logger.info("%s", table.summary())
            candidates = pool_candidates(table, self.config.space)
            frame = sample_rows(candidates, self.config.space.sample, derive_seed(self.config.seed, POOL))
            self._require_initial(len(frame), f"{len(table.rejected)} rows rejected")
            pool = CandidatePool.from_frame(frame, pool_extra_names(self.config.space), self._fractions)
            pool.save(pool_dir, self.fingerprint)
        else:
            space = open_space(self.config.space, self.base_dir)
            rejected: Counter = Counter()
            sizes = CandidatePool.write_chunks(space.chunks(rejected=rejected), pool_dir)
            self._require_initial(sum(sizes), f"rejected by rule: {dict(rejected)}")
            feature_names = pool_feature_names(space.extra_names, self._fractions)
            CandidatePool.write_meta(pool_dir, sizes, feature_names, self.fingerprint)
            pool = CandidatePool.load(pool_dir, feature_names)
            logger.info("perovskite space: %d candidates kept, rejected %s", len(pool), dict(rejected))
        logger.info("pool of %d candidates with %d descriptors", len(pool), len(pool.feature_names))
        return pool

    @property
    def _fractions(self) -> bool:
        """Whether the pool's descriptors include the element fractions (``features.element_fractions``)."""
        return self.config.features.element_fractions

    def _extra_names(self) -> tuple[str, ...]:
        """Space-specific descriptor names (a pool's follow from its config; its table is not read for them)."""
        if isinstance(self.config.space, PoolSpaceConfig):
            return pool_extra_names(self.config.space)
        return open_space(self.config.space, self.base_dir).extra_names

    def _table(self) -> FormulaTable:
        if self._oracle_table is not None and oracle_reads_pool_source(self.config):
            return self._oracle_table()
        space = self.config.space
        return read_formula_table(space.source, space.formula_column, base_dir=self.base_dir)

    def _require_initial(self, n_candidates: int, why: str) -> None:
        initial = self.config.budget.initial_count or 1
        if n_candidates < initial:
            raise ConfigError(f"space: {n_candidates} usable candidates ({why}), fewer than budget.initial={initial}")

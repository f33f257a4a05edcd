"""Opening a campaign's candidate space, whichever kind, as a stream of ``CandidateChunk``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sbin_loop.space.chunks import CandidateChunk
from sbin_loop.space.config import PerovskiteSpaceConfig, PoolSpaceConfig
from sbin_loop.space.formula import formula_fractions
from sbin_loop.space.perovskite import PerovskiteSpace
from sbin_loop.space.pool import FormulaTable, read_formula_table
from sbin_loop.space.pool_perovskites import pool_candidates, pool_extra_names


class PoolSpace:
    """A dataset pool (table of formulas) streamed as chunks; unique compositions only, in file order.

    Args:
        config: The space section of a campaign config.
        base_dir: Directory relative paths are resolved against.

    Raises:
        DataSourceError: If the table cannot be read.

    """

    def __init__(self, config: PoolSpaceConfig, base_dir: Path | None = None) -> None:
        self.config = config
        self.extra_names = pool_extra_names(config)
        """The perovskite descriptors and A/B-site properties when the pool has a ``perovskite_filter``, else none."""
        self.table: FormulaTable = read_formula_table(config.source, config.formula_column, base_dir=base_dir)
        self._screened = Counter()
        self.frame = pool_candidates(self.table, config, self._screened)
        """The candidates: the table's unique compositions, or those passing its ``perovskite_filter``."""

    @property
    def raw_size(self) -> int:
        """Rows of the table (including rejected and duplicate rows)."""
        return len(self.table.frame) + len(self.table.rejected) + self.table.n_duplicate_rows

    @property
    def notes(self) -> tuple[str, ...]:
        """Why rows were rejected (line, formula, reason)."""
        return tuple(f"line {row.line}: {row.formula!r}: {row.reason}" for row in self.table.rejected)

    def chunks(self, chunk_size: int = 65536, rejected: Counter | None = None) -> Iterator[CandidateChunk]:
        """Stream the unique compositions, ``chunk_size`` at a time.

        Args:
            chunk_size: Candidates per chunk (the last chunk may be shorter).
            rejected: If given, ``unparsable`` and ``duplicate`` row counts are added to it, and the perovskite
                rules' rejections when the pool has them.

        """
        if rejected is not None:
            rejected.update({"unparsable": len(self.table.rejected), "duplicate": self.table.n_duplicate_rows})
            rejected.update(self._screened)
        frame = self.frame
        for start in range(0, len(frame), chunk_size):
            part = frame.iloc[start : start + chunk_size]
            indices, fractions = formula_fractions(part["formula"].tolist())
            ids = np.array(part["candidate_id"].tolist(), dtype=np.dtypes.StringDType())
            extra = part[list(self.extra_names)].to_numpy(dtype=np.float32).reshape(len(part), -1)
            yield CandidateChunk(ids, indices, fractions, extra)


CandidateSpace = PoolSpace | PerovskiteSpace
"""Either kind of space: both have ``chunks``, ``raw_size``, ``extra_names`` and ``notes``."""


def open_space(config: PoolSpaceConfig | PerovskiteSpaceConfig, base_dir: Path | None = None) -> CandidateSpace:
    """Open the candidate space a campaign's ``space`` section describes.

    Args:
        config: ``CampaignConfig.space``.
        base_dir: Directory relative paths in the config are resolved against.

    """
    if isinstance(config, PerovskiteSpaceConfig):
        return PerovskiteSpace(config)
    return PoolSpace(config, base_dir)

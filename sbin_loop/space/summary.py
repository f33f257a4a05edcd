"""``sbin space summary``: how big a space is, what its rules rejected, and a sample of its candidates."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sbin_loop.config import ConfigError
from sbin_loop.space.config import PerovskiteSpaceConfig, PoolSpaceConfig
from sbin_loop.space.perovskite import estimated_size
from sbin_loop.space.spaces import open_space

DEFAULT_MAX_CANDIDATES = 20_000_000
"""Largest space summarised unless told otherwise: streaming it takes minutes (the default perovskite space has
181,675 candidates)."""


@dataclass(frozen=True)
class SpaceSummary:
    """What streaming a whole space found.

    Attributes:
        kind: ``pool`` or ``perovskite``.
        raw_size: Candidates (or table rows) before rules and deduplication.
        size: Candidates that survive.
        rejected: Count per rejection reason (each candidate under the first rule it fails).
        sample: A seeded uniform random sample of surviving candidates: ``candidate_id`` and the space's extra
            descriptors.
        notes: Radius fallbacks (perovskite) or rejected rows (pool).
        seconds: Wall time of the scan.

    """

    kind: str
    raw_size: int
    size: int
    rejected: dict[str, int]
    sample: pd.DataFrame
    notes: tuple[str, ...] = field(default=())
    seconds: float = 0.0

    def render(self, max_notes: int = 10) -> str:
        """Plain-text report for the terminal."""
        lines = [
            f"{self.kind} space: {self.raw_size:,} enumerated, {self.size:,} candidates kept ({self.seconds:.1f} s)"
        ]
        lines += [f"  rejected by {reason}: {count:,}" for reason, count in self.rejected.items()]
        lines += [f"  note: {note}" for note in self.notes[:max_notes]]
        if len(self.notes) > max_notes:
            lines.append(f"  ... and {len(self.notes) - max_notes} more notes")
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 3):
            lines += ["sample:", self.sample.to_string(index=False)]
        return "\n".join(lines)


def summarize_space(
    config: PoolSpaceConfig | PerovskiteSpaceConfig,
    base_dir: Path | None = None,
    sample_size: int = 10,
    seed: int = 0,
    chunk_size: int = 65536,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
) -> SpaceSummary:
    """Stream a space once (bounded memory) and summarise it.

    Args:
        config: ``CampaignConfig.space``.
        base_dir: Directory relative paths in the config are resolved against.
        sample_size: Candidates in the sample.
        seed: Seed of the sample.
        chunk_size: Candidates held per chunk while streaming.
        max_candidates: Refuse a perovskite space that enumerates more candidates than this (counted before anything
            is built).

    Raises:
        ConfigError: If the space is larger than ``max_candidates``.
    """
    if isinstance(config, PerovskiteSpaceConfig):
        check_space_size(config, max_candidates)
    start = time.perf_counter()
    space = open_space(config, base_dir)
    rng = np.random.default_rng(seed)
    rejected: Counter = Counter()
    size = 0
    keys = np.empty(0)
    kept: pd.DataFrame | None = None
    for chunk in space.chunks(chunk_size, rejected):
        size += len(chunk)
        # Reservoir by random keys: the sample_size smallest keys over the stream are a uniform sample.
        frame = pd.DataFrame(chunk.extra, columns=[name.removeprefix("perovskite ") for name in space.extra_names])
        frame.insert(0, "candidate_id", chunk.ids.tolist())
        keys = np.concatenate([keys, rng.random(len(chunk))])
        kept = frame if kept is None else pd.concat([kept, frame], ignore_index=True)
        best = np.argsort(keys)[:sample_size]
        keys, kept = keys[best], kept.iloc[best].reset_index(drop=True)
    sample = pd.DataFrame({"candidate_id": []}) if kept is None else kept
    return SpaceSummary(
        kind=config.kind,
        raw_size=space.raw_size,
        size=size,
        rejected={reason: count for reason, count in rejected.items() if count},
        sample=sample,
        notes=space.notes,
        seconds=time.perf_counter() - start,
    )


def check_space_size(config: PerovskiteSpaceConfig, max_candidates: int) -> None:
    """Refuse a perovskite space that would enumerate more than ``max_candidates`` candidates.

    Raises:
        ConfigError: Giving the count and the settings that drive it.
    """
    size = estimated_size(config)
    if size > max_candidates:
        raise ConfigError(
            f"space: {size:,} candidates to enumerate, more than the limit of {max_candidates:,}; lower "
            f"space.max_species_a/b/x (now {config.max_species_a}/{config.max_species_b}/{config.max_species_x}) or "
            f"space.fraction_denominator (now {config.fraction_denominator}), or raise the limit with --max-candidates"
        )

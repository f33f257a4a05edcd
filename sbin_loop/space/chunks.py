"""Chunks of candidates: what every candidate space streams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CandidateChunk:
    """A block of candidates with what the descriptors need, and no pymatgen object per candidate.

    Attributes:
        ids: ``n`` stable candidate ids (canonical reduced formulas), a numpy ``StringDType`` array.
        indices: ``n x k`` element rows (``Z - 1``); padding has fraction 0.
        fractions: ``n x k`` atomic fractions (rows sum to 1).
        extra: ``n x e`` float32 space-specific descriptors (``e`` may be 0), named by the space's
            ``extra_names``.

    """

    ids: np.ndarray
    indices: np.ndarray
    fractions: np.ndarray
    extra: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray | slice) -> CandidateChunk:
        """Return the candidates at ``rows`` (boolean mask, integer positions or slice)."""
        return CandidateChunk(self.ids[rows], self.indices[rows], self.fractions[rows], self.extra[rows])

    @staticmethod
    def concatenate(chunks: list[CandidateChunk]) -> CandidateChunk:
        """One chunk holding ``chunks`` in order (element arrays are padded to the widest)."""
        width = max(chunk.indices.shape[1] for chunk in chunks)

        def pad(array: np.ndarray) -> np.ndarray:
            return np.pad(array, ((0, 0), (0, width - array.shape[1])))

        return CandidateChunk(
            np.concatenate([chunk.ids for chunk in chunks]),
            np.concatenate([pad(chunk.indices) for chunk in chunks]),
            np.concatenate([pad(chunk.fractions) for chunk in chunks]),
            np.concatenate([chunk.extra for chunk in chunks]),
        )


def rechunk(blocks: Iterable[CandidateChunk], size: int) -> Iterator[CandidateChunk]:
    """Regroup a stream of blocks of any length into chunks of ``size`` candidates (the last may be short).

    At most one chunk plus one block is held in memory.
    """
    if size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    pending: list[CandidateChunk] = []
    held = 0
    for block in blocks:
        if len(block) == 0:
            continue
        pending.append(block)
        held += len(block)
        while held >= size:
            merged = CandidateChunk.concatenate(pending)
            yield merged.take(slice(0, size))
            rest = merged.take(slice(size, None))
            pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        yield CandidateChunk.concatenate(pending)

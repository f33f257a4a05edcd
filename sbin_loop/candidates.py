"""A campaign's candidate pool: ids, formulas and descriptors, read a chunk at a time.

The pool is built once when a campaign starts and reloaded on every resume, so a restarted campaign scores the very
same candidates. Its files live in ``<campaign>/pool/``; ``pool.json`` (size, descriptor names, layout) is written
last, each file to a temporary name and renamed; it records the ``fingerprint`` of the space config the pool was built
from, so a pool left by another config is rebuilt or refused rather than silently reused. Two layouts:

- ``table`` (formula tables; also every pool cached before layouts existed, whose ``pool.json`` names none):
  ``candidates.csv.gz`` (id, formula) and ``features.npy`` (float32 ``N x d``), held in memory. Tables are read
  whole anyway and hold at most ~10^5 rows.
- ``chunks`` (enumerated spaces, up to ~10^7 candidates): one ``chunks/NNNNNN.npz`` per enumerated chunk with the
  ids (UTF-8 bytes), element rows (uint8), atomic fractions (float64) and the space's own descriptors (float32).
  Descriptors are computed when rows are read (about 5 s per 10^6 candidates), so at most one chunk and the rows
  asked for are in memory, never ``N x d``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from sbin_loop.atomic import write_atomic
from sbin_loop.features import composition_input_names, composition_inputs, element_fractions, fraction_names
from sbin_loop.integrity import RECOVERY, CampaignIntegrityError
from sbin_loop.space import parse_formula
from sbin_loop.space.chunks import CandidateChunk

logger = logging.getLogger(__name__)


def pool_feature_names(extra_names: tuple[str, ...] = (), with_fractions: bool = False) -> list[str]:
    """Descriptor names of a pool: composition descriptors, element fractions if asked for, then the space's own."""
    return [*composition_input_names(with_fractions), *extra_names]


def has_fractions(feature_names: list[str]) -> bool:
    """Whether a pool's descriptor names hold the element-fraction columns (``features.element_fractions``)."""
    start = len(composition_input_names())
    return feature_names[start : start + len(fraction_names())] == fraction_names()


def chunk_features(chunk: CandidateChunk, with_fractions: bool = False) -> np.ndarray:
    """``n x d`` float32 descriptors of enumerated candidates: as ``pool_feature_names(extra, with_fractions)``."""
    inputs = composition_inputs(chunk.indices, chunk.fractions, with_fractions)
    return np.concatenate([inputs, chunk.extra], axis=1).astype(np.float32)


def space_fingerprint(space: dict, seed: int, columns: list[str]) -> str:
    """Fingerprint of what a candidate pool is built from: the space section, the seed and the value columns."""
    text = json.dumps({"space": space, "seed": seed, "columns": columns}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reuse_pool(directory: Path, stored: str | None, current: str, has_rounds: bool) -> bool:
    """Whether a cached pool may be used as it is (True), or must be rebuilt (False).

    A pool is a cache of the space config it was built from: one built from another space (a first start that failed
    and a corrected config) is rebuilt while the campaign has stored no round. Once rounds are stored, a pool from
    another space is refused; a pool cached before fingerprints existed is kept (the config check covers its space).

    Args:
        directory: The campaign directory.
        stored: Fingerprint recorded in ``pool/pool.json`` (None if it has none).
        current: Fingerprint of the config's space (``space_fingerprint``).
        has_rounds: The campaign has a stored round or job.

    Raises:
        CampaignIntegrityError: If the campaign has rounds and the pool was built from another space.
    """
    if stored == current:
        return True
    if not has_rounds:
        logger.info("pool/ was built from another space config (%s, now %s): rebuilding it", stored, current)
        return False
    if stored is None:
        return True
    raise CampaignIntegrityError(
        f"{directory}: damaged campaign: pool/pool.json was built from another space config (fingerprint {stored}, "
        f"this config's is {current}) but the campaign has stored rounds; {RECOVERY}"
    )


class PoolCacheError(RuntimeError):
    """A cached pool that does not match this sbin's descriptors or is incomplete."""


@dataclass(frozen=True)
class PoolBlock:
    """Some candidates of a pool, row-aligned.

    Attributes:
        rows: ``n`` pool rows.
        ids: ``n`` candidate ids.
        formulas: ``n`` formulas as first written in the source.
        features: ``n x d`` float32 descriptors.
    """

    rows: np.ndarray
    ids: np.ndarray
    formulas: np.ndarray
    features: np.ndarray


class _Part(Protocol):
    """A stored piece of a pool: its ids, and the block of any of its positions."""

    ids: np.ndarray

    def block(self, positions: np.ndarray, rows: np.ndarray) -> PoolBlock:
        """The candidates at ``positions`` of this part, labelled with pool ``rows``."""
        ...


@dataclass(frozen=True)
class _TablePart:
    ids: np.ndarray
    formulas: np.ndarray
    features: np.ndarray

    def block(self, positions: np.ndarray, rows: np.ndarray) -> PoolBlock:
        return PoolBlock(rows, self.ids[positions], self.formulas[positions], self.features[positions])


@dataclass(frozen=True)
class _ChunkPart:
    """A stored chunk of an enumerated space, read from its file when asked (the ids alone when only they are).

    ``with_fractions``: its descriptors include the element fractions (as the pool's ``pool.json`` names them).
    """

    path: Path
    with_fractions: bool = False

    def _read(self, key: str) -> np.ndarray:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                return data[key]
        except (OSError, ValueError, KeyError) as error:
            raise PoolCacheError(f"cannot read cached pool chunk {self.path}: {error}") from None

    @property
    def ids(self) -> np.ndarray:
        return np.strings.decode(self._read("ids"), "utf-8")

    def block(self, positions: np.ndarray, rows: np.ndarray) -> PoolBlock:
        chunk = CandidateChunk(self.ids, self._read("indices"), self._read("fractions"), self._read("extra"))
        taken = chunk.take(positions)
        return PoolBlock(rows, taken.ids, taken.ids, chunk_features(taken, self.with_fractions))


def _chunk_path(directory: Path, index: int) -> Path:
    return directory / "chunks" / f"{index:06d}.npz"


def _save_chunk(chunk: CandidateChunk, path: Path) -> None:
    with path.open("wb") as handle:
        np.savez(
            handle,
            ids=np.strings.encode(chunk.ids, "utf-8"),
            indices=chunk.indices.astype(np.uint8),
            fractions=chunk.fractions,
            extra=chunk.extra.astype(np.float32),
        )


class CandidatePool:
    """Candidates a campaign may pick, in stored parts read one at a time.

    Args:
        feature_names: The ``d`` descriptor names.
        sizes: Number of candidates in each part, in row order.
        part: Returns part ``i`` (from memory or from its file).
    """

    def __init__(self, feature_names: list[str], sizes: list[int], part: Callable[[int], _Part]) -> None:
        self.feature_names = feature_names
        self._sizes = sizes
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self._part = part

    def __len__(self) -> int:
        return int(self._starts[-1])

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, extra_names: tuple[str, ...] = (), with_fractions: bool = False
    ) -> CandidatePool:
        """An in-memory ``table`` pool of a frame with ``candidate_id`` and ``formula`` columns (formulas valid).

        Args:
            frame: The candidates.
            extra_names: Columns of ``frame`` holding the space's own descriptors, appended to the composition ones.
            with_fractions: Put the element fractions after the composition descriptors
                (``features.element_fractions``).
        """
        compositions = [parse_formula(formula) for formula in frame["formula"]]
        extra = frame[list(extra_names)].to_numpy(dtype=np.float32).reshape(len(frame), -1)
        inputs = composition_inputs(*element_fractions(compositions), with_fractions)
        part = _TablePart(
            np.array(frame["candidate_id"].tolist(), dtype=str),
            np.array(frame["formula"].tolist(), dtype=str),
            np.concatenate([inputs, extra], axis=1).astype(np.float32),
        )
        return cls(pool_feature_names(extra_names, with_fractions), [len(frame)], lambda _: part)

    @staticmethod
    def write_chunks(chunks: Iterable[CandidateChunk], directory: Path) -> list[int]:
        """Store an enumerated space's chunks as the parts of a ``chunks`` pool; return their sizes.

        ``pool.json`` is not written (``write_meta`` completes the pool), so an interrupted build is redone.
        """
        (directory / "chunks").mkdir(parents=True, exist_ok=True)
        sizes = []
        for chunk in chunks:
            if len(chunk):
                write_atomic(_chunk_path(directory, len(sizes)), partial(_save_chunk, chunk))
                sizes.append(len(chunk))
        return sizes

    @staticmethod
    def write_meta(directory: Path, sizes: list[int], feature_names: list[str], fingerprint: str | None = None) -> None:
        """Complete a ``chunks`` pool written by ``write_chunks``, recording the fingerprint of its space config."""
        meta = {
            "layout": "chunks",
            "n_candidates": sum(sizes),
            "sizes": sizes,
            "feature_names": feature_names,
            "fingerprint": fingerprint,
        }
        write_atomic(directory / "pool.json", lambda path: path.write_text(json.dumps(meta)))

    def save(self, directory: Path, fingerprint: str | None = None) -> None:
        """Write an in-memory ``table`` pool into ``directory``, recording the fingerprint of its space config."""
        table = self._part(0)
        if not isinstance(table, _TablePart):
            raise TypeError("only an in-memory table pool is saved; chunk pools are written as they are enumerated")
        directory.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"candidate_id": table.ids, "formula": table.formulas})
        write_atomic(directory / "candidates.csv.gz", lambda path: frame.to_csv(path, index=False, compression="gzip"))

        def write_features(path: Path) -> None:
            with path.open("wb") as handle:
                np.save(handle, table.features, allow_pickle=False)

        write_atomic(directory / "features.npy", write_features)
        meta = {
            "layout": "table",
            "n_candidates": len(self),
            "feature_names": self.feature_names,
            "fingerprint": fingerprint,
        }
        write_atomic(directory / "pool.json", lambda path: path.write_text(json.dumps(meta)))

    @staticmethod
    def fingerprint(directory: Path) -> str | None:
        """Fingerprint of the space config a cached pool was built from (None for pools cached before fingerprints).

        Raises:
            PoolCacheError: If ``pool.json`` cannot be read.
        """
        try:
            meta = json.loads((directory / "pool.json").read_text())
        except (OSError, ValueError) as error:
            raise PoolCacheError(f"{directory}: cannot read cached pool: {error}") from None
        fingerprint = meta.get("fingerprint") if isinstance(meta, dict) else None
        return str(fingerprint) if fingerprint is not None else None

    @classmethod
    def load(cls, directory: Path, feature_names: list[str]) -> CandidatePool:
        """Open pool files written by ``save`` or ``write_chunks`` and ``write_meta`` (any sbin version).

        A ``chunks`` pool computes the descriptors its ``pool.json`` names: with the element fractions if they are
        among them (``has_fractions``).

        Args:
            directory: The pool directory.
            feature_names: Descriptor names this sbin computes for the campaign's space.

        Raises:
            PoolCacheError: If a file is missing or sizes or descriptor names disagree.
        """
        try:
            meta = json.loads((directory / "pool.json").read_text())
            if meta.get("layout", "table") == "chunks":
                sizes = [int(size) for size in meta["sizes"]]
                fractions = has_fractions(meta["feature_names"])
                pool = cls(
                    meta["feature_names"], sizes, lambda index: _ChunkPart(_chunk_path(directory, index), fractions)
                )
            else:
                frame = pd.read_csv(directory / "candidates.csv.gz", dtype=str, keep_default_na=False)
                features = np.load(directory / "features.npy", allow_pickle=False)
                if not len(frame) == features.shape[0]:
                    raise PoolCacheError(f"{directory}: cached pool files disagree on the number of candidates")
                part = _TablePart(
                    frame["candidate_id"].to_numpy(dtype=str), frame["formula"].to_numpy(dtype=str), features
                )
                pool = cls(meta["feature_names"], [len(frame)], lambda _: part)
        except (OSError, ValueError, KeyError) as error:
            raise PoolCacheError(f"{directory}: cannot read cached pool: {error}") from None
        if meta["n_candidates"] != len(pool):
            raise PoolCacheError(f"{directory}: cached pool files disagree on the number of candidates")
        if meta["feature_names"] != feature_names:
            raise PoolCacheError(
                f"{directory}: cached descriptors differ from this sbin's; start a new campaign directory"
            )
        return pool

    def take(self, rows: np.ndarray) -> PoolBlock:
        """The candidates at pool ``rows`` (any order, duplicates allowed), reading only the parts they lie in."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"pool rows out of range 0..{len(self) - 1}")
        parts = np.searchsorted(self._starts, rows, side="right") - 1
        order = np.argsort(parts, kind="stable")
        blocks = []
        for index in np.unique(parts):
            chosen = rows[order][parts[order] == index]
            blocks.append(self._part(int(index)).block(chosen - self._starts[index], chosen))
        if not blocks:
            empty = np.array([], dtype=str)
            return PoolBlock(rows, empty, empty, np.zeros((0, len(self.feature_names)), dtype=np.float32))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        return PoolBlock(
            rows,
            np.concatenate([block.ids for block in blocks])[inverse],
            np.concatenate([block.formulas for block in blocks])[inverse],
            np.concatenate([block.features for block in blocks])[inverse],
        )

    def blocks(self, size: int, mask: np.ndarray | None = None) -> Iterator[PoolBlock]:
        """Stream the candidates (those where ``mask`` is true, if given) in row order, at most ``size`` at a time."""
        for index, start in enumerate(self._starts[:-1]):
            part = self._part(index)
            for offset in range(0, self._sizes[index], size):
                positions = np.arange(offset, min(offset + size, self._sizes[index]))
                if mask is not None:
                    positions = positions[mask[start + positions]]
                if positions.size:
                    yield part.block(positions, start + positions)

    def rows_of(self, ids: Collection[str]) -> dict[str, int]:
        """Pool row of each of ``ids`` found in the pool (ids are unique within a pool)."""
        wanted = np.array(sorted(ids), dtype=str)
        found: dict[str, int] = {}
        if wanted.size == 0:
            return found
        for index, start in enumerate(self._starts[:-1]):
            part_ids = self._part(index).ids
            hits = np.flatnonzero(np.isin(part_ids, wanted))
            found.update(zip(part_ids[hits].tolist(), (start + hits).tolist(), strict=True))
        return found

"""A campaign's candidate pool with its descriptor matrix, cached as columnar files in the campaign directory.

The pool is featurised once when a campaign starts and reloaded on every resume, so a restarted campaign scores the
very same matrix. Files: ``candidates.csv.gz`` (id, formula), ``features.npy`` (float32, ``N x d``) and
``pool.json`` (descriptor names and size, checked on load). Each is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sbin_loop.features import descriptor_names, featurize_compositions, featurize_fractions
from sbin_loop.space import parse_formula
from sbin_loop.space.chunks import CandidateChunk


def pool_feature_names(extra_names: tuple[str, ...] = ()) -> list[str]:
    """Descriptor names of a pool: composition descriptors, then the space's own."""
    return [*descriptor_names(), *extra_names]


class PoolCacheError(RuntimeError):
    """A cached pool that does not match this sbin's descriptors or is incomplete."""


@dataclass(frozen=True)
class CandidatePool:
    """Candidates a campaign may pick, aligned row by row with their descriptors.

    Attributes:
        ids: Stable candidate ids (reduced formulas).
        formulas: Formulas as first written in the source.
        features: ``N x d`` float32 descriptors.
        feature_names: The ``d`` descriptor names.
    """

    ids: list[str]
    formulas: list[str]
    features: np.ndarray
    feature_names: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> CandidatePool:
        """Featurise a frame with ``candidate_id`` and ``formula`` columns (formulas already validated)."""
        compositions = [parse_formula(formula) for formula in frame["formula"]]
        return cls(
            ids=frame["candidate_id"].tolist(),
            formulas=frame["formula"].tolist(),
            features=featurize_compositions(compositions),
            feature_names=descriptor_names(),
        )

    @classmethod
    def from_chunk(cls, chunk: CandidateChunk, extra_names: tuple[str, ...]) -> CandidatePool:
        """Featurise an enumerated space: composition descriptors followed by the space's own (``extra``)."""
        ids = [str(candidate) for candidate in chunk.ids]
        features = np.concatenate([featurize_fractions(chunk.indices, chunk.fractions), chunk.extra], axis=1)
        return cls(
            ids=ids, formulas=ids, features=features.astype(np.float32), feature_names=pool_feature_names(extra_names)
        )

    def save(self, directory: Path) -> None:
        """Write the pool files into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        table_tmp = directory / ".candidates.csv.gz.tmp"
        pd.DataFrame({"candidate_id": self.ids, "formula": self.formulas}).to_csv(
            table_tmp, index=False, compression="gzip"
        )
        features_tmp = directory / ".features.npy.tmp"
        with features_tmp.open("wb") as handle:
            np.save(handle, self.features, allow_pickle=False)
        meta_tmp = directory / ".pool.json.tmp"
        meta_tmp.write_text(json.dumps({"n_candidates": len(self), "feature_names": self.feature_names}))
        os.replace(table_tmp, directory / "candidates.csv.gz")
        os.replace(features_tmp, directory / "features.npy")
        os.replace(meta_tmp, directory / "pool.json")

    @classmethod
    def load(cls, directory: Path, feature_names: list[str]) -> CandidatePool:
        """Read pool files written by ``save``.

        Args:
            directory: The pool directory.
            feature_names: Descriptor names this sbin computes for the campaign's space.

        Raises:
            PoolCacheError: If a file is missing or sizes or descriptor names disagree.
        """
        try:
            meta = json.loads((directory / "pool.json").read_text())
            table = pd.read_csv(directory / "candidates.csv.gz", dtype=str, keep_default_na=False)
            features = np.load(directory / "features.npy", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise PoolCacheError(f"{directory}: cannot read cached pool: {error}") from None
        if not (meta["n_candidates"] == len(table) == features.shape[0]):
            raise PoolCacheError(f"{directory}: cached pool files disagree on the number of candidates")
        if meta["feature_names"] != feature_names:
            raise PoolCacheError(
                f"{directory}: cached descriptors differ from this sbin's; start a new campaign directory"
            )
        return cls(table["candidate_id"].tolist(), table["formula"].tolist(), features, meta["feature_names"])

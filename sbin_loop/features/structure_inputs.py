"""Structural descriptors as model inputs: measured where an oracle returned a relaxed cell, missing elsewhere.

A candidate's structural inputs are the ``StructureFeaturizer`` descriptors of the relaxed supercell an oracle
returned for it (the bulk cell of the defect workflows), with its perovskite sites as groups ``A``, ``B`` and ``X``,
followed by a ``structure present`` flag. A candidate without a structure (every candidate not yet evaluated, and any
whose oracle returns none) gets NaN in every descriptor and 0 in the flag: the surrogate imputes NaN with the mean of
its training rows, or their median once inputs are quantile-scaled (see ``BNNSurrogate.fit``), and the flag lets the
network tell an imputed value from a measured one. Missing values are never filled with zeros.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from pymatgen.core import Structure

from sbin_loop.features.config import StructureFeaturesConfig
from sbin_loop.features.structure import StructureFeaturizer
from sbin_loop.workflows.perovskite import NotAPerovskiteError, site_occupancies

logger = logging.getLogger(__name__)

STRUCTURE_PRESENT = "structure present"
"""Name of the input that is 1 where a candidate's structural descriptors were measured and 0 where imputed."""

_SITES = ("A", "B", "X")


def relaxed_structure(document: Mapping | None) -> dict | None:
    """The relaxed bulk structure (``Structure.as_dict()``) in an oracle's result document, if it has one."""
    if not document:
        return None
    bulk = document.get("bulk")
    structure = bulk.get("structure") if isinstance(bulk, Mapping) else None
    return structure if isinstance(structure, dict) else None


def site_groups(formula: str) -> dict[str, tuple[str, ...]]:
    """Elements of each perovskite site of ``formula``; an element split over A and B counts where it has most.

    Raises:
        NotAPerovskiteError: If ``formula`` is not an ABX3 composition.
    """
    occupancies = site_occupancies(formula)
    home = {}
    for element in {el for fractions in occupancies.values() for el in fractions}:
        home[element] = max(_SITES, key=lambda site: occupancies[site].get(element, 0.0))
    return {site: tuple(sorted(el for el, where in home.items() if where == site)) for site in _SITES}


class StructureInputs:
    """Turns relaxed structures into fixed-length model inputs and assembles them for any pool rows.

    Args:
        config: Descriptor grid and bonding settings.
    """

    def __init__(self, config: StructureFeaturesConfig) -> None:
        self.config = config
        self._featurizer = self._featurizer_for({site: () for site in _SITES})

    def _featurizer_for(self, groups: Mapping[str, tuple[str, ...]]) -> StructureFeaturizer:
        return StructureFeaturizer(
            groups,
            r_max=self.config.r_max,
            n_bins=self.config.n_bins,
            angle_bins=self.config.angle_bins,
            bond_tolerance=self.config.bond_tolerance,
        )

    def names(self) -> list[str]:
        """Names of the ``k`` structural inputs: the descriptors, then ``STRUCTURE_PRESENT``."""
        return [*(f"structure {name}" for name in self._featurizer.names()), STRUCTURE_PRESENT]

    def featurize(self, formula: str, structure: dict) -> np.ndarray | None:
        """Descriptors (``k - 1``, float64, NaN where a statistic is undefined) of one candidate's relaxed cell.

        Args:
            formula: The candidate's composition, which says which elements sit on A, B and X.
            structure: ``Structure.as_dict()`` of the relaxed cell.

        Returns:
            ``None`` (logged) if the composition is not a perovskite or the structure cannot be read: the candidate's
            structural inputs are then missing, as for a candidate without a structure.
        """
        try:
            featurizer = self._featurizer_for(site_groups(formula))
            return featurizer.featurize(Structure.from_dict(structure))
        except (NotAPerovskiteError, KeyError, ValueError, TypeError, AttributeError) as error:
            logger.warning("%s: structural descriptors not computed (%s); treated as missing", formula, error)
            return None

    def block(self, rows: np.ndarray, measured: Mapping[int, np.ndarray]) -> np.ndarray:
        """``n x k`` float32 structural inputs of pool ``rows``: descriptors and flag 1 where measured, NaN and 0 not.

        Args:
            rows: ``n`` pool rows.
            measured: Pool row -> descriptors from ``featurize`` for the candidates that have a structure.
        """
        width = len(self.names())
        block = np.full((len(rows), width), np.nan, dtype=np.float32)
        block[:, -1] = 0.0
        if measured:
            hits = np.flatnonzero(np.isin(rows, np.fromiter(measured, dtype=np.int64, count=len(measured))))
            for position in hits.tolist():
                block[position, :-1] = measured[int(rows[position])]
                block[position, -1] = 1.0
        return block

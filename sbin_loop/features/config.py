"""Settings of the model inputs beyond the composition descriptors every candidate has."""

from __future__ import annotations

from pydantic import Field

from sbin_loop import limits
from sbin_loop.config_base import Section


class StructureFeaturesConfig(Section):
    """Structural descriptors of relaxed cells as model inputs (``sbin_loop.features.structure_inputs``).

    When an oracle returns a relaxed structure for a candidate (the force-field and VASP defect workflows do), the
    model is trained on its partial RDFs, coordination statistics, bond angles and density beside the composition
    descriptors. Candidates without a structure have these inputs missing: imputed with the training mean (median
    once inputs are quantile-scaled) and marked by a ``structure present`` input of 0, never filled with zeros.

    Attributes:
        enabled: Use structural descriptors once at least one result carries a structure.
        r_max: Largest distance of the partial radial distribution functions (Angstrom).
        n_bins: Bins of each partial RDF.
        angle_bins: Bins of each bond-angle histogram on 0-180 degrees.
        bond_tolerance: Neighbours within ``(1 + bond_tolerance)`` x a site group's bond length are bonded.
    """

    enabled: bool = True
    r_max: float = Field(default=6.0, gt=0, le=30)
    n_bins: int = Field(default=20, gt=0, le=limits.MAX_BINS)
    angle_bins: int = Field(default=9, gt=0, le=limits.MAX_BINS)
    bond_tolerance: float = Field(default=0.2, gt=0)


class FeaturesConfig(Section):
    """Model inputs beyond the composition descriptors every candidate has.

    Attributes:
        element_fractions: Add the atomic fraction of every element up to ``MAX_Z`` (``fraction <symbol>`` inputs,
            right after the composition descriptors). Composition statistics average the elements away; the fraction
            of each element lets the network learn element-specific effects (ElemNet, Jha et al., Sci. Rep. 8, 17593
            (2018)). Off by default: a campaign's inputs are fixed when its pool is built, and it starts from tens
            of results, where the fractions of elements few results hold widen the intervals (``sbin model train``
            adds them from ``model.quantile_rows`` training rows on, ``sbin_loop.model.sites.fractions_by_default``).
        structure: Structural descriptors of relaxed cells returned by oracles.
    """

    element_fractions: bool = False
    structure: StructureFeaturesConfig = StructureFeaturesConfig()

"""Settings of the model inputs beyond the composition descriptors every candidate has."""

from __future__ import annotations

from typing import Any

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
            (2018)). On by default: in the SuperCon discovery benchmark (``benchmarks/campaign.py``) they raised the
            share of the top 1% that sbin found from 150 evaluations on, most at 300-400. Below
            ``model.quantile_rows`` training rows the BNN takes them unscaled (``BNNSurrogate``'s
            ``fraction_inputs``), so the few results a campaign starts from do not widen its intervals. 118 float32
            columns more cost about 0.5 GB per million candidates of an enumerated space. A campaign stored before
            this setting existed keeps it off (``LEGACY_FEATURES_DEFAULTS``).
        structure: Structural descriptors of relaxed cells returned by oracles.
    """

    element_fractions: bool = True
    structure: StructureFeaturesConfig = StructureFeaturesConfig()


LEGACY_FEATURES_DEFAULTS: dict[str, Any] = {"element_fractions": False}
"""What a features setting added to sbin with a new behaviour as its default meant before it existed. A campaign
config stored before then lacks the field and is read with these values, so its pool keeps its inputs."""


def stored_features_config(stored: dict[str, Any] | None) -> dict[str, Any]:
    """A campaign's ``features`` section as stored when it started (None if it had none), read by this sbin."""
    return {**LEGACY_FEATURES_DEFAULTS, **(stored or {})}

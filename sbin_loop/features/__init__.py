"""Descriptors: vectorised Magpie composition descriptors and structural descriptors of structures."""

from sbin_loop.features.composition import (
    STATISTICS,
    STOICHIOMETRY_NORMS,
    descriptor_names,
    element_fractions,
    featurize_compositions,
    featurize_formulas,
    featurize_fractions,
)
from sbin_loop.features.elements import ElementPropertyTable, element_property_table
from sbin_loop.features.structure import StructureFeaturizer

__all__ = [
    "STATISTICS",
    "STOICHIOMETRY_NORMS",
    "ElementPropertyTable",
    "StructureFeaturizer",
    "descriptor_names",
    "element_fractions",
    "element_property_table",
    "featurize_compositions",
    "featurize_formulas",
    "featurize_fractions",
]

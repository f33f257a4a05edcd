"""Descriptors: vectorised Magpie composition descriptors and structural descriptors of structures."""

from sbin_loop.lazy import lazy_exports

_HOMES = {
    "ElementPropertyTable": "elements",
    "STATISTICS": "composition",
    "STOICHIOMETRY_NORMS": "composition",
    "StructureFeaturizer": "structure",
    "descriptor_names": "composition",
    "element_fractions": "composition",
    "element_property_table": "elements",
    "featurize_compositions": "composition",
    "featurize_formulas": "composition",
    "featurize_fractions": "composition",
}
"""Public names, by the module they are defined in (imported on first use)."""

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

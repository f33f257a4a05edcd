"""Descriptors: vectorised Magpie composition descriptors and structural descriptors of structures."""

from sbin_loop.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "composition": (
            "STATISTICS STOICHIOMETRY_NORMS composition_input_names composition_inputs descriptor_names "
            "element_fractions featurize_compositions featurize_formulas featurize_fractions fraction_columns "
            "fraction_names fraction_vector"
        ),
        "elements": "ElementPropertyTable element_property_table",
        "structure": "StructureFeaturizer",
    },
)

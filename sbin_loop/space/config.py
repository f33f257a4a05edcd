"""Settings of candidate spaces: a pool of formulas or an enumerated perovskite space, told apart by ``kind``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from sbin_loop import limits
from sbin_loop.config_base import Section, kind_or, tagged


class PerovskiteRulesConfig(Section):
    """The rules a composition must pass to count as a perovskite (``sbin_loop.space.rules``).

    Attributes:
        oxidation_states: Allowed oxidation states per element, overriding the default (pymatgen's common and
            ICSD states of the site's sign that have a Shannon radius).
        tolerance_factor: Inclusive bounds on the Goldschmidt tolerance factor.
        octahedral_factor: Inclusive bounds on the octahedral factor r_B / r_X.
        min_electronegativity_gap: If set, the anion's Pauling electronegativity must exceed the mean of each
            cation site by at least this much.
    """

    oxidation_states: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    tolerance_factor: tuple[float, float] = (0.80, 1.10)
    octahedral_factor: tuple[float, float] = (0.37, 0.90)
    min_electronegativity_gap: float | None = None

    @model_validator(mode="after")
    def _ordered_rule_bounds(self) -> PerovskiteRulesConfig:
        bounds = {"tolerance_factor": self.tolerance_factor, "octahedral_factor": self.octahedral_factor}
        for name, (low, high) in bounds.items():
            if not 0 < low <= high:
                raise ValueError(f"{name}: need 0 < lower <= upper, got [{low}, {high}]")
        return self


class PoolPerovskiteFilter(PerovskiteRulesConfig):
    """Keep only the compositions of a pool that are perovskites by the rules of an enumerated perovskite space.

    Each formula's cations are placed on the A and B sites as the defect workflow places them
    (``sbin_loop.workflows.perovskite.site_occupancies``: by decreasing ionic radius until A holds one per formula
    unit), so a composition passes under the very assignment its supercell is built with. It is then screened by
    charge neutrality with the allowed oxidation states (mixed valence allowed) and the Goldschmidt tolerance,
    octahedral-factor and optional electronegativity rules, as in ``PerovskiteSpaceConfig``.

    Attributes:
        x_site: Anions a kept composition may have on its X site (``[O]``: oxides only).
    """

    x_site: tuple[str, ...] = ("O",)

    @field_validator("x_site")
    @classmethod
    def _some_anions(cls, x_site: tuple[str, ...]) -> tuple[str, ...]:
        if not x_site:
            raise ValueError("list at least one anion")
        return x_site


class PoolSpaceConfig(Section):
    """Candidates read from a table of formulas.

    Attributes:
        kind: Discriminator; ``pool`` for a table of formulas.
        source: ``bundled:NAME`` for a table shipped with sbin, or a CSV path (relative paths are taken relative to the
            config file).
        formula_column: Column holding the chemical formulas.
        sample: If set, a seeded random subset of this many unique compositions forms the pool (drawn from those
            that pass ``perovskite_filter``, when given).
        perovskite_filter: If set, only the compositions that pass these perovskite rules are candidates.
    """

    kind: Literal["pool"] = "pool"
    source: str = "bundled:supercon"
    formula_column: str = "formula"
    sample: int | None = Field(default=None, gt=0, le=limits.MAX_COUNT)
    perovskite_filter: PoolPerovskiteFilter | None = None

    @model_serializer(mode="wrap")
    def _without_absent_filter(self, handler: SerializerFunctionWrapHandler) -> dict:
        """Leave ``perovskite_filter`` out when unset: a pool's stored config and cache fingerprint read as before."""
        data = handler(self)
        if data.get("perovskite_filter") is None:
            data.pop("perovskite_filter", None)
        return data


class PerovskiteSpaceConfig(PerovskiteRulesConfig):
    """Perovskites ``(A_{1-x} A'_x)_{1-δ_A} (B_{1-y} B'_y) X_{3-δ_X}`` on a fraction grid, screened by rules.

    Each candidate mixes up to ``max_species_*`` elements per site with fractions that are multiples of
    ``1 / fraction_denominator``. A candidate is kept if it can be charge-neutral with the allowed oxidation
    states (mixed valence allowed) and its Goldschmidt tolerance factor, octahedral factor and (optionally)
    the electronegativity gap between anion and cations lie within bounds.

    Attributes:
        kind: Discriminator; ``perovskite`` for an enumerated perovskite space.
        a_site: Elements allowed on the A site (12-coordinated).
        b_site: Elements allowed on the B site (6-coordinated).
        x_site: Anions (6-coordinated).
        max_species_a: Most elements mixed on the A site.
        max_species_b: Most elements mixed on the B site.
        max_species_x: Most elements mixed on the X site.
        fraction_denominator: Site fractions are multiples of ``1 / fraction_denominator``.
        a_deficiency: A-site deficiencies δ_A to enumerate (0 is the stoichiometric perovskite).
        anion_deficiency: Anion deficiencies δ_X to enumerate.

    The rules (``oxidation_states``, ``tolerance_factor``, ``octahedral_factor``, ``min_electronegativity_gap``) are
    those of ``PerovskiteRulesConfig``.
    """

    kind: Literal["perovskite"] = "perovskite"
    a_site: tuple[str, ...] = ("Na", "K", "Ca", "Sr", "Ba", "La", "Pr", "Nd", "Sm", "Bi")
    b_site: tuple[str, ...] = ("Mg", "Al", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Ga", "Zr", "Nb")
    x_site: tuple[str, ...] = ("O",)
    max_species_a: int = Field(default=2, ge=1, le=4)
    max_species_b: int = Field(default=2, ge=1, le=4)
    max_species_x: int = Field(default=1, ge=1, le=3)
    fraction_denominator: int = Field(default=8, ge=1, le=100)
    a_deficiency: tuple[float, ...] = (0.0,)
    anion_deficiency: tuple[float, ...] = (0.0,)

    @model_validator(mode="after")
    def _consistent(self) -> PerovskiteSpaceConfig:
        sites = {"a_site": self.a_site, "b_site": self.b_site, "x_site": self.x_site}
        for name, elements in sites.items():
            if not elements:
                raise ValueError(f"{name}: list at least one element")
            if len(set(elements)) != len(elements):
                raise ValueError(f"{name}: duplicate elements in {list(elements)}")
        a_site, b_site, x_site = set(self.a_site), set(self.b_site), set(self.x_site)
        shared = (a_site & b_site) | (x_site & (a_site | b_site))
        if shared:
            raise ValueError(f"elements on more than one site would make ids ambiguous: {sorted(shared)}")
        unknown = set(self.oxidation_states) - a_site - b_site - x_site
        if unknown:
            raise ValueError(f"oxidation_states: {sorted(unknown)} are on no site")
        deficiencies = {
            "a_deficiency": (self.a_deficiency, 1),
            "anion_deficiency": (self.anion_deficiency, 3),
        }
        for name, (values, upper) in deficiencies.items():
            in_range = all(0 <= value < upper for value in values)
            if not values or not in_range or len(set(values)) != len(values):
                raise ValueError(f"{name}: distinct values in [0, {upper}) required, got {list(values)}")
        return self


SpaceConfig = Annotated[
    tagged(PoolSpaceConfig, "pool") | tagged(PerovskiteSpaceConfig, "perovskite"),
    Discriminator(kind_or("pool")),
]
"""Either kind of candidate space, chosen by its ``kind`` key."""

"""Chemical potentials of the defect workflow: O-rich and O-poor limits from competing phases, and (T, pO2).

Competing phases of a host are its elements (solids: the lowest of fcc, bcc and hcp; gases: a diatomic molecule in
a box) and, for each cation, binary-oxide prototypes for its common oxidation states up to +4 (antifluorite M2O,
rocksalt MO, corundum M2O3, rutile MO2), all relaxed with the host's energy model. A pymatgen ``PhaseDiagram`` of these
and the host gives the host's stability region in chemical-potential space; its vertices with the highest and lowest
``mu_O`` are the O-rich and O-poor limits. A host above the hull (a disordered or amorphous cell usually is) is placed
on the hull for this construction, and its distance from the hull is recorded.

At a temperature T and oxygen partial pressure p, ``mu_O = E(O2)/2 + dmu_O(T, 1 atm) + kT/2 ln(p / 1 atm)`` with
``dmu_O(T, 1 atm)`` from the JANAF-based table of K. Reuter and M. Scheffler, Phys. Rev. B 65, 035406 (2001),
Table I (linear interpolation between 100 K steps, constant-slope extrapolation beyond 1000 K).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element, Lattice, Structure
from scipy.constants import physical_constants

REUTER_SCHEFFLER_DMU_O = {
    0.0: 0.0,
    100.0: -0.08,
    200.0: -0.17,
    300.0: -0.27,
    400.0: -0.38,
    500.0: -0.50,
    600.0: -0.61,
    700.0: -0.73,
    800.0: -0.85,
    900.0: -0.98,
    1000.0: -1.10,
}
"""``mu_O(T, 1 atm) - E(O2)/2`` in eV (Reuter and Scheffler, PRB 65, 035406 (2001), Table I)."""

DIATOMIC_BOND_LENGTHS = {"O": 1.21, "N": 1.10, "F": 1.42, "Cl": 1.99, "H": 0.74}
"""Elements referenced to a diatomic molecule in a box, with starting bond lengths (angstrom)."""

_BOX = 10.0


def reference_structures(element: str) -> dict[str, Structure]:
    """Starting structures of an element's reference state, by name.

    Gases get a diatomic molecule in a 10 angstrom box; other elements get fcc, bcc and hcp cells sized from the
    atomic radius (the lowest relaxed energy per atom is taken as the chemical potential).
    """
    if element in DIATOMIC_BOND_LENGTHS:
        half = DIATOMIC_BOND_LENGTHS[element] / (2 * _BOX)
        box = Lattice.cubic(_BOX)
        return {f"{element}2": Structure(box, [element, element], [[0.5, 0.5, 0.5 - half], [0.5, 0.5, 0.5 + half]])}
    radius = float(Element(element).atomic_radius or 1.5)
    fcc = 2 * math.sqrt(2) * radius
    bcc = 4 * radius / math.sqrt(3)
    return {
        "fcc": Structure(Lattice.cubic(fcc), [element], [[0, 0, 0]]).get_primitive_structure(),
        "bcc": Structure(Lattice.cubic(bcc), [element], [[0, 0, 0]]).get_primitive_structure(),
        "hcp": Structure(
            Lattice.hexagonal(2 * radius, 2 * radius * math.sqrt(8 / 3)),
            [element, element],
            [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]],
        ),
    }


OXYGEN_LIMITS = ("O-rich", "O-poor")

_BOLTZMANN_EV = physical_constants["Boltzmann constant in eV/K"][0]


class CompetingPhase(BaseModel):
    """One relaxed competing phase.

    Attributes:
        element: The element whose subsystem the phase belongs to (its cation; ``O`` for O2), the cache key.
        name: Prototype label (``Ti fcc``, ``TiO2 rutile``, ``O O2``, ...).
        formula: Its formula.
        energy_per_atom: eV/atom.
        e_above_hull: eV/atom above the phase diagram's hull.
    """

    model_config = ConfigDict(extra="forbid")

    element: str
    name: str
    formula: str
    energy_per_atom: float
    e_above_hull: float = 0.0


class OxygenConditions(BaseModel):
    """Oxygen chemical potential of a gas reservoir.

    Attributes:
        temperature_K: Temperature.
        oxygen_partial_pressure_atm: O2 partial pressure.
        delta_mu_O: ``mu_O - E(O2)/2``, eV.
        mu_O: Absolute oxygen chemical potential with the energy model's O2, eV/atom.
        within_stability: Whether ``mu_O`` lies between the O-poor and O-rich limits (``None`` without limits).
        source: Where ``delta_mu_O`` comes from.
    """

    model_config = ConfigDict(extra="forbid")

    temperature_K: float
    oxygen_partial_pressure_atm: float
    delta_mu_O: float
    mu_O: float
    within_stability: bool | None = None
    source: str = "Reuter & Scheffler, Phys. Rev. B 65, 035406 (2001), Table I (JANAF); ideal-gas pressure term"


def oxygen_delta_mu(temperature_K: float, pressure_atm: float) -> float:
    """``mu_O(T, p) - E(O2)/2`` in eV.

    Raises:
        ValueError: If the temperature is negative or the pressure not positive.
    """
    if temperature_K < 0 or not pressure_atm > 0:
        raise ValueError(f"oxygen reservoir needs T >= 0 and p > 0, got T={temperature_K} K, p={pressure_atm} atm")
    grid = np.array(list(REUTER_SCHEFFLER_DMU_O))
    values = np.array(list(REUTER_SCHEFFLER_DMU_O.values()))
    if temperature_K <= grid[-1]:
        standard = float(np.interp(temperature_K, grid, values))
    else:
        slope = (values[-1] - values[-2]) / (grid[-1] - grid[-2])
        standard = float(values[-1] + slope * (temperature_K - grid[-1]))
    return standard + 0.5 * _BOLTZMANN_EV * temperature_K * math.log(pressure_atm)


def oxide_prototypes(element: str, radius: float) -> dict[str, Structure]:
    """Binary-oxide prototypes of a cation for its common oxidation states +1 to +4, sized from ``radius`` (angstrom).

    The cells are starting points: the energy model relaxes cell and positions.
    """
    states = {state for state in Element(element).common_oxidation_states if 1 <= state <= 4}
    bond = radius + 1.40
    cells: dict[str, Structure] = {}
    if 1 in states:
        a = 4 * bond / math.sqrt(3)
        cells[f"{element}2O antifluorite"] = Structure.from_spacegroup(
            "Fm-3m", Lattice.cubic(a), ["O", element], [[0, 0, 0], [0.25, 0.25, 0.25]]
        ).get_primitive_structure()
    if 2 in states:
        cells[f"{element}O rocksalt"] = Structure.from_spacegroup(
            "Fm-3m", Lattice.cubic(2 * bond), [element, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
        ).get_primitive_structure()
    if 3 in states:
        scale = bond / 2.0
        cells[f"{element}2O3 corundum"] = Structure.from_spacegroup(
            "R-3c", Lattice.hexagonal(4.76 * scale, 13.0 * scale), [element, "O"], [[0, 0, 0.352], [0.306, 0, 0.25]]
        ).get_primitive_structure()
    if 4 in states:
        scale = bond / 1.96
        cells[f"{element}O2 rutile"] = Structure.from_spacegroup(
            "P4_2/mnm", Lattice.tetragonal(4.59 * scale, 2.96 * scale), [element, "O"], [[0, 0, 0], [0.305, 0.305, 0]]
        )
    return cells


def phase_diagram(host: Composition, host_energy: float, phases: list[CompetingPhase]) -> tuple[PhaseDiagram, float]:
    """Phase diagram of the competing phases with the host placed on the hull, and the host's energy above it.

    Raises:
        ValueError: If an element of the host has no elemental phase.
    """
    entries = [PDEntry(Composition(p.formula), p.energy_per_atom * Composition(p.formula).num_atoms) for p in phases]
    missing = {str(el) for el in host.elements} - {str(e.composition.elements[0]) for e in entries if e.is_element}
    if missing:
        raise ValueError(f"{host.reduced_formula}: no elemental phase for {sorted(missing)}")
    without_host = PhaseDiagram(entries)
    hull = without_host.get_hull_energy_per_atom(host)
    above = host_energy / host.num_atoms - hull
    placed = min(host_energy, (hull - 1e-6) * host.num_atoms)
    return PhaseDiagram([*entries, PDEntry(host, placed)]), float(above)


def oxygen_limits(diagram: PhaseDiagram, host: Composition, anion: str = "O") -> dict[str, dict[str, float]]:
    """Chemical potentials (eV/atom, every element) at the anion-rich and anion-poor vertices of the host's region.

    Ties in ``mu`` of the anion are broken by the vertex listed first (pymatgen's order).
    """
    vertices = diagram.getmu_vertices_stability_phase(host, Element(anion))
    if not vertices:
        raise ValueError(f"{host.reduced_formula}: no stability region in the competing-phase diagram")
    key = Element(anion)
    rich = max(vertices, key=lambda v: v[key])
    poor = min(vertices, key=lambda v: v[key])
    return {
        label: {str(el): float(mu) for el, mu in sorted(vertex.items(), key=lambda kv: str(kv[0]))}
        for label, vertex in zip(OXYGEN_LIMITS, (rich, poor), strict=True)
    }


def hull_distances(diagram: PhaseDiagram, phases: list[CompetingPhase]) -> list[CompetingPhase]:
    """The phases with their energies above the diagram's hull."""
    result = []
    for phase in phases:
        composition = Composition(phase.formula)
        above = phase.energy_per_atom - diagram.get_hull_energy_per_atom(composition)
        result.append(phase.model_copy(update={"e_above_hull": max(float(above), 0.0)}))
    return result


def competing_phase_structures(element: str) -> dict[str, Structure]:
    """Starting structures of an element's competing phases: its elemental references and, for a cation, its oxides."""
    structures = {f"{element} {label}": cell for label, cell in reference_structures(element).items()}
    if element not in DIATOMIC_BOND_LENGTHS:
        radius = float(Element(element).average_ionic_radius or Element(element).atomic_radius or 1.0)
        structures.update(oxide_prototypes(element, radius))
    return structures

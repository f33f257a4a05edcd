"""The defect workflow's last job: formation energies, statistics, densities and reservoirs in one document.

``analyse_defects`` turns the relaxed energies of the flow into a ``DefectWorkflowDoc``. Vacancy and interstitial
formation energies use element-rich chemical potentials (fixed ones, else the lowest elemental reference); when
competing phases were computed, the document adds the O-rich and O-poor limits of a ``PhaseDiagram`` of them, the
vacancy statistics at each limit, and the O vacancies at the configured temperature and O2 partial pressure
(``sbin_loop.workflows.chempots``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from jobflow import job
from pymatgen.core import Element, Structure

from sbin_loop import __version__
from sbin_loop.workflows.amorphous import AmorphousCheck
from sbin_loop.workflows.analysis import (
    AntisitePair,
    BulkSummary,
    DefectWorkflowDoc,
    InterstitialSite,
    VacancySite,
    check_finite,
    defect_density,
    formation_energies,
    site_statistics,
)
from sbin_loop.workflows.chempots import (
    CompetingPhase,
    OxygenConditions,
    hull_distances,
    oxygen_delta_mu,
    oxygen_limits,
    phase_diagram,
)


def code_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of sbin and ``packages`` (``missing`` for one not installed)."""
    versions = {"sbin-loop": __version__}
    for package in packages:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "missing"
    return versions


def _neighbours(structure: Structure, index: int) -> dict[str, int]:
    found = structure.get_neighbors(structure[index], 4.0)
    if not found:
        return {}
    nearest = min(neighbour.nn_distance for neighbour in found)
    counts: dict[str, int] = {}
    for neighbour in found:
        if neighbour.nn_distance <= 1.2 * nearest:
            counts[neighbour.specie.symbol] = counts.get(neighbour.specie.symbol, 0) + 1
    return dict(sorted(counts.items()))


@job
def analyse_defects(
    formula: str,
    bulk_structure: Structure,
    bulk_energy: float,
    sites: list[int],
    defect_energies: list[float],
    reference_energies: dict[str, list[float]],
    settings: dict,
    antisites: Sequence[tuple[tuple[int, int], float]] = (),
    interstitials: Sequence[tuple[str, list[float], float]] = (),
    phases: Sequence[dict] = (),
    amorphous: dict | None = None,
) -> DefectWorkflowDoc:
    """Formation energies, statistics and densities of the computed defects.

    Args:
        formula: Requested composition.
        bulk_structure: Relaxed bulk supercell.
        bulk_energy: Its energy, eV.
        sites: Removed site indices (into ``bulk_structure``).
        defect_energies: Relaxed energies of the vacancy supercells, eV.
        reference_energies: Per element, energy per atom of each relaxed reference structure, eV/atom.
        settings: ``chemical_potentials`` (fixed ones), ``temperature_K``, ``formation_energy_bounds``,
            ``energy_model``, ``packages`` (whose versions are recorded) and anything else to record.
        antisites: Swapped site indices and relaxed energy (eV) of each antisite supercell.
        interstitials: Element, void (fractional coordinates) and relaxed energy (eV) of each interstitial supercell.
        phases: Competing phases (``CompetingPhase`` fields: ``element``, ``name``, ``formula``,
            ``energy_per_atom``); with every element of the host among them, the O-rich and O-poor limits are added.
            ``settings["oxygen_partial_pressure_atm"]`` then adds the O vacancies at that pressure and
            ``temperature_K``.
        amorphous: ``AmorphousCheck`` of a melt-quenched bulk, recorded as it is.

    Raises:
        ImplausibleResultError: On non-finite energies or out-of-bounds formation energies.
    """
    mu = dict(settings["chemical_potentials"])
    for element, per_atom in reference_energies.items():
        mu[element] = min(check_finite(f"{element} reference", energy) for energy in per_atom)
    bounds = tuple(settings["formation_energy_bounds"])
    elements = [bulk_structure[i].specie.symbol for i in sites]
    e_f = formation_energies(bulk_energy, defect_energies, elements, mu, bounds)
    n_atoms = len(bulk_structure)
    vacancies = [
        VacancySite(
            element=el, site_index=i, neighbours=_neighbours(bulk_structure, i), energy=energy, formation_energy=value
        )
        for el, i, energy, value in zip(elements, sites, defect_energies, e_f, strict=True)
    ]
    by_element = {el: [v.formation_energy for v in vacancies if v.element == el] for el in dict.fromkeys(elements)}
    per_cm3 = 1e24 / bulk_structure.volume
    temperature = settings["temperature_K"]
    pairs = _antisite_pairs(bulk_structure, bulk_energy, antisites, bounds)
    inserted = _interstitial_sites(bulk_structure, bulk_energy, interstitials, mu, bounds)
    by_inserted: dict[str, list[float]] = {}
    for site in inserted:
        by_inserted.setdefault(site.element, []).append(site.formation_energy)
    antisite_energies = [pair.formation_energy for pair in pairs]
    a_like = {pair.elements[0] for pair in pairs}
    a_sites = sum(site.specie.symbol in a_like for site in bulk_structure)
    composition = bulk_structure.composition
    bulk = BulkSummary(
        structure=bulk_structure.as_dict(),
        formula=composition.formula.replace(" ", ""),
        n_atoms=n_atoms,
        energy=bulk_energy,
        energy_per_atom=bulk_energy / n_atoms,
        volume_per_atom=bulk_structure.volume / n_atoms,
        density=float(bulk_structure.density),
        descriptors={"pseudocubic_a": (5 * bulk_structure.volume / n_atoms) ** (1 / 3)},
    )
    recorded = {k: v for k, v in settings.items() if k not in ("chemical_potentials", "packages", "energy_model")}
    fixed = set(settings["chemical_potentials"])
    reservoirs = _reservoirs(bulk_structure, bulk_energy, vacancies, mu, phases, fixed, settings)
    return DefectWorkflowDoc(
        formula=formula,
        energy_model=settings["energy_model"],
        bulk=bulk,
        chemical_potentials={el: mu[el] for el in {**by_element, **by_inserted}},
        vacancies=vacancies,
        statistics={el: site_statistics(values) for el, values in by_element.items()},
        densities={
            el: defect_density(values, temperature, composition[el] * per_cm3) for el, values in by_element.items()
        },
        antisites=pairs,
        antisite_statistics=site_statistics(antisite_energies) if pairs else None,
        antisite_density=defect_density(antisite_energies, temperature, a_sites * per_cm3) if pairs else None,
        interstitials=inserted,
        interstitial_statistics={el: site_statistics(values) for el, values in by_inserted.items()},
        interstitial_densities={
            el: defect_density(values, temperature, n_atoms * per_cm3) for el, values in by_inserted.items()
        },
        temperature_K=temperature,
        settings=recorded,
        code_versions=code_versions(tuple(settings["packages"])),
        amorphous_check=AmorphousCheck.model_validate(amorphous) if amorphous else None,
        **reservoirs,
    )


def _reservoirs(
    bulk: Structure,
    bulk_energy: float,
    vacancies: list[VacancySite],
    mu: dict[str, float],
    phases: Sequence[dict],
    fixed: set[str],
    settings: dict,
) -> dict:
    """Document fields of the O-rich/O-poor limits and the (T, pO2) reservoir; empty without competing phases.

    The vacancy formation energies of the document use ``mu``; at a limit each shifts by ``mu_limit - mu`` of its
    element. Nothing is added when O's chemical potential is fixed or O is not in the host.
    """
    host = bulk.composition
    if not phases or "O" in fixed or "O" not in {str(el) for el in host.elements}:
        return {}
    competing = [CompetingPhase.model_validate(phase) for phase in phases]
    for phase in competing:
        check_finite(f"competing phase {phase.name}", phase.energy_per_atom)
    diagram, above = phase_diagram(host, bulk_energy, competing)
    limits = oxygen_limits(diagram, host)
    by_element: dict[str, list[float]] = {}
    for site in vacancies:
        by_element.setdefault(site.element, []).append(site.formation_energy)
    limit_statistics = {
        label: {
            el: site_statistics([value + vertex[el] - mu[el] for value in values])
            for el, values in by_element.items()
            if el not in fixed
        }
        for label, vertex in limits.items()
    }
    result: dict = {
        "competing_phases": hull_distances(diagram, competing),
        "host_e_above_hull": above,
        "chemical_potential_limits": limits,
        "limit_statistics": limit_statistics,
    }
    pressure = settings.get("oxygen_partial_pressure_atm")
    if pressure is not None and "O" in by_element:
        temperature = settings["temperature_K"]
        delta = oxygen_delta_mu(temperature, pressure)
        mu_o = float(diagram.el_refs[Element("O")].energy_per_atom) + delta
        shifted = [value + mu_o - mu["O"] for value in by_element["O"]]
        result["oxygen_conditions"] = OxygenConditions(
            temperature_K=temperature,
            oxygen_partial_pressure_atm=pressure,
            delta_mu_O=delta,
            mu_O=mu_o,
            within_stability=limits["O-poor"]["O"] <= mu_o <= limits["O-rich"]["O"],
        )
        result["condition_statistics"] = {"O": site_statistics(shifted)}
        result["condition_densities"] = {"O": defect_density(shifted, temperature, host["O"] * 1e24 / bulk.volume)}
    return result


def _antisite_pairs(
    bulk: Structure, bulk_energy: float, antisites: Sequence[tuple[tuple[int, int], float]], bounds: tuple[float, float]
) -> list[AntisitePair]:
    """Antisite results: ``E(swapped) - E(bulk)`` (same composition, no chemical potentials)."""
    labels = [f"{bulk[i].specie.symbol}-{bulk[j].specie.symbol}" for (i, j), _ in antisites]
    energies = [energy for _, energy in antisites]
    e_f = formation_energies(bulk_energy, energies, labels, {}, bounds, kind="antisite")
    return [
        AntisitePair(
            site_indices=(i, j),
            elements=(bulk[i].specie.symbol, bulk[j].specie.symbol),
            distance=float(bulk.get_distance(i, j)),
            energy=energy,
            formation_energy=value,
        )
        for ((i, j), energy), value in zip(antisites, e_f, strict=True)
    ]


def _interstitial_sites(
    bulk: Structure,
    bulk_energy: float,
    interstitials: Sequence[tuple[str, list[float], float]],
    mu: dict[str, float],
    bounds: tuple[float, float],
) -> list[InterstitialSite]:
    """Interstitial results: ``E(interstitial) - E(bulk) - mu``."""
    elements = [element for element, _, _ in interstitials]
    energies = [energy for _, _, energy in interstitials]
    e_f = formation_energies(bulk_energy, energies, elements, mu, bounds, kind="interstitial")
    voids = np.array([coords for _, coords, _ in interstitials], dtype=float).reshape(-1, 3)
    clearance = bulk.lattice.get_all_distances(voids, bulk.frac_coords).min(axis=1) if len(voids) else []
    return [
        InterstitialSite(
            element=element, frac_coords=tuple(coords), clearance=gap, energy=energy, formation_energy=value
        )
        for element, coords, energy, gap, value in zip(elements, voids, energies, clearance, e_f, strict=True)
    ]

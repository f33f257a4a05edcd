"""The defect workflow as a jobflow ``Flow`` of atomate2 makers: one flow shape for every energy model.

``DefectWorkflowMaker.make(structure)`` builds::

    [melt (optional)] -> bulk relax -> for each sampled site: remove site -> defect relax (fixed cell)
                                    -> for each sampled cation pair: swap sites -> defect relax      (antisites)
                                    -> find voids -> for each element and void: insert -> defect relax (interstitials)
                                    -> elemental references (solids: fcc/bcc/hcp; gases: molecule in a box)
                                    -> analysis (formation energies, statistics, densities) -> DefectWorkflowDoc

The makers are plain atomate2 makers: ``ForceFieldRelaxMaker`` for the force-field oracle, VASP ``RelaxMaker`` s for the
cluster oracle. Every relax output exposes ``.structure`` and ``.output.energy``, which is all the analysis reads.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from jobflow import Flow, Job, Maker, OutputReference, job
from pymatgen.core import Element, Lattice, Structure

from sbin_loop import __version__
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
from sbin_loop.workflows.voids import find_voids

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


def sample_vacancy_sites(structure: Structure, elements: tuple[str, ...], per_element: int, seed: int) -> list[int]:
    """Indices of up to ``per_element`` distinct sites of each element (seeded); absent elements are skipped."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for element in elements:
        candidates = [i for i, site in enumerate(structure) if site.specie.symbol == element]
        if candidates:
            picks = rng.choice(candidates, size=min(per_element, len(candidates)), replace=False)
            chosen += sorted(int(i) for i in picks)
    return chosen


def sample_antisite_pairs(
    structure: Structure,
    count: int,
    seed: int,
    sublattice: tuple[str, ...] | None = None,
    pairs: tuple[tuple[str, str], ...] = (),
) -> list[tuple[int, int]]:
    """Site pairs to swap: seeded A-like sites, each with its nearest B-like site of another element.

    The A-like and B-like sites are the ``A`` and ``B`` sublattices of a perovskite supercell (``sublattice``), or,
    for each configured element pair ``(X, Y)``, the sites of X and of Y. Up to ``count`` pairs are drawn per group;
    equally near partners are chosen between at random.

    Args:
        structure: The supercell.
        count: Pairs wanted (per element pair when ``pairs`` are given).
        seed: Seed of the sampling.
        sublattice: Sublattice label of every site (``DecoratedSupercell.sublattice``).
        pairs: Element pairs; used instead of the sublattices when given.

    Raises:
        ValueError: If neither sublattice labels nor element pairs are given.
    """
    if count == 0:
        return []
    symbols = np.array([site.specie.symbol for site in structure])
    if pairs:
        groups = [(np.flatnonzero(symbols == x), np.flatnonzero(symbols == y)) for x, y in pairs]
    elif sublattice is not None:
        labels = np.array(sublattice)
        groups = [(np.flatnonzero(labels == "A"), np.flatnonzero(labels == "B"))]
    else:
        raise ValueError("antisites need the supercell's sublattice labels or configured element pairs")
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, int]] = []
    for first, second in groups:
        if not len(first) or not len(second):
            continue
        distance = structure.lattice.get_all_distances(structure.frac_coords[first], structure.frac_coords[second])
        distance[symbols[first][:, None] == symbols[second][None, :]] = np.inf
        rows = [row for row in rng.permutation(len(first)) if np.isfinite(distance[row]).any()][:count]
        for row in rows:
            nearest = np.flatnonzero(distance[row] <= distance[row].min() + 1e-6)
            chosen.append((int(first[row]), int(second[rng.choice(nearest)])))
    return chosen


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
def remove_site(structure: Structure, index: int) -> Structure:
    """The structure without site ``index``."""
    vacancy = structure.copy()
    vacancy.remove_sites([index])
    return vacancy


@job
def swap_sites(structure: Structure, first: int, second: int) -> Structure:
    """The structure with the species of sites ``first`` and ``second`` exchanged."""
    swapped = structure.copy()
    swapped.replace(first, structure[second].species)
    swapped.replace(second, structure[first].species)
    return swapped


@job
def locate_voids(structure: Structure, count: int, seed: int) -> list[list[float]]:
    """Fractional coordinates of the ``count`` largest distinct voids (``voids.find_voids``)."""
    return find_voids(structure, count, seed)[0].tolist()


@job
def insert_site(structure: Structure, element: str, frac_coords: list[float]) -> Structure:
    """The structure with an atom of ``element`` added at ``frac_coords``."""
    interstitial = structure.copy()
    interstitial.append(element, frac_coords)
    return interstitial


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
    )


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


@dataclass
class DefectWorkflowMaker(Maker):
    """Defect workflow on a (disordered or amorphous) supercell: vacancies, optionally antisites and interstitials.

    Attributes:
        bulk_relax_maker: Relaxes the bulk supercell (cell and positions).
        defect_relax_maker: Relaxes each defect supercell (positions, fixed cell).
        solid_reference_maker: Relaxes elemental solids (cell and positions).
        molecule_reference_maker: Relaxes a molecule in a box (positions).
        melt_maker: If set, MD maker that melts the supercell before the bulk relax (melt + relax is a fast quench
            into an amorphous cell).
        name: Flow name.
        vacancies: Elements whose vacancies are computed.
        sites_per_species: Sites sampled per element (vacancies), voids per element (interstitials).
        antisites: Antisite pairs sampled (per element pair when ``antisite_pairs`` are given); 0 for none.
        antisite_pairs: Element pairs swapped instead of the A and B sublattice sites of a perovskite supercell.
        interstitials: Elements inserted at the largest voids of the relaxed bulk.
        temperature_K: Temperature of the densities.
        formation_energy_bounds: Plausible range of formation energies, eV.
        chemical_potentials: Fixed chemical potentials (eV/atom); references are computed for the other elements.
        seed: Seed of the site sampling.
        energy_model: Label of the energy model recorded in the result.
        packages: Packages whose versions are recorded in the result.
        record: Further settings recorded in the result (supercell construction, ...).
    """

    bulk_relax_maker: Maker
    defect_relax_maker: Maker
    solid_reference_maker: Maker
    molecule_reference_maker: Maker
    melt_maker: Maker | None = None
    name: str = "sbin defects"
    vacancies: tuple[str, ...] = ("O",)
    sites_per_species: int = 4
    antisites: int = 0
    antisite_pairs: tuple[tuple[str, str], ...] = ()
    interstitials: tuple[str, ...] = ()
    temperature_K: float = 1000.0
    formation_energy_bounds: tuple[float, float] = (-3.0, 15.0)
    chemical_potentials: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    energy_model: str = ""
    packages: tuple[str, ...] = ("atomate2", "jobflow", "pymatgen")
    record: dict = field(default_factory=dict)

    def make(self, structure: Structure, formula: str | None = None, sublattice: tuple[str, ...] | None = None) -> Flow:
        """Build the flow for one supercell.

        Args:
            structure: The supercell (site indices are kept through melt and relaxations).
            formula: Requested composition recorded in the result; the structure's if not given.
            sublattice: Sublattice label of every site (``A``, ``B``, ``X``), which antisites swap between.
        """
        jobs = []
        start = structure
        if self.melt_maker is not None:
            melt = self.melt_maker.make(structure)
            melt.name = "melt"
            jobs.append(melt)
            start = melt.output.structure
        bulk = self.bulk_relax_maker.make(start)
        bulk.name = "bulk relax"
        jobs.append(bulk)
        sites = sample_vacancy_sites(structure, self.vacancies, self.sites_per_species, self.seed)
        defect_energies = []
        for index in sites:
            vacancy = remove_site(bulk.output.structure, index)
            vacancy.name = f"remove site {index} ({structure[index].specie.symbol})"
            relax = self.defect_relax_maker.make(vacancy.output)
            relax.name = f"vacancy {index} relax"
            jobs += [vacancy, relax]
            defect_energies.append(relax.output.output.energy)
        antisites = self._antisite_jobs(bulk, structure, sublattice, jobs)
        interstitials = self._interstitial_jobs(bulk, jobs)
        references: dict[str, list] = {}
        for element in dict.fromkeys([*(structure[i].specie.symbol for i in sites), *self.interstitials]):
            if element in self.chemical_potentials:
                continue
            for label, reference in reference_structures(element).items():
                maker = (
                    self.molecule_reference_maker if element in DIATOMIC_BOND_LENGTHS else self.solid_reference_maker
                )
                relax = maker.make(reference)
                relax.name = f"reference {element} {label}"
                jobs.append(relax)
                references.setdefault(element, []).append(relax.output.output.energy_per_atom)
        settings = {
            "chemical_potentials": self.chemical_potentials,
            "temperature_K": self.temperature_K,
            "formation_energy_bounds": list(self.formation_energy_bounds),
            "energy_model": self.energy_model,
            "packages": list(self.packages),
            "seed": self.seed,
            "amorphous": self.melt_maker is not None,
            **self.record,
        }
        analysis = analyse_defects(
            formula or structure.composition.reduced_formula,
            bulk.output.structure,
            bulk.output.output.energy,
            sites,
            defect_energies,
            references,
            settings,
            antisites,
            interstitials,
        )
        analysis.name = "defect analysis"
        jobs.append(analysis)
        return Flow(jobs, output=analysis.output, name=self.name)

    def _antisite_jobs(
        self, bulk: Job, structure: Structure, sublattice: tuple[str, ...] | None, jobs: list[Job]
    ) -> list[tuple[tuple[int, int], OutputReference]]:
        """Append swap and relax jobs of the sampled antisite pairs to ``jobs``; the pairs and their energies."""
        antisites = []
        pairs = sample_antisite_pairs(structure, self.antisites, self.seed, sublattice, self.antisite_pairs)
        for first, second in pairs:
            swap = swap_sites(bulk.output.structure, first, second)
            swap.name = f"swap sites {first}-{second}"
            relax = self.defect_relax_maker.make(swap.output)
            relax.name = f"antisite {first}-{second} relax"
            jobs += [swap, relax]
            antisites.append(((first, second), relax.output.output.energy))
        return antisites

    def _interstitial_jobs(self, bulk: Job, jobs: list[Job]) -> list[tuple[str, OutputReference, OutputReference]]:
        """Append void, insert and relax jobs of the interstitials to ``jobs``; elements, voids and energies."""
        if not self.interstitials:
            return []
        voids = locate_voids(bulk.output.structure, self.sites_per_species, self.seed)
        voids.name = "locate voids"
        jobs.append(voids)
        interstitials = []
        for element, void in itertools.product(self.interstitials, range(self.sites_per_species)):
            insert = insert_site(bulk.output.structure, element, voids.output[void])
            insert.name = f"insert {element} at void {void}"
            relax = self.defect_relax_maker.make(insert.output)
            relax.name = f"interstitial {element} {void} relax"
            jobs += [insert, relax]
            interstitials.append((element, voids.output[void], relax.output.output.energy))
        return interstitials

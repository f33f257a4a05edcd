"""The defect workflow as a jobflow ``Flow`` of atomate2 makers: one flow shape for every energy model.

``DefectWorkflowMaker.make(structure)`` builds::

    [amorphise (optional): random packing -> MPMorph volume equilibration -> melt -> stepwise cooling]
        -> bulk relax -> [amorphousness check]
        -> for each sampled site: remove site -> defect relax (fixed cell)
        -> for each sampled cation pair: swap sites -> defect relax      (antisites)
        -> find voids -> for each element and void: insert -> defect relax (interstitials)
        -> elemental references (solids: fcc/bcc/hcp; gases: molecule in a box)
        -> competing phases (binary-oxide prototypes of each cation; skipped for cached ones)
        -> analysis (formation energies, statistics, densities, O-rich/O-poor limits) -> DefectWorkflowDoc

The makers are plain atomate2 makers: ``ForceFieldRelaxMaker`` for the force-field oracle, VASP ``RelaxMaker`` s for the
cluster oracle. Every relax output exposes ``.structure`` and ``.output.energy``, which is all the analysis reads.

Vacancy candidates are the symmetry-distinct sites of pymatgen-analysis-defects' ``VacancyGenerator`` (every site of
a disordered or amorphous cell, one per class of an ordered one); the per-site sampling over them is sbin's.
Antisites are swaps of two cations (composition kept), which the library's single-site ``AntiSiteGenerator`` does not
make, and interstitials go to the largest Voronoi voids of ``voids.find_voids``: the library's
``VoronoiInterstitialGenerator`` symmetrises its candidates and takes about 30 s on a 40-atom disordered cell here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np
from jobflow import Flow, Job, Maker, OutputReference, job
from pymatgen.analysis.defects.generators import VacancyGenerator
from pymatgen.core import Composition, Structure

from sbin_loop.workflows.amorphous import check_amorphous, random_packing
from sbin_loop.workflows.assemble import analyse_defects, code_versions
from sbin_loop.workflows.chempots import (
    DIATOMIC_BOND_LENGTHS,
    CompetingPhase,
    competing_phase_structures,
    reference_structures,
)
from sbin_loop.workflows.defect_settings import DEFECT_DEFAULTS, setting_default
from sbin_loop.workflows.voids import find_voids

__all__ = ["DefectWorkflowMaker", "analyse_defects", "code_versions"]


def is_element(formula: str) -> bool:
    """Whether ``formula`` is an elemental phase (``Sr``, ``O2``)."""
    return Composition(formula).is_element


def vacancy_candidates(structure: Structure, symmetric: bool = True) -> dict[str, list[int]]:
    """Per element, the sites giving distinct vacancies (``VacancyGenerator``), or every site if not ``symmetric``.

    ``symmetric=False`` is for a cell whose sites are all distinct by construction (melt-quenched), where the
    starting crystal's symmetry does not apply.
    """
    if symmetric:
        # Only the sites are used. A charge given to the library's Vacancy skips its oxidation-state guess over the
        # whole cell, once per site class: 0.65 s each, 90 s for a 135-site disordered VASP supercell.
        defects = VacancyGenerator().get_defects(structure, oxi_state=0)
        indices = [int(defect.defect_site_index) for defect in defects]
    else:
        indices = list(range(len(structure)))
    candidates: dict[str, list[int]] = {}
    for index in sorted(indices):
        candidates.setdefault(structure[index].specie.symbol, []).append(index)
    return candidates


def sample_vacancy_sites(
    structure: Structure, elements: tuple[str, ...], per_element: int, seed: int, symmetric: bool = True
) -> list[int]:
    """Indices of up to ``per_element`` distinct vacancy sites of each element (seeded); absent elements are skipped.

    Args:
        structure: The supercell.
        elements: Elements whose vacancies are wanted.
        per_element: Sites wanted per element.
        seed: Seed of the sampling.
        symmetric: Sample among symmetry-distinct sites only (see ``vacancy_candidates``).
    """
    rng = np.random.default_rng(seed)
    candidates = vacancy_candidates(structure, symmetric)
    chosen: list[int] = []
    for element in elements:
        if sites := candidates.get(element):
            picks = rng.choice(sites, size=min(per_element, len(sites)), replace=False)
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


def maker_default(name: str) -> Any:
    """The default value of the ``DefectWorkflowMaker`` field ``name`` (a fresh copy for a mutable one).

    Read from the Maker's own fields, so a check against the campaign config compares the two, not one source twice.
    """
    spec = {f.name: f for f in fields(DefectWorkflowMaker)}[name]
    return spec.default_factory() if spec.default is MISSING else spec.default


@dataclass
class DefectWorkflowMaker(Maker):
    """Defect workflow on a (disordered or amorphous) supercell: vacancies, optionally antisites and interstitials.

    The defaults of the defect settings come from ``defect_settings.DEFECT_DEFAULTS``, the one place they are defined,
    which oracle configurations read too.

    Attributes:
        bulk_relax_maker: Relaxes the bulk supercell (cell and positions).
        defect_relax_maker: Relaxes each defect supercell (positions, fixed cell).
        solid_reference_maker: Relaxes elemental solids and competing phases (cell and positions).
        molecule_reference_maker: Relaxes a molecule in a box (positions).
        amorphous_maker: If set, maker of a melt-quench flow (atomate2 MPMorph) run on the supercell before the bulk
            relax; the relaxed cell must then pass the amorphousness check.
        name: Flow name.
        vacancies: Elements whose vacancies are computed.
        sites_per_species: Sites sampled per element (vacancies), voids per element (interstitials).
        antisites: Antisite pairs sampled (per element pair when ``antisite_pairs`` are given); 0 for none.
        antisite_pairs: Element pairs swapped instead of the A and B sublattice sites of a perovskite supercell.
        interstitials: Elements inserted at the largest voids of the relaxed bulk.
        temperature_K: Temperature of the densities and of the oxygen reservoir.
        oxygen_partial_pressure_atm: O2 partial pressure of the oxygen reservoir (0.21: air).
        formation_energy_bounds: Plausible range of formation energies, eV.
        chemical_potentials: Fixed chemical potentials (eV/atom); references are computed for the other elements.
        competing_phases: Compute the competing phases of an oxide host for its O-rich and O-poor limits (when O
            vacancies are computed and O's chemical potential is not fixed).
        max_long_range_order: Largest long-range order of an amorphous cell (``amorphous.amorphous_check``).
        seed: Seed of the site sampling.
        energy_model: Label of the energy model recorded in the result.
        packages: Packages whose versions are recorded in the result.
        record: Further settings recorded in the result (supercell construction, ...).
    """

    bulk_relax_maker: Maker
    defect_relax_maker: Maker
    solid_reference_maker: Maker
    molecule_reference_maker: Maker
    amorphous_maker: Maker | None = None
    name: str = "sbin defects"
    vacancies: tuple[str, ...] = DEFECT_DEFAULTS.vacancies
    sites_per_species: int = DEFECT_DEFAULTS.sites_per_species
    antisites: int = DEFECT_DEFAULTS.antisites
    antisite_pairs: tuple[tuple[str, str], ...] = DEFECT_DEFAULTS.antisite_pairs
    interstitials: tuple[str, ...] = DEFECT_DEFAULTS.interstitials
    temperature_K: float = DEFECT_DEFAULTS.temperature_K
    oxygen_partial_pressure_atm: float = DEFECT_DEFAULTS.oxygen_partial_pressure_atm
    formation_energy_bounds: tuple[float, float] = DEFECT_DEFAULTS.formation_energy_bounds
    chemical_potentials: dict[str, float] = field(default_factory=lambda: setting_default("chemical_potentials"))
    competing_phases: bool = DEFECT_DEFAULTS.competing_phases
    max_long_range_order: float = DEFECT_DEFAULTS.max_long_range_order
    seed: int = 0
    energy_model: str = ""
    packages: tuple[str, ...] = ("atomate2", "jobflow", "pymatgen")
    record: dict = field(default_factory=dict)

    def make(
        self,
        structure: Structure,
        formula: str | None = None,
        sublattice: tuple[str, ...] | None = None,
        known_phases: Sequence[CompetingPhase] = (),
    ) -> Flow:
        """Build the flow for one supercell.

        Args:
            structure: The supercell (site indices are kept through melt-quench and relaxations).
            formula: Requested composition recorded in the result; the structure's if not given.
            sublattice: Sublattice label of every site (``A``, ``B``, ``X``), which antisites swap between.
            known_phases: Competing phases computed before with the same energy model; an element with any is not
                computed again.
        """
        jobs: list[Job | Flow] = []
        start = structure
        if self.amorphous_maker is not None:
            amorphise = self.amorphous_maker.make(random_packing(structure, self.seed))
            amorphise.name = "amorphise"
            jobs.append(amorphise)
            start = (amorphise.jobs[-1] if isinstance(amorphise, Flow) else amorphise).output.structure
        bulk = self.bulk_relax_maker.make(start)
        bulk.name = "bulk relax"
        jobs.append(bulk)
        relaxed = bulk.output.structure
        amorphous = None
        if self.amorphous_maker is not None:
            check = check_amorphous(structure, relaxed, self.max_long_range_order)
            check.name = "amorphousness check"
            jobs.append(check)
            relaxed, amorphous = check.output["structure"], check.output["check"]
        symmetric = self.amorphous_maker is None
        sites = sample_vacancy_sites(structure, self.vacancies, self.sites_per_species, self.seed, symmetric)
        defect_energies = []
        for index in sites:
            vacancy = remove_site(relaxed, index)
            vacancy.name = f"remove site {index} ({structure[index].specie.symbol})"
            relax = self.defect_relax_maker.make(vacancy.output)
            relax.name = f"vacancy {index} relax"
            jobs += [vacancy, relax]
            defect_energies.append(relax.output.output.energy)
        antisites = self._antisite_jobs(relaxed, structure, sublattice, jobs)
        interstitials = self._interstitial_jobs(relaxed, jobs)
        removed = [structure[i].specie.symbol for i in sites]
        references, phases = self._reference_jobs(structure, [*removed, *self.interstitials], known_phases, jobs)
        settings = {
            "chemical_potentials": self.chemical_potentials,
            "temperature_K": self.temperature_K,
            "oxygen_partial_pressure_atm": self.oxygen_partial_pressure_atm,
            "formation_energy_bounds": list(self.formation_energy_bounds),
            "energy_model": self.energy_model,
            "packages": list(self.packages),
            "seed": self.seed,
            "amorphous": self.amorphous_maker is not None,
            **self.record,
        }
        analysis = analyse_defects(
            formula or structure.composition.reduced_formula,
            relaxed,
            bulk.output.output.energy,
            sites,
            defect_energies,
            references,
            settings,
            antisites,
            interstitials,
            phases,
            amorphous,
        )
        analysis.name = "defect analysis"
        jobs.append(analysis)
        return Flow(jobs, output=analysis.output, name=self.name)

    def _reference_jobs(
        self, structure: Structure, needed: list[str], known_phases: Sequence[CompetingPhase], jobs: list[Job | Flow]
    ) -> tuple[dict[str, list], list[dict]]:
        """Append relax jobs of elemental references and competing phases to ``jobs``.

        Returns:
            Per element whose chemical potential is computed, the energies per atom of its references; and the
            competing phases (``CompetingPhase`` fields, energies as references to the relax outputs or known values).
        """
        host = [el.symbol for el in structure.composition.elements]
        wanted = {el for el in needed if el not in self.chemical_potentials}
        oxide = "O" in host and "O" in self.vacancies
        with_phases = self.competing_phases and oxide and "O" not in self.chemical_potentials
        known = {phase.element for phase in known_phases} if with_phases else set()
        computed = set(host) - known if with_phases else set()
        references: dict[str, list] = {}
        phases = [phase.model_dump() for phase in known_phases if phase.element in host] if with_phases else []
        for element in dict.fromkeys([*needed, *host]):
            cached = [p.energy_per_atom for p in known_phases if p.element == element and is_element(p.formula)]
            if element in wanted and element in known and cached:
                references[element] = cached
                continue
            if element not in wanted and element not in computed:
                continue
            structures = (
                competing_phase_structures(element)
                if element in computed
                else {f"{element} {label}": cell for label, cell in reference_structures(element).items()}
            )
            for name, cell in structures.items():
                diatomic = name == f"{element} {element}2" and element in DIATOMIC_BOND_LENGTHS
                maker = self.molecule_reference_maker if diatomic else self.solid_reference_maker
                relax = maker.make(cell)
                relax.name = f"reference {name}"
                jobs.append(relax)
                energy = relax.output.output.energy_per_atom
                if cell.composition.is_element and element in wanted:
                    references.setdefault(element, []).append(energy)
                if element in computed:
                    formula = cell.composition.reduced_formula
                    phases.append({"element": element, "name": name, "formula": formula, "energy_per_atom": energy})
        return references, phases

    def _antisite_jobs(
        self,
        relaxed: OutputReference,
        structure: Structure,
        sublattice: tuple[str, ...] | None,
        jobs: list[Job | Flow],
    ) -> list[tuple[tuple[int, int], OutputReference]]:
        """Append swap and relax jobs of the sampled antisite pairs to ``jobs``; the pairs and their energies."""
        antisites = []
        pairs = sample_antisite_pairs(structure, self.antisites, self.seed, sublattice, self.antisite_pairs)
        for first, second in pairs:
            swap = swap_sites(relaxed, first, second)
            swap.name = f"swap sites {first}-{second}"
            relax = self.defect_relax_maker.make(swap.output)
            relax.name = f"antisite {first}-{second} relax"
            jobs += [swap, relax]
            antisites.append(((first, second), relax.output.output.energy))
        return antisites

    def _interstitial_jobs(
        self, relaxed: OutputReference, jobs: list[Job | Flow]
    ) -> list[tuple[str, OutputReference, OutputReference]]:
        """Append void, insert and relax jobs of the interstitials to ``jobs``; elements, voids and energies."""
        if not self.interstitials:
            return []
        voids = locate_voids(relaxed, self.sites_per_species, self.seed)
        voids.name = "locate voids"
        jobs.append(voids)
        interstitials = []
        for element, void in itertools.product(self.interstitials, range(self.sites_per_species)):
            insert = insert_site(relaxed, element, voids.output[void])
            insert.name = f"insert {element} at void {void}"
            relax = self.defect_relax_maker.make(insert.output)
            relax.name = f"interstitial {element} {void} relax"
            jobs += [insert, relax]
            interstitials.append((element, voids.output[void], relax.output.output.energy))
        return interstitials

"""Defect formation energies, their statistics over sites, and equilibrium defect densities.

For a neutral defect at site i of a supercell, ``E_f,i = E_defect,i - E_bulk + n mu_X`` with chemical potential
``mu_X`` from an elemental reference computed with the same energy model and ``n`` atoms of X given to the reservoir:
``n = 1`` for a vacancy of X, ``n = -1`` for an interstitial X, ``n = 0`` for an antisite (two cations swapped). In a
disordered cell every site differs, so the sampled sites give a distribution; its statistics are the oracle's values.

The equilibrium site fraction of a site with formation energy E at temperature T is the Fermi-Dirac occupancy
``1 / (1 + exp(E / kT))`` (the dilute Boltzmann factor, bounded by one); the fraction for an element is the mean over
its sampled sites, and the densities of all elements form the "defect density vector".
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import logsumexp

from sbin_loop.workflows.amorphous import AmorphousCheck
from sbin_loop.workflows.chempots import CompetingPhase, OxygenConditions

BOLTZMANN_EV = 8.617333262e-5
"""Boltzmann constant, eV/K."""


class ImplausibleResultError(ValueError):
    """Energies that are not finite or formation energies outside the configured bounds."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VacancySite(_Doc):
    """One computed vacancy.

    Attributes:
        element: Element removed.
        site_index: Index of the removed site in the bulk supercell.
        neighbours: Elements of the nearest neighbours of the site (within 1.2 x the nearest distance), counted.
        energy: Relaxed energy of the defect supercell, eV.
        formation_energy: Vacancy formation energy, eV.
    """

    element: str
    site_index: int
    neighbours: dict[str, int]
    energy: float
    formation_energy: float


class AntisitePair(_Doc):
    """One computed antisite pair (two cations of different sublattices or elements swapped).

    Attributes:
        site_indices: Indices of the two swapped sites in the bulk supercell (A-like site first).
        elements: Their elements before the swap.
        distance: Distance between the two sites in the relaxed bulk, angstrom.
        energy: Relaxed energy of the defect supercell, eV.
        formation_energy: ``E(swapped) - E(bulk)``, eV.
    """

    site_indices: tuple[int, int]
    elements: tuple[str, str]
    distance: float
    energy: float
    formation_energy: float


class InterstitialSite(_Doc):
    """One computed interstitial.

    Attributes:
        element: Element inserted.
        frac_coords: Fractional coordinates of the void it was inserted at (before the relaxation).
        clearance: Distance from the void to the nearest atom of the relaxed bulk, angstrom.
        energy: Relaxed energy of the defect supercell, eV.
        formation_energy: ``E(interstitial) - E(bulk) - mu``, eV.
    """

    element: str
    frac_coords: tuple[float, float, float]
    clearance: float
    energy: float
    formation_energy: float


class SiteStatistics(_Doc):
    """Distribution of one kind of defect's formation energies over sampled sites (eV)."""

    n_sites: int
    mean: float
    std: float
    min: float
    median: float
    max: float


class DefectDensity(_Doc):
    """Equilibrium density of one kind of defect.

    Attributes:
        site_fraction: Mean equilibrium defect fraction of its candidate sites.
        log10_site_fraction: Its base-10 logarithm (finite even when the fraction underflows).
        per_cm3: Defects per cubic centimetre of the relaxed bulk.
    """

    site_fraction: float
    log10_site_fraction: float
    per_cm3: float


class BulkSummary(_Doc):
    """The relaxed defect-free supercell.

    Attributes:
        structure: pymatgen ``Structure.as_dict()``.
        formula: Realised composition of the supercell.
        n_atoms: Number of atoms.
        energy: Total energy, eV.
        energy_per_atom: eV/atom.
        volume_per_atom: Angstrom^3/atom.
        density: g/cm^3.
        descriptors: Simple structural summaries (structural descriptors from ``sbin_loop.features.structure``
            are computed from ``structure`` by the featuriser, not here).
    """

    structure: dict
    formula: str
    n_atoms: int
    energy: float
    energy_per_atom: float
    volume_per_atom: float
    density: float
    descriptors: dict[str, float] = Field(default_factory=dict)


class DefectWorkflowDoc(_Doc):
    """Everything the defect workflow produced for one composition.

    Attributes:
        formula: Requested composition.
        energy_model: Force-field name or ``VASP``, with version.
        bulk: Relaxed bulk supercell.
        chemical_potentials: Chemical potential of each removed or inserted element, eV/atom.
        vacancies: Every computed vacancy.
        statistics: Per element, vacancy formation-energy statistics over sites.
        densities: Per element, equilibrium vacancy density at ``temperature_K``.
        antisites: Every computed antisite pair.
        antisite_statistics: Antisite formation-energy statistics over pairs (``None`` without antisites).
        antisite_density: Equilibrium antisite density; candidate sites are the sites of the pairs' A-like elements.
        interstitials: Every computed interstitial.
        interstitial_statistics: Per element, interstitial formation-energy statistics over voids.
        interstitial_densities: Per element, equilibrium interstitial density; one candidate site per bulk atom (a
            convention: the site fraction does not depend on it, the density per cm^3 does).
        temperature_K: Temperature of the densities.
        settings: Supercell and defect settings used.
        code_versions: Versions of sbin and the codes the workflow ran.
        amorphous_check: Loss of long-range order of a melt-quenched bulk (``None`` for a crystalline supercell).
        competing_phases: Relaxed competing phases of the O-rich/O-poor construction (empty without it).
        host_e_above_hull: Energy of the bulk above their hull, eV/atom (placed on the hull for the limits).
        chemical_potential_limits: ``O-rich`` and ``O-poor``: chemical potential of every host element, eV/atom.
        limit_statistics: Per limit, per vacancy element, formation-energy statistics at that limit's potentials
            (``statistics`` are at element-rich potentials: for O, half the O2 molecule, which is the O-rich limit
            unless a more oxidised competing phase bounds the host first).
        oxygen_conditions: Temperature, O2 partial pressure and the oxygen chemical potential they give.
        condition_statistics: O vacancy formation-energy statistics at ``oxygen_conditions``.
        condition_densities: O vacancy density at ``oxygen_conditions``.
    """

    formula: str
    energy_model: str
    bulk: BulkSummary
    chemical_potentials: dict[str, float]
    vacancies: list[VacancySite]
    statistics: dict[str, SiteStatistics]
    densities: dict[str, DefectDensity]
    antisites: list[AntisitePair] = Field(default_factory=list)
    antisite_statistics: SiteStatistics | None = None
    antisite_density: DefectDensity | None = None
    interstitials: list[InterstitialSite] = Field(default_factory=list)
    interstitial_statistics: dict[str, SiteStatistics] = Field(default_factory=dict)
    interstitial_densities: dict[str, DefectDensity] = Field(default_factory=dict)
    temperature_K: float
    settings: dict = Field(default_factory=dict)
    code_versions: dict[str, str] = Field(default_factory=dict)
    amorphous_check: AmorphousCheck | None = None
    competing_phases: list[CompetingPhase] = Field(default_factory=list)
    host_e_above_hull: float | None = None
    chemical_potential_limits: dict[str, dict[str, float]] = Field(default_factory=dict)
    limit_statistics: dict[str, dict[str, SiteStatistics]] = Field(default_factory=dict)
    oxygen_conditions: OxygenConditions | None = None
    condition_statistics: dict[str, SiteStatistics] = Field(default_factory=dict)
    condition_densities: dict[str, DefectDensity] = Field(default_factory=dict)

    @classmethod
    def from_output(cls, output: dict | DefectWorkflowDoc) -> DefectWorkflowDoc:
        """The document from a JobStore output (a serialised dict; monty's ``@`` keys are ignored)."""
        if isinstance(output, cls):
            return output
        return cls.model_validate({key: value for key, value in output.items() if not key.startswith("@")})

    def quantities(self) -> dict[str, float]:
        """Flat scalar results, named as objectives may name them.

        ``Ef_vac_<El>_{mean,std,min,median,max}``, ``log10_vac_<El>_site_fraction``, the same for interstitials
        (``Ef_int_<El>_mean``, ``log10_int_<El>_site_fraction``, ...) and antisites (``Ef_antisite_mean``,
        ``log10_antisite_site_fraction``, ...), ``energy_per_atom`` and ``volume_per_atom``.
        """
        values = {"energy_per_atom": self.bulk.energy_per_atom, "volume_per_atom": self.bulk.volume_per_atom}
        groups = [(f"vac_{el}", self.statistics[el], self.densities[el]) for el in self.statistics]
        groups += [(f"int_{el}", s, self.interstitial_densities[el]) for el, s in self.interstitial_statistics.items()]
        if self.antisite_statistics is not None and self.antisite_density is not None:
            groups.append(("antisite", self.antisite_statistics, self.antisite_density))
        for label, stats, density in groups:
            for key in ("mean", "std", "min", "median", "max"):
                values[f"Ef_{label}_{key}"] = getattr(stats, key)
            values[f"log10_{label}_site_fraction"] = density.log10_site_fraction
        for limit, per_element in self.limit_statistics.items():
            for el, stats in per_element.items():
                values[f"Ef_vac_{el}_mean_at_{limit.replace('-', '_')}"] = stats.mean
        for el, stats in self.condition_statistics.items():
            values[f"Ef_vac_{el}_mean_at_pO2"] = stats.mean
            values[f"log10_vac_{el}_site_fraction_at_pO2"] = self.condition_densities[el].log10_site_fraction
        if self.amorphous_check is not None:
            values["long_range_order"] = self.amorphous_check.long_range_order
        return values


def check_finite(label: str, value: float) -> float:
    """Return ``value`` if finite, else raise ``ImplausibleResultError`` naming ``label``."""
    if not math.isfinite(value):
        raise ImplausibleResultError(f"{label}: energy is {value}")
    return float(value)


def site_statistics(energies: list[float]) -> SiteStatistics:
    """Statistics of one kind of defect's formation energies."""
    e = np.asarray(energies, dtype=float)
    return SiteStatistics(
        n_sites=len(e),
        mean=float(e.mean()),
        std=float(e.std()),
        min=float(e.min()),
        median=float(np.median(e)),
        max=float(e.max()),
    )


def defect_density(energies: list[float], temperature_K: float, sites_per_cm3: float) -> DefectDensity:
    """Equilibrium defect density from the formation energies of sampled sites.

    Args:
        energies: Formation energies of the sampled sites, eV.
        temperature_K: Temperature.
        sites_per_cm3: Candidate sites per cubic centimetre.
    """
    beta = 1.0 / (BOLTZMANN_EV * temperature_K)
    log_occupancy = -np.logaddexp(0.0, beta * np.asarray(energies, dtype=float))
    log_mean = float(logsumexp(log_occupancy) - math.log(len(energies)))
    fraction = math.exp(log_mean)
    return DefectDensity(
        site_fraction=fraction, log10_site_fraction=log_mean / math.log(10.0), per_cm3=fraction * sites_per_cm3
    )


RESERVOIR_ATOMS = {"vacancy": 1, "interstitial": -1, "antisite": 0}
"""Atoms of the defect's element given to the reservoir when the defect forms, by kind of defect."""


def formation_energies(
    bulk_energy: float,
    defect_energies: list[float],
    elements: list[str],
    chemical_potentials: dict[str, float],
    bounds: tuple[float, float],
    kind: str = "vacancy",
) -> list[float]:
    """Formation energies of one kind of defect, checked.

    Args:
        bulk_energy: Energy of the defect-free supercell, eV.
        defect_energies: Energy of each defect supercell, eV.
        elements: Element removed or inserted in each (a label for antisites).
        chemical_potentials: eV/atom by element (not read for antisites).
        bounds: Formation energies outside ``[low, high]`` raise.
        kind: ``vacancy``, ``interstitial`` or ``antisite`` (see ``RESERVOIR_ATOMS``).

    Raises:
        ImplausibleResultError: If an energy is not finite or a formation energy is out of bounds.
    """
    check_finite("bulk", bulk_energy)
    atoms = RESERVOIR_ATOMS[kind]
    result = []
    for position, (energy, element) in enumerate(zip(defect_energies, elements, strict=True)):
        check_finite(f"{kind} {position} ({element})", energy)
        e_f = energy - bulk_energy
        if atoms:
            e_f += atoms * check_finite(f"chemical potential of {element}", chemical_potentials[element])
        if not bounds[0] <= e_f <= bounds[1]:
            raise ImplausibleResultError(
                f"{kind} {position} ({element}): formation energy {e_f:.2f} eV outside the plausible range {bounds}"
            )
        result.append(e_f)
    return result

"""Vacancy formation energies, their statistics over sites, and equilibrium defect densities.

For a vacancy of element X at site i of a supercell, ``E_f,i = E_defect,i - E_bulk + mu_X`` (neutral defect,
chemical potential ``mu_X`` from an elemental reference computed with the same energy model). In a disordered cell
every site differs, so the sampled sites give a distribution; its statistics are the oracle's values.

The equilibrium site fraction of a site with formation energy E at temperature T is the Fermi-Dirac occupancy
``1 / (1 + exp(E / kT))`` (the dilute Boltzmann factor, bounded by one); the fraction for an element is the mean over
its sampled sites, and the densities of all elements form the "defect density vector".
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import logsumexp

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


class SiteStatistics(_Doc):
    """Distribution of one element's vacancy formation energies over sampled sites (eV)."""

    n_sites: int
    mean: float
    std: float
    min: float
    median: float
    max: float


class DefectDensity(_Doc):
    """Equilibrium vacancy density of one element.

    Attributes:
        site_fraction: Mean equilibrium vacancy fraction of the element's sites.
        log10_site_fraction: Its base-10 logarithm (finite even when the fraction underflows).
        per_cm3: Vacancies per cubic centimetre of the relaxed bulk.
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
        chemical_potentials: Chemical potential of each removed element, eV/atom.
        vacancies: Every computed vacancy.
        statistics: Per element, formation-energy statistics over sites.
        densities: Per element, equilibrium density at ``temperature_K``.
        temperature_K: Temperature of the densities.
        settings: Supercell and defect settings used.
        code_versions: Versions of sbin and the codes the workflow ran.
    """

    formula: str
    energy_model: str
    bulk: BulkSummary
    chemical_potentials: dict[str, float]
    vacancies: list[VacancySite]
    statistics: dict[str, SiteStatistics]
    densities: dict[str, DefectDensity]
    temperature_K: float
    settings: dict = Field(default_factory=dict)
    code_versions: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_output(cls, output: dict | DefectWorkflowDoc) -> DefectWorkflowDoc:
        """The document from a JobStore output (a serialised dict; monty's ``@`` keys are ignored)."""
        if isinstance(output, cls):
            return output
        return cls.model_validate({key: value for key, value in output.items() if not key.startswith("@")})

    def quantities(self) -> dict[str, float]:
        """Flat scalar results, named as objectives may name them.

        ``Ef_vac_<El>_{mean,std,min,median,max}``, ``log10_vac_<El>_site_fraction``, ``energy_per_atom`` and
        ``volume_per_atom``.
        """
        values = {"energy_per_atom": self.bulk.energy_per_atom, "volume_per_atom": self.bulk.volume_per_atom}
        for element, stats in self.statistics.items():
            for key in ("mean", "std", "min", "median", "max"):
                values[f"Ef_vac_{element}_{key}"] = getattr(stats, key)
        for element, density in self.densities.items():
            values[f"log10_vac_{element}_site_fraction"] = density.log10_site_fraction
        return values


def check_finite(label: str, value: float) -> float:
    """Return ``value`` if finite, else raise ``ImplausibleResultError`` naming ``label``."""
    if not math.isfinite(value):
        raise ImplausibleResultError(f"{label}: energy is {value}")
    return float(value)


def site_statistics(energies: list[float]) -> SiteStatistics:
    """Statistics of one element's formation energies."""
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
    """Equilibrium vacancy density from the formation energies of sampled sites.

    Args:
        energies: Formation energies of the sampled sites, eV.
        temperature_K: Temperature.
        sites_per_cm3: Sites of the element per cubic centimetre.
    """
    beta = 1.0 / (BOLTZMANN_EV * temperature_K)
    log_occupancy = -np.logaddexp(0.0, beta * np.asarray(energies, dtype=float))
    log_mean = float(logsumexp(log_occupancy) - math.log(len(energies)))
    fraction = math.exp(log_mean)
    return DefectDensity(
        site_fraction=fraction, log10_site_fraction=log_mean / math.log(10.0), per_cm3=fraction * sites_per_cm3
    )


def formation_energies(
    bulk_energy: float,
    defect_energies: list[float],
    elements: list[str],
    chemical_potentials: dict[str, float],
    bounds: tuple[float, float],
) -> list[float]:
    """Vacancy formation energies, checked.

    Args:
        bulk_energy: Energy of the defect-free supercell, eV.
        defect_energies: Energy of each vacancy supercell, eV.
        elements: Element removed in each.
        chemical_potentials: eV/atom by element.
        bounds: Formation energies outside ``[low, high]`` raise.

    Raises:
        ImplausibleResultError: If an energy is not finite or a formation energy is out of bounds.
    """
    check_finite("bulk", bulk_energy)
    result = []
    for position, (energy, element) in enumerate(zip(defect_energies, elements, strict=True)):
        check_finite(f"vacancy {position} ({element})", energy)
        e_f = energy - bulk_energy + check_finite(f"chemical potential of {element}", chemical_potentials[element])
        if not bounds[0] <= e_f <= bounds[1]:
            raise ImplausibleResultError(
                f"vacancy {position} ({element}): formation energy {e_f:.2f} eV outside the plausible range {bounds}"
            )
        result.append(e_f)
    return result

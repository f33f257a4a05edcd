"""Settings of the defect workflow an oracle runs: the supercell built per composition and the defects computed.

Defaults come from ``sbin_loop.workflows.defect_settings``, which imports nothing heavy, so a campaign config
validates without jobflow or atomate2.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from pydantic import Field, model_validator

from sbin_loop import limits
from sbin_loop.config_base import Section
from sbin_loop.workflows.defect_settings import setting_default


def _maker_default(name: str) -> Callable[[], Any]:
    """Default factory of a defect setting: the value ``DefectWorkflowMaker`` uses (``workflows/defect_settings``)."""
    return partial(setting_default, name)


class SupercellConfig(Section):
    """Site-disordered perovskite supercell built for each composition, optionally melt-quenched into a glass.

    The amorphous cell follows atomate2's MPMorph protocol with the force field: NVT runs at
    ``melt_temperature_K`` on cells strained by +-``volume_strain`` fix the equilibrium volume by a p(V) fit
    (``volume_attempts`` further runs if it lies outside), a melt of ``melt_steps`` at that volume, then a stepwise
    cooling ramp of ``quench_steps`` per ``quench_temperature_step_K`` down to ``quench_end_temperature_K``; the bulk
    relax follows, and a cell that kept ``max_long_range_order`` or more of the crystal's Bragg order fails the job.

    Attributes:
        min_atoms: Smallest number of atoms; the most compact n1 x n2 x n3 multiple of the 5-atom cubic cell with at
            least this many atoms is used (40 -> 2x2x2, 80 -> 2x2x4, 128 -> 3x3x3).
        decoration: ``random`` shuffles each sublattice; ``sqs`` additionally swaps sites to bring nearest-neighbour
            pair counts on each sublattice to their random-alloy values (special-quasirandom-like).
        sqs_steps: Swap attempts of the ``sqs`` decoration.
        lattice_parameter: Starting cubic lattice parameter in angstrom; estimated from ionic radii if not given.
        amorphous: Melt-quench the cell before the defect calculations (force field only).
        melt_temperature_K: Temperature of the volume equilibration and the melt.
        melt_steps: MD steps of the melt.
        volume_steps: MD steps of each volume-equilibration run; 0 melts at the crystal's volume.
        volume_strain: Linear strain of the first volume-equilibration runs (MPMorph uses 0.2).
        volume_attempts: Further volume runs when the fitted volume lies outside the strained ones.
        quench_end_temperature_K: The cooling ramp stops above this temperature.
        quench_temperature_step_K: Temperature drop per stage of the ramp.
        quench_steps: MD steps per stage of the ramp.
        time_step_fs: MD time step.
        max_long_range_order: Largest fraction of the crystal's Bragg order an amorphous cell may keep.
    """

    min_atoms: int = Field(default=40, ge=5, le=limits.MAX_ATOMS)
    decoration: Literal["random", "sqs"] = "sqs"
    sqs_steps: int = Field(default=2000, ge=0, le=limits.MAX_STEPS)
    lattice_parameter: float | None = Field(default=None, gt=0)
    amorphous: bool = False
    melt_temperature_K: float = Field(default=5000.0, gt=0)
    melt_steps: int = Field(default=2000, gt=0, le=limits.MAX_STEPS)
    volume_steps: int = Field(default=500, ge=0, le=limits.MAX_STEPS)
    volume_strain: float = Field(default=0.1, gt=0, lt=0.5)
    volume_attempts: int = Field(default=2, ge=0, le=100)
    quench_end_temperature_K: float = Field(default=500.0, gt=0)
    quench_temperature_step_K: float = Field(default=500.0, gt=0)
    quench_steps: int = Field(default=500, gt=0, le=limits.MAX_STEPS)
    time_step_fs: float = Field(default=2.0, gt=0, le=10.0)
    max_long_range_order: float = Field(default_factory=_maker_default("max_long_range_order"), gt=0, lt=1)

    @model_validator(mode="after")
    def _ramp_has_a_stage(self) -> SupercellConfig:
        first = self.melt_temperature_K - self.quench_temperature_step_K
        if self.amorphous and first <= self.quench_end_temperature_K:
            raise ValueError(
                f"supercell.quench_end_temperature_K ({self.quench_end_temperature_K:g}) must be below the first "
                f"cooling stage, melt_temperature_K - quench_temperature_step_K ({first:g})"
            )
        return self


class DefectConfig(Section):
    """Defects computed in each supercell and how their energies become densities.

    The fields are passed as they are to the ``DefectWorkflowMaker`` fields of the same names, whose defaults they
    take.

    Attributes:
        vacancies: Elements whose vacancies are computed (absent elements are skipped).
        sites_per_species: Sites sampled per element among the symmetry-distinct ones (every site differs in a
            disordered cell); also the number of voids each interstitial element is placed at.
        antisites: Antisite pairs sampled (0: none): an A-site cation swapped with its nearest B-site cation of
            another element (per element pair when ``antisite_pairs`` are given).
        antisite_pairs: Element pairs ``[X, Y]`` whose sites are swapped instead of the perovskite A and B sites.
        interstitials: Elements inserted at the largest voids of the relaxed bulk (none by default).
        temperature_K: Temperature of the Boltzmann (Fermi-Dirac site-occupancy) defect densities and of the oxygen
            reservoir.
        oxygen_partial_pressure_atm: O2 partial pressure of the oxygen reservoir.
        formation_energy_bounds: Formation energies (eV) outside these bounds reject the job as implausible.
        chemical_potentials: Fixed chemical potentials (eV/atom) by element; the others come from elemental
            references computed with the same energy model (O, N, F, Cl, H from molecules in a box).
        competing_phases: Compute binary-oxide competing phases for the O-rich and O-poor limits (cached per
            element in the campaign directory by the force-field oracle).
    """

    vacancies: tuple[str, ...] = Field(default_factory=_maker_default("vacancies"))
    sites_per_species: int = Field(default_factory=_maker_default("sites_per_species"), gt=0, le=limits.MAX_ATOMS)
    antisites: int = Field(default_factory=_maker_default("antisites"), ge=0, le=limits.MAX_ATOMS)
    antisite_pairs: tuple[tuple[str, str], ...] = Field(default_factory=_maker_default("antisite_pairs"))
    interstitials: tuple[str, ...] = Field(default_factory=_maker_default("interstitials"))
    temperature_K: float = Field(default_factory=_maker_default("temperature_K"), gt=0)
    oxygen_partial_pressure_atm: float = Field(default_factory=_maker_default("oxygen_partial_pressure_atm"), gt=0)
    formation_energy_bounds: tuple[float, float] = Field(default_factory=_maker_default("formation_energy_bounds"))
    chemical_potentials: dict[str, float] = Field(default_factory=_maker_default("chemical_potentials"))
    competing_phases: bool = Field(default_factory=_maker_default("competing_phases"))

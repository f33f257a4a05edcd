"""The defect workflow with atomate2 VASP makers (PBE, 400 eV), and ingestion of finished VASP calculations.

``vasp_workflow_maker`` gives the same ``DefectWorkflowMaker`` flow shape as the force-field oracle with VASP
``RelaxMaker`` s: bulk ISIF=3, defects (vacancies, antisites, interstitials) ISIF=2 (fixed cell), elemental solids
ISIF=3, molecules in a box ISIF=2 at the Gamma point. ``vacancy_doc_from_directories`` turns finished VASP runs
(vasprun.xml) into the same ``DefectWorkflowDoc``: it is what the cluster oracle's analysis computes, applied to
calculations made elsewhere.
Only neutral defects are modelled (no charge states, no finite-size corrections).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from pymatgen.io.vasp import Kpoints, Vasprun

from sbin_loop.oracles.config import VaspOracleConfig
from sbin_loop.workflows.analysis import DefectWorkflowDoc
from sbin_loop.workflows.defects import DefectWorkflowMaker, analyse_defects, maker_default

PBE_SETTINGS = {"GGA": "PE", "METAGGA": None, "LASPH": True}
"""INCAR settings that make every calculation plain PBE whatever atomate2's base set is."""


def vasp_workflow_maker(config: VaspOracleConfig) -> DefectWorkflowMaker:
    """The defect workflow built from atomate2 VASP relax makers with PBE at ``config.encut``."""
    from atomate2.vasp.jobs.core import RelaxMaker
    from atomate2.vasp.sets.core import RelaxSetGenerator

    def relax(isif: int, name: str, gamma_only: bool = False) -> RelaxMaker:
        incar = {**PBE_SETTINGS, "ENCUT": config.encut, "ISIF": isif, **config.incar_updates}
        generator = RelaxSetGenerator(
            user_incar_settings=incar, user_kpoints_settings=Kpoints.gamma_automatic() if gamma_only else None
        )
        return RelaxMaker(name=name, input_set_generator=generator)

    return DefectWorkflowMaker(
        bulk_relax_maker=relax(3, "bulk relax"),
        defect_relax_maker=relax(2, "defect relax"),
        solid_reference_maker=relax(3, "reference relax"),
        molecule_reference_maker=relax(2, "molecule relax", gamma_only=True),
        name="sbin defects (VASP PBE)",
        **dict(config.defects),
        energy_model=f"VASP PBE {config.encut:g} eV",
        packages=("atomate2", "jobflow", "pymatgen", "custodian"),
        record={"supercell": config.supercell.model_dump(mode="json"), "incar": config.incar_updates},
    )


def read_vasp_run(directory: Path) -> tuple[float, Structure]:
    """Final energy (eV) and structure of a finished VASP run (``vasprun.xml`` or ``vasprun.xml.gz``).

    Raises:
        FileNotFoundError: If the directory has no vasprun.xml.
        ValueError: If the run did not converge.
    """
    files = sorted(Path(directory).glob("vasprun.xml*"))
    if not files:
        raise FileNotFoundError(f"{directory}: no vasprun.xml")
    run = Vasprun(str(files[0]), parse_dos=False, parse_eigen=False, parse_potcar_file=False)
    if not run.converged:
        raise ValueError(f"{directory}: VASP run did not converge")
    return float(run.final_energy), run.final_structure


def vacancy_site_index(bulk: Structure, defect: Structure) -> int:
    """Index of the bulk site missing from ``defect`` (the bulk site farthest from every defect site)."""
    if len(defect) != len(bulk) - 1:
        raise ValueError(f"defect cell has {len(defect)} sites, expected one fewer than the bulk's {len(bulk)}")
    distances = bulk.lattice.get_all_distances(bulk.frac_coords, defect.frac_coords)
    return int(np.argmax(distances.min(axis=1)))


def vacancy_doc_from_directories(
    formula: str,
    bulk_dir: Path,
    defect_dirs: list[Path],
    chemical_potentials: dict[str, float],
    temperature_K: float | None = None,
    formation_energy_bounds: tuple[float, float] | None = None,
) -> DefectWorkflowDoc:
    """The workflow document from finished VASP runs of a bulk supercell and its neutral vacancies.

    Args:
        formula: Composition recorded in the document.
        bulk_dir: Directory of the bulk run.
        defect_dirs: Directories of the vacancy runs (same supercell, one site removed each).
        chemical_potentials: eV/atom of every removed element.
        temperature_K: Temperature of the densities; the workflow's default if not given.
        formation_energy_bounds: Plausible range of formation energies, eV; the workflow's default if not given.
    """
    bulk_energy, bulk = read_vasp_run(bulk_dir)
    runs = [read_vasp_run(directory) for directory in defect_dirs]
    settings = {
        "chemical_potentials": chemical_potentials,
        "temperature_K": maker_default("temperature_K") if temperature_K is None else temperature_K,
        "formation_energy_bounds": list(formation_energy_bounds or maker_default("formation_energy_bounds")),
        "energy_model": "VASP",
        "packages": ["pymatgen"],
        "source": [str(bulk_dir), *map(str, defect_dirs)],
    }
    return analyse_defects.original(
        formula,
        bulk,
        bulk_energy,
        [vacancy_site_index(bulk, structure) for _, structure in runs],
        [energy for energy, _ in runs],
        {},
        settings,
    )

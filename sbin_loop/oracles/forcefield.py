"""Force-field defect oracle: the defect workflow with a universal ML potential, run here with jobflow.

Each job builds the composition's disordered supercell, runs the ``DefectWorkflowMaker`` flow of atomate2
force-field makers with ``jobflow.run_locally`` (a MontyStore JobStore in the job's directory keeps every job
output), and returns the flow's ``DefectWorkflowDoc`` with its scalar quantities as values. Jobs run in worker
processes (``ProcessOracle``) so the loop polls them asynchronously and a job over its time limit is killed.
Every calculation runs in ``work/`` of the job's directory inside the campaign (ASE and atomate2 write files into the
current directory), and the competing phases of the O-rich/O-poor limits are cached per element in the campaign's
``phases/`` directory. With ``supercell.amorphous`` the supercell is first melt-quenched by atomate2's MPMorph
force-field flow.

The energies are a consistent lower fidelity, not DFT: the vacancy formation energy depends on the supercell size
(not converged at 40-135 atoms), so a campaign fixes the size.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from jobflow import Flow, Maker
from pymatgen.core import Structure

from sbin_loop.oracles.base import JobRequest, OracleOutcome, rename_values
from sbin_loop.oracles.config import ForceFieldOracleConfig, VaspOracleConfig
from sbin_loop.oracles.process import ProcessOracle
from sbin_loop.workflows.analysis import DefectWorkflowDoc
from sbin_loop.workflows.defects import DefectWorkflowMaker
from sbin_loop.workflows.perovskite import build_supercell
from sbin_loop.workflows.phase_cache import PhaseCache

VERSION = "1"

_PACKAGES = {"CHGNet": "chgnet", "SevenNet": "sevenn", "M3GNet": "matgl", "MACE-MP-0": "mace-torch"}
"""Package of each force field (recorded with its version in every result)."""


def candidate_seed(seed: int, candidate_id: str) -> int:
    """A 31-bit seed from the oracle seed and a candidate id (stable across processes and platforms)."""
    digest = hashlib.sha256(f"{seed}:{candidate_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1


def candidate_supercell(
    config: ForceFieldOracleConfig | VaspOracleConfig, request: JobRequest
) -> tuple[int, Structure]:
    """The job's seed and its decorated perovskite supercell, built as the oracle's ``supercell`` section says."""
    seed = candidate_seed(config.seed, request.candidate_id)
    cell = config.supercell
    supercell = build_supercell(
        request.formula,
        min_atoms=cell.min_atoms,
        decoration=cell.decoration,
        seed=seed,
        sqs_steps=cell.sqs_steps,
        lattice_parameter=cell.lattice_parameter,
    )
    return seed, supercell


def forcefield_workflow_maker(config: ForceFieldOracleConfig) -> DefectWorkflowMaker:
    """The defect workflow built from atomate2 force-field makers for the configured potential."""
    from atomate2.forcefields.jobs import ForceFieldRelaxMaker

    def relax(relax_cell: bool) -> ForceFieldRelaxMaker:
        return ForceFieldRelaxMaker(
            force_field_name=config.force_field,
            relax_cell=relax_cell,
            steps=config.max_steps,
            relax_kwargs={"fmax": config.fmax},
        )

    cell = config.supercell
    return DefectWorkflowMaker(
        bulk_relax_maker=relax(relax_cell=True),
        defect_relax_maker=relax(relax_cell=False),
        solid_reference_maker=relax(relax_cell=True),
        molecule_reference_maker=relax(relax_cell=False),
        amorphous_maker=amorphous_maker(config) if cell.amorphous else None,
        max_long_range_order=cell.max_long_range_order,
        name=f"sbin defects ({config.force_field})",
        **dict(config.defects),
        energy_model=config.force_field,
        packages=(
            "atomate2",
            "jobflow",
            "pymatgen",
            "ase",
            "torch",
            _PACKAGES.get(config.force_field, config.force_field.lower()),
        ),
        record={"supercell": cell.model_dump(mode="json"), "fmax": config.fmax, "max_steps": config.max_steps},
    )


def amorphous_maker(config: ForceFieldOracleConfig) -> Maker:
    """atomate2's MPMorph force-field flow: volume equilibration, melt, stepwise cooling (``SupercellConfig``).

    The MD uses Berendsen velocity rescaling (relaxation time 100 fs) instead of atomate2's default Langevin
    thermostat, whose random forces are not seeded: with seeded initial velocities the melt-quench is reproducible.
    """
    from ase import units
    from atomate2.common.flows.mpmorph import EquilibriumVolumeMaker
    from atomate2.forcefields.flows.mpmorph import MPMorphMLFFMDMaker, SlowQuenchMLFFMDMaker
    from atomate2.forcefields.md import ForceFieldMDMaker

    cell = config.supercell

    def md(name: str, steps: int) -> ForceFieldMDMaker:
        return ForceFieldMDMaker(
            name=name,
            force_field_name=config.force_field,
            temperature=cell.melt_temperature_K,
            n_steps=steps,
            time_step=cell.time_step_fs,
            ensemble="nvt",
            dynamics="berendsen",
            ase_md_kwargs={"taut": 100.0 * units.fs},
            store_trajectory="no",
            mb_velocity_seed=config.seed,
        )

    volume = (
        EquilibriumVolumeMaker(
            md_maker=md("volume equilibration MD", cell.volume_steps),
            initial_strain=cell.volume_strain,
            max_attempts=cell.volume_attempts,
        )
        if cell.volume_steps
        else None
    )
    quench = SlowQuenchMLFFMDMaker(
        md_maker=md("quench MD", cell.quench_steps),
        quench_start_temperature=cell.melt_temperature_K - cell.quench_temperature_step_K,
        quench_end_temperature=cell.quench_end_temperature_K,
        quench_temperature_step=cell.quench_temperature_step_K,
        quench_n_steps=cell.quench_steps,
    )
    return MPMorphMLFFMDMaker(
        name="MPMorph melt-quench",
        equilibrium_volume_maker=volume,
        production_md_maker=md("melt MD", cell.melt_steps),
        quench_maker=quench,
    )


def run_flow(flow: Flow, job_dir: Path) -> DefectWorkflowDoc:
    """Run a defect flow with every calculation in ``job_dir/work`` and its outputs in ``job_dir/jobflow``.

    Raises:
        RuntimeError: If the flow stopped before its analysis (an atomate2 step ended it without an error).
    """
    from jobflow import JobStore, run_locally
    from maggma.stores import MontyStore

    database = str(job_dir / "jobflow")
    store = JobStore(
        MontyStore("outputs", database_path=database),
        additional_stores={"data": MontyStore("data", database_path=database)},
    )
    work = job_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    run_locally(flow, store=store, root_dir=work, log=False, raise_immediately=True)
    try:
        output = store.get_output(flow.jobs[-1].uuid)
    except ValueError:
        raise RuntimeError(
            f"{flow.name}: the flow stopped before the defect analysis (e.g. no equation-of-state fit in the "
            "amorphous volume equilibration)"
        ) from None
    return DefectWorkflowDoc.from_output(output)


@dataclasses.dataclass(frozen=True)
class ForceFieldTask:
    """Computes one composition in a worker process.

    Attributes:
        config: The oracle's settings.
        maker: The workflow maker (its ``seed`` is replaced per candidate).
        phase_cache: Directory of the per-element competing-phase cache; none if not given.
    """

    config: ForceFieldOracleConfig
    maker: DefectWorkflowMaker
    phase_cache: Path | None = None

    def __call__(self, request: JobRequest, job_dir: Path) -> OracleOutcome:
        """Build the supercell, run the flow locally, return the workflow document and its values."""
        import torch

        torch.set_num_threads(self.config.threads_per_worker)
        seed, supercell = candidate_supercell(self.config, request)
        maker = dataclasses.replace(
            self.maker, seed=seed, record={**self.maker.record, "max_fraction_error": supercell.max_fraction_error}
        )
        cache = PhaseCache(self.phase_cache) if self.phase_cache is not None else None
        elements = [el.symbol for el in supercell.structure.composition.elements]
        known = cache.load(elements) if cache is not None else []
        flow = maker.make(
            supercell.structure, formula=request.formula, sublattice=supercell.sublattice, known_phases=known
        )
        doc = run_flow(flow, job_dir)
        if cache is not None:
            cached = {phase.element for phase in known}
            cache.store(phase for phase in doc.competing_phases if phase.element not in cached)
        return OracleOutcome(
            job_id=request.job_id,
            status="completed",
            values=rename_values(doc.quantities(), self.config.values),
            document=doc.model_dump(mode="json"),
            provenance={
                "energy_model": doc.energy_model,
                "code_versions": doc.code_versions,
                "n_atoms": doc.bulk.n_atoms,
                "flow_uuid": flow.uuid,
                "jobflow_store": str(job_dir / "jobflow"),
            },
        )


def forcefield_oracle(config: ForceFieldOracleConfig, work_dir: Path) -> ProcessOracle:
    """The force-field defect oracle for a campaign.

    Args:
        config: The oracle's settings.
        work_dir: Directory of the job directories (jobflow stores, logs, outcomes, calculations) and of the
            competing-phase cache, inside the campaign directory.
    """
    cache = work_dir / "phases" / PhaseCache.key(config.force_field, f"fmax{config.fmax:g}", f"steps{config.max_steps}")
    return ProcessOracle(
        name=f"forcefield:{config.force_field}",
        version=VERSION,
        task=ForceFieldTask(config, forcefield_workflow_maker(config), cache),
        work_dir=work_dir,
        workers=config.workers,
        timeout_seconds=config.timeout_seconds,
    )

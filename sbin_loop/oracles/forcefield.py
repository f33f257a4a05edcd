"""Force-field defect oracle: the defect workflow with a universal ML potential, run here with jobflow.

Each job builds the composition's disordered supercell, runs the ``DefectWorkflowMaker`` flow of atomate2
force-field makers with ``jobflow.run_locally`` (a MontyStore JobStore in the job's directory keeps every job
output), and returns the flow's ``DefectWorkflowDoc`` with its scalar quantities as values. Jobs run in worker
processes (``ProcessOracle``) so the loop polls them asynchronously and a job over its time limit is killed.

The energies are a consistent lower fidelity, not DFT: the vacancy formation energy depends on the supercell size
(not converged at 40-135 atoms), so a campaign fixes the size.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from pymatgen.core import Structure

from sbin_loop.config import ForceFieldOracleConfig, VaspOracleConfig
from sbin_loop.oracles.base import JobRequest, OracleOutcome, rename_values
from sbin_loop.oracles.process import ProcessOracle
from sbin_loop.workflows.analysis import DefectWorkflowDoc
from sbin_loop.workflows.defects import DefectWorkflowMaker
from sbin_loop.workflows.perovskite import build_supercell

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
    from atomate2.forcefields.md import ForceFieldMDMaker

    def relax(relax_cell: bool) -> ForceFieldRelaxMaker:
        return ForceFieldRelaxMaker(
            force_field_name=config.force_field,
            relax_cell=relax_cell,
            steps=config.max_steps,
            relax_kwargs={"fmax": config.fmax},
        )

    cell = config.supercell
    melt = (
        ForceFieldMDMaker(
            force_field_name=config.force_field,
            temperature=cell.melt_temperature_K,
            n_steps=cell.melt_steps,
            time_step=2.0,
            ensemble="nvt",
            store_trajectory="no",
        )
        if cell.amorphous
        else None
    )
    return DefectWorkflowMaker(
        bulk_relax_maker=relax(relax_cell=True),
        defect_relax_maker=relax(relax_cell=False),
        solid_reference_maker=relax(relax_cell=True),
        molecule_reference_maker=relax(relax_cell=False),
        melt_maker=melt,
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


@dataclasses.dataclass(frozen=True)
class ForceFieldTask:
    """Computes one composition in a worker process.

    Attributes:
        config: The oracle's settings.
        maker: The workflow maker (its ``seed`` is replaced per candidate).
    """

    config: ForceFieldOracleConfig
    maker: DefectWorkflowMaker

    def __call__(self, request: JobRequest, job_dir: Path) -> OracleOutcome:
        """Build the supercell, run the flow locally, return the workflow document and its values."""
        import torch
        from jobflow import JobStore, run_locally
        from maggma.stores import MontyStore

        torch.set_num_threads(self.config.threads_per_worker)
        seed, supercell = candidate_supercell(self.config, request)
        maker = dataclasses.replace(
            self.maker, seed=seed, record={**self.maker.record, "max_fraction_error": supercell.max_fraction_error}
        )
        flow = maker.make(supercell.structure, formula=request.formula, sublattice=supercell.sublattice)
        database = str(job_dir / "jobflow")
        store = JobStore(
            MontyStore("outputs", database_path=database),
            additional_stores={"data": MontyStore("data", database_path=database)},
        )
        run_locally(flow, store=store, root_dir=job_dir, log=False, raise_immediately=True)
        doc = DefectWorkflowDoc.from_output(store.get_output(flow.jobs[-1].uuid))
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
                "jobflow_store": database,
            },
        )


def forcefield_oracle(config: ForceFieldOracleConfig, work_dir: Path) -> ProcessOracle:
    """The force-field defect oracle for a campaign.

    Args:
        config: The oracle's settings.
        work_dir: Directory of the job directories (jobflow stores, logs, outcomes).
    """
    return ProcessOracle(
        name=f"forcefield:{config.force_field}",
        version=VERSION,
        task=ForceFieldTask(config, forcefield_workflow_maker(config)),
        work_dir=work_dir,
        workers=config.workers,
        timeout_seconds=config.timeout_seconds,
    )

"""Settings of the defect-workflow oracles: the force-field workflow run here and the VASP one on a cluster."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sbin_loop import limits
from sbin_loop.oracles.config_base import OracleBase
from sbin_loop.workflows.config import DefectConfig, SupercellConfig


class DefectOracleBase(OracleBase):
    """Settings the force-field and VASP defect workflows share.

    Attributes:
        supercell: Supercell construction.
        defects: Defects and densities.
        values: Objective name -> quantity of the result (e.g. ``Ef_vac_O: Ef_vac_O_mean``, ``Ef_antisite_mean``,
            ``Ef_int_O_min``, ``log10_int_O_site_fraction``; see ``DefectWorkflowDoc.quantities``); quantities whose
            names equal an objective's name are returned without a mapping.
        seed: Seed of the decoration and site sampling (combined with each candidate's id).
    """

    supercell: SupercellConfig = SupercellConfig()
    defects: DefectConfig = Field(default_factory=DefectConfig)
    values: dict[str, str] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0, le=limits.MAX_SEED)


class ForceFieldOracleConfig(DefectOracleBase):
    """Defect workflow with a universal machine-learned potential, run here through jobflow.

    Attributes:
        kind: Discriminator, ``forcefield``.
        force_field: atomate2 force-field name (``CHGNet`` ships its weights; others may download them).
        fmax: Force convergence of relaxations, eV/angstrom.
        max_steps: Optimiser steps per relaxation.
        workers: Jobs run at once, each in its own process.
        threads_per_worker: Torch threads per worker process.
    """

    kind: Literal["forcefield"] = "forcefield"
    force_field: str = "CHGNet"
    fmax: float = Field(default=0.05, gt=0)
    max_steps: int = Field(default=500, gt=0, le=limits.MAX_STEPS)
    workers: int = Field(default=1, gt=0, le=limits.MAX_THREADS)
    threads_per_worker: int = Field(default=1, gt=0, le=limits.MAX_THREADS)


class VaspOracleConfig(DefectOracleBase):
    """The same defect workflow with atomate2 VASP makers (PBE), submitted to a cluster through jobflow-remote.

    Attributes:
        kind: Discriminator, ``vasp``.
        encut: Plane-wave cutoff, eV.
        incar_updates: Further INCAR settings for every calculation.
        supercell: Supercell construction; at least 128 atoms by default.
        worker: jobflow-remote worker that runs the jobs (required to submit).
        project: jobflow-remote project; its default project if not given.
    """

    kind: Literal["vasp"] = "vasp"
    encut: float = Field(default=400.0, gt=0)
    incar_updates: dict[str, str | int | float | bool] = Field(default_factory=dict)
    supercell: SupercellConfig = SupercellConfig(min_atoms=128)
    worker: str | None = None
    project: str | None = None

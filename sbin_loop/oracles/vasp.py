"""VASP defect oracle: the vacancy flow with atomate2 VASP makers, submitted to a cluster through jobflow-remote.

``submit`` builds each composition's supercell (at least 128 atoms by default) and flow and hands it to
jobflow-remote (``submit_flow(flow, worker=..., project=...)``); ``poll`` asks jobflow-remote's ``JobController``
for the flows' states and reads the analysis output from the project's JobStore. jobflow-remote is an optional
dependency (extra ``remote``); it needs a configured project (MongoDB queue store, worker with VASP) that this
environment does not have, so this module is exercised here only up to building and checking the flows.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType

from jobflow import Flow

from sbin_loop.config import VaspOracleConfig
from sbin_loop.oracles.base import JobRequest, OracleOutcome, rename_values
from sbin_loop.oracles.forcefield import candidate_supercell
from sbin_loop.workflows.analysis import DefectWorkflowDoc
from sbin_loop.workflows.defects import DefectWorkflowMaker
from sbin_loop.workflows.vasp import vasp_workflow_maker

VERSION = "1"


class RemoteUnavailableError(RuntimeError):
    """jobflow-remote is missing or not configured; the message says what to install or set."""


def _jobflow_remote() -> ModuleType:
    try:
        import jobflow_remote
    except ImportError:
        raise RemoteUnavailableError(
            "the vasp oracle submits through jobflow-remote, which is not installed: pip install 'sbin-loop[remote]' "
            "and configure a project (jf project generate) with a worker that runs VASP"
        ) from None
    return jobflow_remote


def build_vasp_flow(config: VaspOracleConfig, request: JobRequest, maker: DefectWorkflowMaker | None = None) -> Flow:
    """The VASP defect flow for one job (supercell decorated with the candidate's seed)."""
    seed, supercell = candidate_supercell(config, request)
    maker = dataclasses.replace(maker or vasp_workflow_maker(config), seed=seed)
    return maker.make(supercell.structure, formula=request.formula, sublattice=supercell.sublattice)


class VaspDefectOracle:
    """Submits VASP vacancy flows through jobflow-remote and collects their documents.

    Args:
        config: The oracle's settings (``worker`` is required).

    Raises:
        RemoteUnavailableError: If jobflow-remote is not installed or no worker is configured.
    """

    name = "vasp"
    version = VERSION

    def __init__(self, config: VaspOracleConfig) -> None:
        if config.worker is None:
            raise RemoteUnavailableError("oracle kind vasp needs `worker:` naming a jobflow-remote worker")
        self._remote = _jobflow_remote()
        self._config = config
        self._maker = vasp_workflow_maker(config)
        self._flows: dict[str, tuple[str, str]] = {}

    def submit(self, requests: list[JobRequest]) -> None:
        """Build and submit one flow per job attempt not submitted yet."""
        for request in requests:
            if request.key in self._flows:
                continue
            flow = build_vasp_flow(self._config, request, self._maker)
            self._remote.submit_flow(flow, worker=self._config.worker, project=self._config.project)
            self._flows[request.key] = (flow.uuid, flow.jobs[-1].uuid)

    def known(self, requests: list[JobRequest]) -> set[str]:
        """Job ids whose attempt was submitted by this oracle."""
        return {request.job_id for request in requests if request.key in self._flows}

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        """Outcomes, by job id, of the attempts whose flows completed or failed."""
        from jobflow_remote.jobs.jobcontroller import JobController
        from jobflow_remote.jobs.state import FlowState

        controller = JobController.from_project_name(self._config.project)
        outcomes = {}
        for request in requests:
            if request.key not in self._flows:
                continue
            flow_uuid, analysis_uuid = self._flows[request.key]
            info = controller.get_flows_info(flow_ids=[flow_uuid])
            state = info[0].state if info else None
            provenance = {
                "oracle": self.name,
                "version": self.version,
                "flow_uuid": flow_uuid,
                "attempt": request.attempt,
            }
            if state == FlowState.FAILED:
                error = f"jobflow-remote flow {flow_uuid} failed"
                outcomes[request.job_id] = OracleOutcome(
                    job_id=request.job_id, status="failed", error=error, provenance=provenance
                )
            elif state == FlowState.COMPLETED:
                doc = DefectWorkflowDoc.from_output(controller.jobstore.get_output(analysis_uuid))
                outcomes[request.job_id] = OracleOutcome(
                    job_id=request.job_id,
                    status="completed",
                    values=rename_values(doc.quantities(), self._config.values),
                    document=doc.model_dump(mode="json"),
                    provenance={**provenance, "code_versions": doc.code_versions},
                )
        return outcomes

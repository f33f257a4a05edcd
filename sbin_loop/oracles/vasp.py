"""VASP defect oracle: the vacancy flow with atomate2 VASP makers, submitted to a cluster through jobflow-remote.

``submit`` builds each composition's supercell (at least 128 atoms by default) and flow and hands it to
jobflow-remote (``submit_flow(flow, worker=..., project=...)``); ``poll`` asks jobflow-remote's ``JobController``
for the flows' states and reads the analysis output from the project's JobStore.

Every submission is first written to a ledger (JSON lines, fsynced) with the uuid of the flow about to be submitted,
so a restarted campaign knows which attempts reached the cluster: an attempt is known when its ledger entry's flow is
in jobflow-remote's database. A crash between the ledger write and the submission leaves an entry whose flow never
arrived; that attempt counts as not submitted and is submitted again. No VASP flow is ever submitted twice for one
attempt, however the campaign process dies.

jobflow-remote is an optional dependency (extra ``remote``) and needs a configured project (MongoDB queue store,
worker with VASP) that this environment does not have; the tests exercise this module against a stand-in of the
jobflow-remote calls it makes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from jobflow import Flow

from sbin_loop.oracles.base import JobRequest, OracleOutcome, rename_values
from sbin_loop.oracles.config import VaspOracleConfig
from sbin_loop.oracles.forcefield import candidate_supercell
from sbin_loop.oracles.ledger import append_lines, read_json_objects
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
        ledger: JSON-lines file of every submission (attempt, flow uuid, analysis job uuid); read back on start.

    Raises:
        RemoteUnavailableError: If jobflow-remote is not installed or no worker is configured.
    """

    name = "vasp"
    version = VERSION

    def __init__(self, config: VaspOracleConfig, ledger: Path) -> None:
        if config.worker is None:
            raise RemoteUnavailableError("oracle kind vasp needs `worker:` naming a jobflow-remote worker")
        self._remote = _jobflow_remote()
        self._config = config
        self._maker = vasp_workflow_maker(config)
        self._ledger = ledger
        self._flows = self._read_ledger()
        self._controller = None

    def _read_ledger(self) -> dict[str, tuple[str, str]]:
        """Attempt key -> (flow uuid, analysis job uuid) of its latest recorded submission."""
        return {entry["key"]: (entry["flow_uuid"], entry["analysis_uuid"]) for entry in read_json_objects(self._ledger)}

    def _record(self, key: str, flow: Flow) -> None:
        """Write the attempt's flow to the ledger, on disk, before it is submitted."""
        entry = {"key": key, "flow_uuid": flow.uuid, "analysis_uuid": flow.jobs[-1].uuid}
        append_lines(self._ledger, [json.dumps(entry)])
        self._flows[key] = (entry["flow_uuid"], entry["analysis_uuid"])

    def _job_controller(self) -> Any:
        """The project's jobflow-remote ``JobController``, created on first use (jobflow-remote is optional)."""
        if self._controller is None:
            from jobflow_remote.jobs.jobcontroller import JobController

            self._controller = JobController.from_project_name(self._config.project)
        return self._controller

    def _flow_state(self, key: str) -> Any:
        """jobflow-remote's ``FlowState`` of the flow the ledger records for this attempt; ``None`` if it holds none."""
        if key not in self._flows:
            return None
        info = self._job_controller().get_flows_info(flow_ids=[self._flows[key][0]])
        return info[0].state if info else None

    def _submitted(self, key: str) -> bool:
        """Whether jobflow-remote holds the flow the ledger records for this attempt."""
        return self._flow_state(key) is not None

    def submit(self, requests: list[JobRequest]) -> None:
        """Build, record and submit one flow per job attempt that jobflow-remote does not hold yet."""
        for request in requests:
            if self._submitted(request.key):
                continue
            flow = build_vasp_flow(self._config, request, self._maker)
            self._record(request.key, flow)
            self._remote.submit_flow(flow, worker=self._config.worker, project=self._config.project)

    def known(self, requests: list[JobRequest]) -> set[str]:
        """Job ids whose attempt reached jobflow-remote (read from the ledger and the queue, so across restarts)."""
        return {request.job_id for request in requests if self._submitted(request.key)}

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        """Outcomes, by job id, of the attempts whose flows completed or failed."""
        from jobflow_remote.jobs.state import FlowState

        outcomes = {}
        for request in requests:
            state = self._flow_state(request.key)
            if state is None:
                continue
            flow_uuid, analysis_uuid = self._flows[request.key]
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
                doc = DefectWorkflowDoc.from_output(self._job_controller().jobstore.get_output(analysis_uuid))
                outcomes[request.job_id] = OracleOutcome(
                    job_id=request.job_id,
                    status="completed",
                    values=rename_values(doc.quantities(), self._config.values),
                    document=doc.model_dump(mode="json"),
                    provenance={**provenance, "code_versions": doc.code_versions},
                )
        return outcomes

    def close(self) -> None:
        """Nothing to release."""

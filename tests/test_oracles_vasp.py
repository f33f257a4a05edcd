"""VASP variant: flows built with PBE / 400 eV / >= 128 atoms, and real VASP outputs ingested."""

from __future__ import annotations

import sys
import types
from enum import Enum
from pathlib import Path
from types import SimpleNamespace

import pytest
from pymatgen.core import Structure

from sbin_loop.oracles import JobRequest
from sbin_loop.oracles.config import VaspOracleConfig
from sbin_loop.oracles.vasp import RemoteUnavailableError, VaspDefectOracle, build_vasp_flow
from sbin_loop.workflows.vasp import vacancy_doc_from_directories, vasp_workflow_maker

FIXTURES = Path(__file__).parent / "fixtures" / "vasp_v_N_GaN"


def test_vasp_flow_inputs_are_pbe_400_ev_on_128_plus_atoms():
    defects = {"vacancies": ["O", "Sr"], "sites_per_species": 2, "antisites": 1, "interstitials": ["O"]}
    config = VaspOracleConfig(worker="cluster", defects=defects)
    flow = build_vasp_flow(config, JobRequest(job_id="j", candidate_id="SrTiO3", formula="La0.5Sr0.5TiO3", round=0))
    names = [job.name for job in flow.jobs]
    assert names[0] == "bulk relax" and names[-1] == "defect analysis"
    assert sum(name.startswith("vacancy ") and name.endswith(" relax") for name in names) == 4
    extra = [job for job in flow.jobs if job.name.startswith(("antisite ", "interstitial "))]
    assert sorted(job.name.split()[0] for job in extra) == ["antisite", "interstitial", "interstitial"]
    assert sum(name == "reference O O2" for name in names) == 1 and any("Sr fcc" in n for n in names)
    supercell = flow.jobs[0].function_args[0]
    assert isinstance(supercell, Structure) and len(supercell) >= 128

    maker = vasp_workflow_maker(config)
    for relax, isif in ((maker.bulk_relax_maker, 3), (maker.defect_relax_maker, 2)):
        inputs = relax.input_set_generator.get_input_set(supercell, potcar_spec=True)
        assert inputs.incar["ENCUT"] == 400 and inputs.incar["GGA"].upper() == "PE" and inputs.incar["ISIF"] == isif
        assert "METAGGA" not in inputs.incar and len(inputs.poscar.structure) >= 128
    for relax in extra:  # the antisite and interstitial relaxations are fixed-cell PBE runs too
        inputs = relax.maker.input_set_generator.get_input_set(supercell, potcar_spec=True)
        assert inputs.incar["ISIF"] == 2 and inputs.incar["ENCUT"] == 400 and inputs.incar["GGA"].upper() == "PE"
    molecule = maker.molecule_reference_maker.input_set_generator.get_input_set(supercell, potcar_spec=True)
    assert list(molecule.kpoints.kpts[0]) == [1, 1, 1]


def test_vasp_oracle_names_what_is_missing():
    with pytest.raises(RemoteUnavailableError, match="worker"):
        VaspDefectOracle(VaspOracleConfig(), Path("unused.jsonl"))
    with pytest.raises(RemoteUnavailableError, match="jobflow-remote"):
        VaspDefectOracle(VaspOracleConfig(worker="cluster"), Path("unused.jsonl"))


class FlowState(Enum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class StandInRemote:
    """The jobflow-remote calls the oracle makes, over an in-memory queue: submit_flow, the JobController's
    get_flows_info and its jobstore's get_output. ``crash_next`` makes the next submission die before it arrives.
    """

    def __init__(self) -> None:
        self.flows: dict[str, FlowState] = {}
        self.outputs: dict[str, dict] = {}
        self.submissions: list[tuple[str, str, str | None]] = []
        self.crash_next = False
        self.jobstore = SimpleNamespace(get_output=lambda uuid: self.outputs[uuid])

    def submit_flow(self, flow, worker: str, project: str | None = None) -> None:
        if self.crash_next:
            self.crash_next = False
            raise KeyboardInterrupt  # the process dies after the ledger write, before the queue has the flow
        self.flows[flow.uuid] = FlowState.RUNNING
        self.submissions.append((flow.uuid, worker, project))

    def get_flows_info(self, flow_ids: list[str]) -> list:
        return [SimpleNamespace(state=self.flows[uuid]) for uuid in flow_ids if uuid in self.flows]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        package = types.ModuleType("jobflow_remote")
        package.submit_flow = self.submit_flow
        controller = types.ModuleType("jobflow_remote.jobs.jobcontroller")
        controller.JobController = SimpleNamespace(from_project_name=lambda name: self)
        state = types.ModuleType("jobflow_remote.jobs.state")
        state.FlowState = FlowState
        for name, module in [
            ("jobflow_remote", package),
            ("jobflow_remote.jobs", types.ModuleType("jobflow_remote.jobs")),
            ("jobflow_remote.jobs.jobcontroller", controller),
            ("jobflow_remote.jobs.state", state),
        ]:
            monkeypatch.setitem(sys.modules, name, module)


def test_vasp_submissions_survive_restarts_and_are_never_doubled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    remote = StandInRemote()
    remote.install(monkeypatch)
    config = VaspOracleConfig(worker="cluster", project="defects", values={"Ef_vac_N": "Ef_vac_N_mean"})
    ledger = tmp_path / "vasp" / "submitted.jsonl"
    first = JobRequest(job_id="c:r0:SrTiO3", candidate_id="SrTiO3", formula="SrTiO3", round=0)
    second = JobRequest(job_id="c:r0:BaTiO3", candidate_id="BaTiO3", formula="BaTiO3", round=0)

    VaspDefectOracle(config, ledger).submit([first])
    remote.crash_next = True
    with pytest.raises(KeyboardInterrupt):
        VaspDefectOracle(config, ledger).submit([second])
    assert len(ledger.read_text().splitlines()) == 2 and len(remote.submissions) == 1
    with ledger.open("a") as handle:  # a third submission died while its ledger line was being written
        handle.write('{"key": "c:r0:CaTiO3@1", "flow_u')

    restarted = VaspDefectOracle(config, ledger)  # what a restarted campaign reconciles against
    assert restarted.known([first, second]) == {first.job_id}
    restarted.submit([first, second])  # the loop resubmits only what is not known; submit() checks again anyway
    assert [worker for _, worker, _ in remote.submissions] == ["cluster", "cluster"]
    assert {project for _, _, project in remote.submissions} == {"defects"}
    assert restarted.known([first, second]) == {first.job_id, second.job_id}
    assert restarted.poll([first, second]) == {}  # both running

    flow_uuids = [uuid for uuid, _, _ in remote.submissions]
    remote.flows[flow_uuids[0]] = FlowState.FAILED
    remote.flows[flow_uuids[1]] = FlowState.COMPLETED
    doc = vacancy_doc_from_directories("GaN", FIXTURES / "bulk", [FIXTURES / "q=0"], {"N": -8.3})
    # The analysis job of each submitted flow, as recorded in the ledger, has the workflow document as output.
    remote.outputs.update({analysis: doc.model_dump(mode="json") for _, analysis in restarted._flows.values()})
    outcomes = VaspDefectOracle(config, ledger).poll([first, second])
    assert outcomes[first.job_id].status == "failed" and "failed" in outcomes[first.job_id].error
    done = outcomes[second.job_id]
    assert done.status == "completed" and done.values["Ef_vac_N"] == pytest.approx(doc.statistics["N"].mean)
    assert done.provenance["flow_uuid"] == flow_uuids[1] and done.document["bulk"]["n_atoms"] == 32


def test_real_vasp_outputs_ingest_into_the_workflow_document():
    mu_n = -8.3
    doc = vacancy_doc_from_directories("GaN", FIXTURES / "bulk", [FIXTURES / "q=0"], {"N": mu_n})
    (vacancy,) = doc.vacancies
    assert vacancy.element == "N" and vacancy.neighbours == {"Ga": 4}
    assert vacancy.formation_energy == pytest.approx(-200.60111399 + 213.90677977 + mu_n, abs=1e-6)
    assert doc.bulk.n_atoms == 32 and doc.statistics["N"].n_sites == 1
    assert doc.quantities()["Ef_vac_N_mean"] == pytest.approx(vacancy.formation_energy)

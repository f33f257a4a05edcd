"""Robot synthesis: file queue round trip, simulated lab with delays, noise and failures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sbin_loop.oracles import JobRequest, checked_outcome
from sbin_loop.oracles.config import SimulatedLabConfig, SynthesisConditions
from sbin_loop.oracles.file_queue import FileQueueBackend
from sbin_loop.oracles.synthesis import SimulatedLab, SynthesisOracle, SynthesisResult
from sbin_loop.space import read_formula_table


def _job(candidate: str, attempt: int = 1) -> JobRequest:
    return JobRequest(job_id=f"c:r1:{candidate}", candidate_id=candidate, formula=candidate, round=1, attempt=attempt)


def _queue(outbox: Path, inbox: Path) -> FileQueueBackend:
    """A file queue whose ledger sits beside its directories, as the campaign's ``oracle/`` does."""
    return FileQueueBackend(outbox, inbox, outbox.parent / "oracle" / "requests.jsonl")


def test_file_queue_round_trip(tmp_path: Path):
    backend = _queue(tmp_path / "out", tmp_path / "in")
    oracle = SynthesisOracle(backend, SynthesisConditions(batch_mmol=2.0), {"Tc": "Tc_K"})
    jobs = [_job("YBa2Cu3O7"), _job("MgB2")]
    oracle.submit(jobs)
    sent = [json.loads(path.read_text()) for path in (tmp_path / "out").glob("*.json")]
    requests = {request["formula"]: request for request in sent}
    assert requests["YBa2Cu3O7"]["target_mmol"]["Cu"] == pytest.approx(6.0)
    assert oracle.poll(jobs) == {} and oracle.known(jobs) == {"c:r1:MgB2", "c:r1:YBa2Cu3O7"}

    ok = SynthesisResult(request_id=requests["MgB2"]["request_id"], status="completed", measurements={"Tc_K": 38.5})
    (tmp_path / "in" / "a.json").write_text(ok.model_dump_json())
    (tmp_path / "in" / "b.json").write_text('{"request_id": "x", "status": "maybe"}')
    bad = {"request_id": requests["YBa2Cu3O7"]["request_id"], "status": "completed", "measurements": {"Tc_K": -3}}
    (tmp_path / "in" / "c.json").write_text(json.dumps(bad))

    outcomes = oracle.poll(jobs)
    assert checked_outcome(outcomes["c:r1:MgB2"], ("Tc",)).values == {"Tc": 38.5}
    assert outcomes["c:r1:YBa2Cu3O7"].status == "failed" and "negative Tc_K" in outcomes["c:r1:YBa2Cu3O7"].error
    assert (tmp_path / "in" / "rejected" / "b.json").is_file()
    assert (tmp_path / "in" / "processed" / "c_r1_MgB2_1.json").is_file()


def test_simulated_lab_is_seeded_delayed_noisy_and_fails(tmp_path: Path):
    csv = tmp_path / "lab.csv"
    pd.DataFrame({"formula": ["MgB2", "Nb3Sn", "NbTi"], "Tc_K": [39.0, 18.0, 9.5]}).to_csv(csv, index=False)
    table = read_formula_table(str(csv), "formula", value_columns=("Tc_K",))
    now = [0.0]

    def lab(failure_rate: float) -> SynthesisOracle:
        settings = SimulatedLabConfig(noise_std=0.5, delay_seconds=(10.0, 20.0), failure_rate=failure_rate, seed=1)
        return SynthesisOracle(
            SimulatedLab(table, {"Tc_K": "Tc_K"}, settings, clock=lambda: now[0]), SynthesisConditions(), {}
        )

    jobs = [_job(id_) for id_ in table.frame["candidate_id"]]
    ids = {job.job_id for job in jobs}
    first, second, failing = lab(0.0), lab(0.0), lab(1.0)
    for oracle in (first, second, failing):
        oracle.submit(jobs)
    assert first.poll(jobs) == {}
    now[0] = 25.0
    a, b = first.poll(jobs), second.poll(jobs)
    assert a.keys() == ids and all(a[i].values == b[i].values for i in ids)
    assert abs(a["c:r1:MgB2"].values["Tc_K"] - 39.0) < 3 and a["c:r1:MgB2"].values["Tc_K"] != 39.0
    assert 0.8 <= a["c:r1:MgB2"].values["phase_purity"] <= 1.0
    assert {o.error for o in failing.poll(jobs).values()} == {"simulated synthesis failure"}
    retry = [_job("MgB2", attempt=2)]
    first.submit(retry)
    now[0] = 50.0
    assert first.poll(retry)["c:r1:MgB2"].provenance["request"]["request_id"] == "c:r1:MgB2@2"


def _drop(inbox: Path, name: str, result: dict | str) -> None:
    """Drop a result file into the inbox the way a lab should: written aside, then renamed."""
    partial = inbox / f"{name}.tmp"
    partial.write_text(result if isinstance(result, str) else json.dumps(result))
    partial.replace(inbox / name)


def test_a_restarted_file_queue_knows_what_it_sent_and_redelivers_unrecorded_results(tmp_path: Path):
    outbox, inbox = tmp_path / "out", tmp_path / "in"
    jobs = [_job("MgB2"), _job("NbTi")]
    first = SynthesisOracle(_queue(outbox, inbox), SynthesisConditions(), {})
    first.submit(jobs)
    for request in outbox.glob("*.json"):  # the lab takes its requests away
        request.unlink()
    _drop(inbox, "mgb2.json", {"request_id": "c:r1:MgB2@1", "status": "completed", "measurements": {"Tc_K": 39.0}})
    assert first.poll(jobs).keys() == {"c:r1:MgB2"}  # read, then the process dies before the loop stores it

    restarted = SynthesisOracle(_queue(outbox, inbox), SynthesisConditions(), {})
    assert restarted.known(jobs) == {"c:r1:MgB2", "c:r1:NbTi"} and restarted.known([_job("MgB2", 2)]) == set()
    restarted.submit(jobs)
    assert (
        list(outbox.glob("*.json")) == []
        and len((tmp_path / "oracle" / "requests.jsonl").read_text().splitlines()) == 2
    )
    assert restarted.poll(jobs)["c:r1:MgB2"].values == {"Tc_K": 39.0}
    _drop(inbox, "nbti.json", {"request_id": "c:r1:NbTi@1", "status": "failed", "failure_reason": "furnace"})
    outcomes = restarted.poll(jobs[1:])  # MgB2's result was stored by the loop, which no longer asks for it
    assert outcomes.keys() == {"c:r1:NbTi"} and outcomes["c:r1:NbTi"].error == "furnace"
    provenance = outcomes["c:r1:NbTi"].provenance["request"]
    assert provenance["request_id"] == "c:r1:NbTi@1" and provenance["formula"] == "NbTi"
    assert sorted(path.name for path in (inbox / "processed").iterdir()) == ["c_r1_MgB2_1.json", "c_r1_NbTi_1.json"]


def test_a_request_written_but_not_yet_in_the_ledger_is_known_after_a_restart(tmp_path: Path):
    outbox, inbox = tmp_path / "out", tmp_path / "in"
    jobs = [_job("MgB2"), _job("NbTi")]
    SynthesisOracle(_queue(outbox, inbox), SynthesisConditions(), {}).submit(jobs)
    ledger = tmp_path / "oracle" / "requests.jsonl"
    first, second = ledger.read_text().splitlines()
    ledger.write_text(first + "\n" + second[:40])  # the crash cut off the second line
    both = {"c:r1:MgB2", "c:r1:NbTi"}
    assert SynthesisOracle(_queue(outbox, inbox), SynthesisConditions(), {}).known(jobs) == both
    for request in outbox.glob("*.json"):  # the lab takes its requests after the restart
        request.unlink()
    assert SynthesisOracle(_queue(outbox, inbox), SynthesisConditions(), {}).known(jobs) == both


def test_bad_result_files_are_rejected_with_a_reason_and_never_ingested(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    outbox, inbox = tmp_path / "out", tmp_path / "in"
    oracle = SynthesisOracle(_queue(outbox, inbox), SynthesisConditions(), {})
    jobs = [_job("MgB2")]
    oracle.submit(jobs)
    good = {"request_id": "c:r1:MgB2@1", "status": "completed", "measurements": {"Tc_K": 39.0}}
    _drop(inbox, "a.json", good)
    _drop(inbox, "b.json", "{not json")
    _drop(inbox, "c.json", {"request_id": "c:r1:MgB2@1", "status": "completed", "measurements": {"Tc_K": "hot"}})
    _drop(inbox, "d.json", {**good, "request_id": "c:r9:Nb3Sn@1"})
    _drop(inbox, "e.json", {**good, "measurements": {"Tc_K": 12.0}})
    assert oracle.poll(jobs)["c:r1:MgB2"].values == {"Tc_K": 39.0}
    _drop(inbox, "b.json", "")  # a second bad file of the same name keeps the first
    assert oracle.poll(jobs)["c:r1:MgB2"].values == {"Tc_K": 39.0}

    rejected = inbox / "rejected"
    reasons = {path.name.removesuffix(".reason"): path.read_text() for path in rejected.glob("*.reason")}
    assert "Invalid JSON" in reasons["b.json"] and "Tc_K" in reasons["c.json"]
    assert "'c:r9:Nb3Sn@1'" in reasons["d.json"] and "never sent" in reasons["d.json"]
    assert "already has a result" in reasons["e.json"]
    assert sorted(path.name for path in rejected.glob("*.json")) == sorted(reasons)  # each file has its reason
    (again,) = rejected.glob("b.*.json")
    assert (rejected / "b.json").read_text() == "{not json" and "Invalid JSON" in reasons[again.name]
    assert len(reasons) == 5
    assert list(inbox.glob("*.json")) == [] and len(list((inbox / "processed").iterdir())) == 1
    assert all(name in caplog.text for name in ("b.json", "c.json", "d.json", "e.json"))

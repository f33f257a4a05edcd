"""Robot synthesis: file queue round trip, simulated lab with delays, noise and failures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sbin_loop.config import SimulatedLabConfig, SynthesisConditions
from sbin_loop.oracles import JobRequest, checked_outcome
from sbin_loop.oracles.synthesis import FileQueueBackend, SimulatedLab, SynthesisOracle, SynthesisResult
from sbin_loop.space import read_formula_table


def _job(candidate: str, attempt: int = 1) -> JobRequest:
    return JobRequest(job_id=f"c:r1:{candidate}", candidate_id=candidate, formula=candidate, round=1, attempt=attempt)


def test_file_queue_round_trip(tmp_path: Path):
    backend = FileQueueBackend(tmp_path / "out", tmp_path / "in")
    oracle = SynthesisOracle(backend, SynthesisConditions(batch_mmol=2.0), {"Tc": "Tc_K"})
    jobs = [_job("YBa2Cu3O7"), _job("MgB2")]
    oracle.submit(jobs)
    requests = {json.loads(p.read_text())["formula"]: json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")}
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
    assert (tmp_path / "in" / "rejected" / "b.json").is_file() and (tmp_path / "in" / "processed" / "c_r1_MgB2_1.json").is_file()


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

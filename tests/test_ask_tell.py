"""Ask/tell: a campaign driven by hand, in Python and on the command line, and after kill -9."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from conftest import write_pool
from nbclient import NotebookClient
from typer.testing import CliRunner

from sbin_loop.campaign import Campaign, CampaignError, MeasurementError
from sbin_loop.cli import app
from sbin_loop.config import parse_config
from sbin_loop.faults import KILL_AT
from sbin_loop.space.pool import candidate_id, parse_formula
from sbin_loop.status import campaign_status, open_campaign
from sbin_loop.stores.documents import TOLD

TINY_MODEL = {"hidden": [16, 16], "epochs": 10, "min_steps": 60, "max_steps": 120}
runner = CliRunner()


def _config(pool_csv: Path, **changes: object) -> dict:
    return {
        "name": "hand",
        "seed": 5,
        "space": {"kind": "pool", "source": pool_csv.name},
        "objectives": [{"name": "Tc_K", "transform": "log1p", "unit": "K", "bounds": [0, None]}],
        "model": TINY_MODEL,
        "policy": {"kind": "expected_improvement", "batch_size": 3, "mc_samples": 16},
        "oracle": {"kind": "manual"},
        "intervals": {"n_draws": 64, "top_k": 2},
        **changes,
    }


@pytest.fixture()
def pool(tmp_path: Path, supercon: pd.DataFrame) -> Path:
    return write_pool(tmp_path, supercon)


@pytest.fixture()
def seed_csv(tmp_path: Path, supercon: pd.DataFrame) -> Path:
    """Eight measured pool compositions, the second written as another spelling of the same composition."""
    rows = supercon.iloc[:8][["formula", "Tc_K"]].copy()
    path = tmp_path / "seed.csv"
    rows.to_csv(path, index=False)
    return path


def _truth(supercon: pd.DataFrame) -> dict[str, float]:
    """Tc of the pool's candidates by candidate id (the formula as written, normalised)."""
    rows = supercon.iloc[:80]
    return {candidate_id(parse_formula(f)): tc for f, tc in zip(rows["formula"], rows["Tc_K"], strict=True)}


def test_python_ask_tell_seeded_from_csv(pool: Path, seed_csv: Path, supercon: pd.DataFrame, tmp_path: Path):
    config = parse_config(_config(pool, budget={"initial": {"from": seed_csv.name}, "rounds": 3}))
    campaign = Campaign.from_config(config, tmp_path / "c", tmp_path)
    seeded = campaign.store.results()
    assert len(seeded) == 8 and {result.oracle for result in seeded} == {TOLD}
    assert campaign.store.rounds() == []

    picks = campaign.ask()
    assert len(picks) == 3 and len({pick.candidate_id for pick in picks}) == 3
    assert not {pick.candidate_id for pick in picks} & {result.candidate_id for result in seeded}
    for pick in picks:  # round 0 is picked by a model trained on the seed measurements, not at random
        assert pick.policy == "expected_improvement" and "qLogEI" in (pick.reason or "")
        interval = pick.predictions["Tc_K"]
        assert 0 <= interval.lower <= interval.median <= interval.upper
    assert [pick.candidate_id for pick in campaign.ask()] == [pick.candidate_id for pick in picks]

    truth = _truth(supercon)
    seeded_ids = {result.candidate_id for result in seeded}
    extra = next(name for name in truth if name not in seeded_ids | {p.candidate_id for p in picks})
    told = campaign.tell(
        pd.DataFrame(
            {
                "formula": [picks[0].formula, picks[1].candidate_id, picks[2].formula, extra],
                "Tc_K": [truth[picks[0].candidate_id], float("nan"), -3.0, truth[extra]],
                "status": [None, "failed", None, None],  # a data frame's empty cells
            }
        )
    )
    assert (told.picks, told.new, told.failed, told.skipped) == (3, 1, 2, 0)
    assert any("below its lower bound 0" in error for error in told.errors)
    jobs = {job.candidate_id: job for job in campaign.store.jobs()}
    assert jobs[picks[1].candidate_id].state == "failed" and jobs[picks[2].candidate_id].state == "failed"
    assert jobs[extra].oracle == TOLD and jobs[extra].state == "completed"
    results = {result.candidate_id: result for result in campaign.store.results()}
    assert picks[1].candidate_id not in results and picks[2].candidate_id not in results  # failures never ingested
    assert results[extra].values == {"Tc_K": truth[extra]}

    again = campaign.tell(pd.DataFrame({"formula": [extra], "Tc_K": [truth[extra]]}))
    assert (again.new, again.skipped) == (0, 1) and len(campaign.store.results()) == 10

    following = campaign.ask(2)
    rounds = campaign.store.rounds()
    assert [doc.state for doc in rounds] == ["complete", "launched"] and rounds[0].n_evaluations == 10
    assert len(following) == 2 and not {p.candidate_id for p in following} & set(jobs)
    with pytest.raises(MeasurementError, match=r"measurement 0, column formula: 'LaH10' is not a candidate"):
        campaign.tell([{"formula": "LaH10", "Tc_K": 250.0}])
    with pytest.raises(CampaignError, match="evaluates the picks itself"):
        auto = parse_config(_config(pool, name="auto", oracle={"kind": "dataset"}))
        Campaign.from_config(auto, tmp_path / "a", tmp_path).ask()


def test_run_seeded_from_csv_picks_round_0_with_a_model(pool: Path, seed_csv: Path, tmp_path: Path):
    oracle = {"kind": "dataset", "poll_seconds": 0.01}
    config = parse_config(_config(pool, oracle=oracle, budget={"initial": {"from": seed_csv.name}, "rounds": 0}))
    campaign = Campaign.from_config(config, tmp_path / "run", tmp_path)
    (summary,) = campaign.run()
    (doc,) = campaign.store.rounds()
    assert summary.n_evaluations == 8 + 3 and doc.state == "complete"
    assert all(entry.policy == "expected_improvement" and entry.prediction is not None for entry in doc.selected)
    seeded = {result.candidate_id for result in campaign.store.results() if result.oracle == TOLD}
    assert len(seeded) == 8 and not seeded & {entry.candidate_id for entry in doc.selected}


def test_tell_before_the_first_ask_and_asking_for_more(pool: Path, supercon: pd.DataFrame, tmp_path: Path):
    campaign = Campaign.from_config(parse_config(_config(pool)), tmp_path / "c", tmp_path)
    truth = _truth(supercon)
    first = list(truth)[10:14]
    assert campaign.tell([{"candidate_id": name, "Tc_K": truth[name]} for name in first]).new == 4
    picks = campaign.ask(2)
    assert all(pick.predictions for pick in picks)  # model-driven round 0
    more = campaign.ask(2, new=True)
    assert len(more) == 2 and not {p.candidate_id for p in more} & {p.candidate_id for p in picks}
    (doc,) = campaign.store.rounds()
    assert [entry.candidate_id for entry in doc.selected] == [p.candidate_id for p in [*picks, *more]]
    assert len(campaign.ask()) == 4  # every pending pick of the round


def _write(tmp_path: Path, pool: Path, **changes: object) -> Path:
    path = tmp_path / "hand.yaml"
    path.write_text(yaml.safe_dump(_config(pool, **changes)))
    return path


def test_cli_init_ask_tell_status_report(pool: Path, supercon: pd.DataFrame, tmp_path: Path):
    directory = tmp_path / "lab"
    created = runner.invoke(app, ["init", str(_write(tmp_path, pool)), "--dir", str(directory)])
    assert created.exit_code == 0, created.output
    assert "80 candidates, 0 measurements; next: sbin ask" in created.output

    asked = runner.invoke(app, ["ask", str(directory), "-n", "4", "--json"])
    assert asked.exit_code == 0, asked.output
    proposals = json.loads(asked.stdout)
    assert len(proposals) == 4
    assert set(proposals[0]) == {"candidate_id", "formula", "policy", "reason", "predictions"}
    assert all(row["policy"] == "random" and row["predictions"] == {} for row in proposals)  # nothing measured yet
    again = runner.invoke(app, ["ask", str(directory), "--json"])
    assert json.loads(again.stdout) == proposals  # pending picks, not new ones
    table = runner.invoke(app, ["ask", str(directory)])
    assert table.output.splitlines()[0].split() == ["candidate", "Tc_K", "mean", "[interval]", "policy"]

    truth = _truth(supercon)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"formula,Tc_K,status\n{proposals[0]['formula']},12,\n{proposals[1]['formula']},warm,\nLaH10,3,\n")
    refused = runner.invoke(app, ["tell", str(directory), str(bad)])
    assert refused.exit_code == 1
    assert "bad.csv line 3, column Tc_K: 'warm' is not a number" in refused.output
    assert "bad.csv line 4, column formula: 'LaH10' is not a candidate" in refused.output
    assert campaign_status(directory)["n_evaluations"] == 0  # all or nothing

    good = tmp_path / "good.csv"
    rows = [f"{row['candidate_id']},{truth[row['candidate_id']]}," for row in proposals[:3]]
    good.write_text("\n".join(["candidate_id,Tc_K,status", *rows, f"{proposals[3]['formula']},,failed"]) + "\n")
    told = runner.invoke(app, ["tell", str(directory), str(good), "--json"])
    assert told.exit_code == 0, told.output
    assert json.loads(told.stdout)["picks"] == 4 and json.loads(told.stdout)["failed"] == 1

    following = json.loads(runner.invoke(app, ["ask", str(directory), "--json"]).stdout)
    assert len(following) == 3 and all(row["predictions"]["Tc_K"]["lower"] >= 0 for row in following)
    assert all(row["policy"] == "expected_improvement" for row in following)
    newer = json.loads(runner.invoke(app, ["ask", str(directory), "-n", "1", "--new", "--json"]).stdout)
    assert len(newer) == 1 and newer[0]["candidate_id"] not in {row["candidate_id"] for row in following}

    state = json.loads(runner.invoke(app, ["status", str(directory), "--json"]).stdout)
    assert state["n_evaluations"] == 3 and state["n_failed"] == 1 and state["state"] == "waiting"
    assert [len(row["selected"]) for row in state["rounds"]] == [4, 4]
    report = runner.invoke(app, ["report", str(directory), "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output and (tmp_path / "r.html").is_file()

    ran = runner.invoke(app, ["run", str(_write(tmp_path, pool)), "--dir", str(directory)])
    assert ran.exit_code == 1 and "manual" in ran.output


def _killed_at(point: str, *args: str) -> None:
    """Run ``sbin ARGS`` in a subprocess that kills itself with SIGKILL at ``crash_point(point)``."""
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), KILL_AT: point}
    process = subprocess.run([sys.executable, "-m", "sbin_loop", *args], env=environment, capture_output=True)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]


def _stored(directory: Path) -> tuple[list, list, list]:
    store, _ = open_campaign(directory)  # refuses a campaign whose parts disagree
    try:
        return store.rounds(), store.jobs(), store.results()
    finally:
        store.close()


def test_kill_9_during_ask_and_tell_loses_and_duplicates_nothing(pool: Path, supercon: pd.DataFrame, tmp_path: Path):
    directory = tmp_path / "lab"
    assert runner.invoke(app, ["init", str(_write(tmp_path, pool, budget={"initial": 4})), "--dir", str(directory)])
    _killed_at("ask:proposed", "ask", str(directory))  # picks stored, no job written yet
    picks = [row["candidate_id"] for row in json.loads(runner.invoke(app, ["ask", str(directory), "--json"]).stdout)]
    _killed_at("ask:extended", "ask", str(directory), "-n", "2", "--new")  # two more picks stored, no job yet
    pending = [row["candidate_id"] for row in json.loads(runner.invoke(app, ["ask", str(directory), "--json"]).stdout)]
    (doc,), jobs, _ = _stored(directory)
    assert len(picks) == 4 and pending[:4] == picks and len(set(pending)) == 6
    assert pending == [entry.candidate_id for entry in doc.selected]
    assert sorted(job.candidate_id for job in jobs) == sorted(pending)

    truth = _truth(supercon)
    extra = next(name for name in truth if name not in pending)
    results = tmp_path / "results.csv"
    results.write_text("formula,Tc_K\n" + "".join(f"{name},{truth[name]}\n" for name in [extra, *pending]))
    _killed_at("tell:intent", "tell", str(directory), str(results))  # the extra's job written, not its result
    _killed_at("outcome:result", "tell", str(directory), str(results))  # the extra's result, job not completed
    told = runner.invoke(app, ["tell", str(directory), str(results), "--json"])
    assert told.exit_code == 0, told.output
    assert json.loads(told.stdout) | {"errors": []} == {"picks": 6, "new": 1, "failed": 0, "skipped": 0, "errors": []}
    _, jobs, stored = _stored(directory)
    assert sorted(result.candidate_id for result in stored) == sorted([extra, *pending])  # each once
    assert {job.state for job in jobs} == {"completed"} and len(jobs) == 7
    assert json.loads(runner.invoke(app, ["tell", str(directory), str(results), "--json"]).stdout)["skipped"] == 7


NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "ask_tell.ipynb"


def test_ask_tell_notebook_is_stored_without_outputs_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    monkeypatch.setenv("SBIN_WORK_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(NOTEBOOK.parents[1]))  # the sbin_loop under test
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()  # raises on any failing cell
    text = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "told 4 pending picks and 0 other candidates (1 recorded as failed)" in text
    _, jobs, results = _stored(tmp_path / "campaign")
    assert len(results) == 13 and len(jobs) == 18  # 10 seeds, 4 picks told, 4 more pending

"""Oracle submission ledgers: appends are durable; a line cut off by a crash neither breaks nor poisons a restart."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from sbin_loop.oracles import JobRequest
from sbin_loop.oracles.dataset import DatasetReplayOracle
from sbin_loop.oracles.ledger import append_lines, read_json_objects, read_lines
from sbin_loop.space import read_formula_table


def test_appended_lines_read_back_in_order_and_a_missing_ledger_is_empty(tmp_path: Path):
    ledger = tmp_path / "sub" / "ledger.jsonl"
    assert read_lines(ledger) == [] and read_json_objects(ledger) == []
    append_lines(ledger, [json.dumps({"key": "a"}), json.dumps({"key": "b"})])
    append_lines(ledger, iter([json.dumps({"key": "c"})]))
    assert [entry["key"] for entry in read_json_objects(ledger)] == ["a", "b", "c"]


def test_a_line_cut_off_by_a_crash_is_skipped_and_the_next_entry_starts_its_own_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    ledger = tmp_path / "ledger.jsonl"
    append_lines(ledger, [json.dumps({"key": "a"})])
    with ledger.open("a") as handle:  # what a crash halfway through an append leaves
        handle.write('{"key": "b", "ti')
    with caplog.at_level(logging.WARNING):
        assert [entry["key"] for entry in read_json_objects(ledger)] == ["a"]
    assert "entry 2 is not a JSON object" in caplog.text
    append_lines(ledger, [json.dumps({"key": "c"})])
    assert [entry["key"] for entry in read_json_objects(ledger)] == ["a", "c"]
    assert ledger.read_text().splitlines()[1] == '{"key": "b", "ti'  # kept as it was: nothing stored is rewritten


def test_a_dataset_replay_restarts_over_a_cut_off_ledger_line(tmp_path: Path):
    csv = tmp_path / "pool.csv"
    pd.DataFrame({"formula": ["SrTiO3", "BaTiO3"], "Tc_K": [1.0, 2.0]}).to_csv(csv, index=False)
    table = read_formula_table(str(csv), "formula", value_columns=("Tc_K",))
    ledger = tmp_path / "dataset" / "submitted.jsonl"
    first = JobRequest(job_id="c:r0:SrTiO3", candidate_id="SrTiO3", formula="SrTiO3", round=0)
    second = JobRequest(job_id="c:r0:BaTiO3", candidate_id="BaTiO3", formula="BaTiO3", round=0)
    DatasetReplayOracle(table, {"Tc": "Tc_K"}, ledger).submit([first])
    with ledger.open("a") as handle:
        handle.write('{"key": "' + second.key)  # the second submission died mid-write: it never happened

    restarted = DatasetReplayOracle(table, {"Tc": "Tc_K"}, ledger)
    assert restarted.known([first, second]) == {first.job_id}
    restarted.submit([second])
    assert restarted.known([first, second]) == {first.job_id, second.job_id}
    outcomes = restarted.poll([first, second])
    assert {job: outcome.values["Tc"] for job, outcome in outcomes.items()} == {first.job_id: 1.0, second.job_id: 2.0}

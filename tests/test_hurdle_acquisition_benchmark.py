"""``benchmarks/hurdle_acquisition.py``: one round's picks with and without the classifier's mass in the functions."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import hurdle_acquisition as benchmark
from model_accuracy import supercon_task


def test_a_round_on_1000_supercon_rows_picks_both_batches_from_one_fit_with_a_classifier():
    torch.set_num_threads(1)
    task = supercon_task(False, 0, None, True)
    rows = benchmark.round_picks(
        task.features, task.target, task.bounds, task.fraction_inputs, 1000, 0, ["upper_confidence_bound"], 50
    )
    assert [row["setting"] for row in rows] == list(benchmark.SETTINGS)
    assert all(row["n_picked"] == 50 and 0 <= row["share_at_0K"] <= 1 and row["mean_tc"] >= 0 for row in rows)
    assert rows[0]["fit_seconds"] == rows[1]["fit_seconds"]  # one fit
    # Under upper confidence bounds the networks' functions alone favour compositions the classifier calls
    # non-superconductors; with the mass the batch holds fewer of them and has the higher measured Tc.
    with_mass, network = rows
    assert with_mass["share_at_0K"] <= network["share_at_0K"] and with_mass["mean_tc"] > network["mean_tc"] + 5

"""The retrospective discovery benchmark (benchmarks/campaign.py): its GP screen and its resumable per-seed runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from botorch.acquisition.analytic import LogExpectedImprovement
from botorch.models import SingleTaskGP

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import campaign as benchmark

from sbin_loop.model.config import ModelConfig
from sbin_loop.policies.config import PolicyConfig


def test_gp_screen_is_botorchs_log_expected_improvement() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(30, 4, generator=generator, dtype=torch.float64)
    y = torch.sin(6 * x.sum(dim=-1, keepdim=True))
    model = SingleTaskGP(x, y)
    candidates = torch.rand(200, 4, generator=generator, dtype=torch.float64)  # n x d
    with torch.no_grad():
        expected = LogExpectedImprovement(model, best_f=float(y.max()))(candidates.unsqueeze(1))  # n
        screened = benchmark.log_expected_improvement(model, candidates, float(y.max()))  # n
    assert screened.shape == (200,)
    assert torch.allclose(screened, expected, atol=1e-6)


def _arguments(pool: Path, runs: Path, batch: int) -> list[str]:
    return [
        *("--pool", str(pool), "--seeds", "1", "--budget", "30", "--initial", "10", "--batch", str(batch)),
        *("--methods", "gp_ei,sbin", "--min-steps", "20", "--max-steps", "40", "--mc-samples", "16"),
        *("--gp-screen", "16", "--workers", "1", "--runs-dir", str(runs)),
    ]


def test_runs_dir_keeps_each_seed_and_reuses_it_only_under_the_same_settings(
    tmp_path: Path, supercon: pd.DataFrame
) -> None:
    pool = tmp_path / "pool.csv"
    supercon.iloc[:120][["formula", "Tc_K"]].to_csv(pool, index=False)
    runs = tmp_path / "runs"
    first = benchmark.main(_arguments(pool, runs, batch=10))
    kept = {path.name: path.read_text() for path in runs.glob("*.json")}
    assert sorted(kept) == ["gp_ei_seed0.json", "sbin_seed0.json"]
    assert all(len(json.loads(text)["evaluated"]) == 30 for text in kept.values())

    again = benchmark.main(_arguments(pool, runs, batch=10))  # nothing is recomputed: the timings are the kept ones
    assert again["methods"] == first["methods"]
    assert {path.name: path.read_text() for path in runs.glob("*.json")} == kept

    (runs / "gp_ei_seed0.json").unlink()  # --kept-only summarises the seeds every method finished, computes nothing
    with pytest.raises(SystemExit, match="no seed has a kept run"):
        benchmark.main([*_arguments(pool, runs, batch=10), "--kept-only"])
    assert not (runs / "gp_ei_seed0.json").exists()

    benchmark.main(_arguments(pool, runs, batch=5))  # other settings: the kept runs are not reused
    rerun = json.loads((runs / "sbin_seed0.json").read_text())
    assert rerun["fingerprint"] != json.loads(kept["sbin_seed0.json"])["fingerprint"]
    assert len(rerun["timings"]) == 4

    gp_kept = (runs / "gp_ei_seed0.json").read_text()
    benchmark.main([*_arguments(pool, runs, batch=5), "--model-option", "ensemble_size=2"])  # a BNN setting only
    assert (runs / "gp_ei_seed0.json").read_text() == gp_kept  # the GP run does not depend on it: reused
    assert json.loads((runs / "sbin_seed0.json").read_text())["fingerprint"] != rerun["fingerprint"]


def test_bnn_rounds_continue_from_the_previous_model_and_start_fresh_after_warm_start_rounds() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 5))
    pool = benchmark.Pool(features, np.abs(features[:, 0]) * 10, "log1p")
    model = ModelConfig(hidden=(8,), min_steps=30, max_steps=30, warm_start_steps=5, warm_start_rounds=2)
    settings = benchmark.Settings(
        initial=10,
        batch=5,
        budget=40,
        mc_samples=8,
        model=model,
        policy=PolicyConfig(batch_size=5, mc_samples=8),
        gp_screen=8,
        gp_max_train=50,
        gp_maxiter=5,
    )
    method = benchmark.BNNMethod(pool)
    warm_rounds = []
    for size in (10, 15, 20, 25):
        evaluated = np.arange(size)
        scores, rows, _, _ = method.round(evaluated, np.arange(size, 60), settings, seed=size)
        assert scores.n_candidates == len(rows) == 60 - size
        warm_rounds.append(method.warm_rounds)
    assert warm_rounds == [0, 1, 2, 0]  # fresh, continued twice, then fresh again


def test_paired_difference_counts_per_seed_and_flags_only_a_gap_beyond_noise() -> None:
    """The verdict on "at least GP-EI at every budget" names each budget where sbin's mean is behind, with the paired
    per-seed gap and its standard error; only a gap of more than two standard errors is called significant."""
    targets = np.array([100, 101, 102, 103])
    budgets = np.array([2, 4])

    def run(method: str, seed: int, evaluated: list[int]) -> dict:
        return {"method": method, "seed": seed, "evaluated": evaluated, "timings": []}

    runs = [
        run("sbin", 0, [1, 2, 100, 101]),  # 0 then 2 targets
        run("gp_ei", 0, [1, 100, 3, 4]),  # 1 then 1
        run("sbin", 1, [5, 6, 102, 7]),  # 0 then 1
        run("gp_ei", 1, [5, 103, 8, 9]),  # 1 then 1
        run("gp_ei", 2, [100, 101, 102, 103]),  # no sbin run on seed 2: not paired
    ]
    paired = benchmark.paired_difference(runs, targets, budgets)
    assert paired["seeds"] == [0, 1]
    assert paired["mean"] == [-1.0, 0.5]
    assert paired["stderr"][0] == 0.0
    assert paired["stderr"][1] == pytest.approx(0.5)  # differences 1 and 0: sd 0.707 / sqrt 2
    assert (paired["wins"], paired["ties"], paired["losses"]) == ([0, 1], [0, 1], [2, 0])

    summary = {
        "budgets": budgets.tolist(),
        "methods": {"sbin": {"fraction_top1": [0.0, 0.375]}, "gp_ei": {"fraction_top1": [0.25, 0.25]}},
        "paired_top1_sbin_minus_gp_ei": paired,
    }
    (behind,) = benchmark._behind(summary)
    assert behind["budget"] == 2 and behind["significant"]  # every seed lost by one: zero spread
    paired["stderr"][0] = 0.6
    assert not benchmark._behind(summary)[0]["significant"]  # -1 + 2 x 0.6 > 0: within noise

"""The retrospective discovery benchmark (benchmarks/campaign.py): it picks what the product picks, keeps and reuses
its per-seed runs, and its verdict against the peers."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import campaign as benchmark
import discovery

from sbin_loop.campaign import Campaign


def _arguments(pool: Path, runs: Path, batch: int, methods: str = "sbin,forest_ei") -> list[str]:
    return [
        *("--pool", str(pool), "--seeds", "1", "--budget", "30", "--initial", "10", "--batch", str(batch)),
        *("--methods", methods, "--workers", "1", "--runs-dir", str(runs)),
    ]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory, supercon: pd.DataFrame) -> tuple[Path, Path, dict]:
    """A 120-row pool, and the benchmark's sbin and forest runs of seed 0 on it (the runs dir and the summary)."""
    base = tmp_path_factory.mktemp("discovery")
    pool = base / "pool.csv"
    supercon.iloc[:120][["formula", "Tc_K"]].to_csv(pool, index=False)
    runs = base / "runs"
    return pool, runs, benchmark.main(_arguments(pool, runs, batch=10))


def test_sbin_runs_are_the_campaigns_that_sbin_run_runs(tmp_path: Path, small_run: tuple[Path, Path, dict]) -> None:
    """The benchmark's sbin method on a seed picks, round by round, what ``sbin run`` picks with the same config."""
    small_pool, runs, _ = small_run
    evaluated = json.loads((runs / "sbin_seed0.json").read_text())["evaluated"]

    protocol = benchmark.Protocol(str(small_pool), "Tc_K", "formula", 10, 10, 30, True)
    pool = benchmark.build_pool(protocol, tmp_path / "scratch").load()
    campaign = Campaign.from_config(benchmark.campaign_config(protocol, "sbin", 0), tmp_path / "campaign")
    campaign.run()
    rounds = sorted(campaign.store.rounds(), key=lambda doc: doc.round)
    picked = [pool.rows_of([entry.candidate_id])[entry.candidate_id] for doc in rounds for entry in doc.selected]
    assert len(rounds) == 3
    assert [set(picked[i : i + 10]) for i in (0, 10, 20)] == [set(evaluated[i : i + 10]) for i in (0, 10, 20)]


def test_runs_dir_keeps_each_seed_and_reuses_it_only_under_the_same_settings(
    tmp_path: Path, small_run: tuple[Path, Path, dict]
) -> None:
    small_pool, kept_runs, first = small_run
    runs = tmp_path / "runs"
    shutil.copytree(kept_runs, runs)  # this test removes and reruns seeds; the other reads the kept ones
    kept = {path.name: json.loads(path.read_text()) for path in runs.glob("*.json")}
    assert sorted(kept) == ["forest_ei_seed0.json", "sbin_seed0.json"]
    assert all(len(run["evaluated"]) == 30 for run in kept.values())
    sbin, forest = kept["sbin_seed0.json"], kept["forest_ei_seed0.json"]
    assert sbin["evaluated"][:10] == forest["evaluated"][:10]  # the same random round 0
    assert sbin["evaluated"][10:] != forest["evaluated"][10:]  # then each surrogate picks its own
    assert {pick["round"] for pick in sbin["picks"]} == {1, 2}  # model picks carry the interval predicted for them
    assert all(pick["lower"] >= 0 and pick["lower"] <= pick["upper"] for pick in sbin["picks"])  # Tc >= 0
    stats = first["methods"]["sbin"]["pick_intervals"]
    assert stats["n"] == 20 and 0 <= stats["inside"] <= 1 and stats["lower_below_zero"] == 0
    assert stats["inside"] + stats["below"] + stats["above"] == pytest.approx(1.0)
    assert 0 <= stats["below_measured_zero"] <= min(stats["below"], stats["measured_zero"])

    again = benchmark.main(_arguments(small_pool, runs, batch=10))  # nothing is recomputed: the timings are the kept
    assert again["methods"] == first["methods"]

    (runs / "forest_ei_seed0.json").unlink()  # --kept-only summarises the seeds every method finished
    with pytest.raises(SystemExit, match="no seed has a kept run"):
        benchmark.main([*_arguments(small_pool, runs, batch=10), "--kept-only"])
    assert not (runs / "forest_ei_seed0.json").exists()

    benchmark.main(_arguments(small_pool, runs, batch=5, methods="forest_ei"))  # another schedule: not reused
    rerun = json.loads((runs / "forest_ei_seed0.json").read_text())
    assert rerun["fingerprint"] != forest["fingerprint"]
    assert len(rerun["timings"]) == 5  # round 0, then 4 rounds of 5


def test_a_pool_without_the_target_for_every_composition_is_refused(tmp_path: Path, supercon: pd.DataFrame) -> None:
    path = tmp_path / "pool.csv"
    rows = supercon.iloc[:40][["formula", "Tc_K"]].copy()
    rows.loc[3, "Tc_K"] = np.nan
    rows.to_csv(path, index=False)
    with pytest.raises(SystemExit, match="Tc_K is missing or not finite"):
        benchmark.main(_arguments(path, tmp_path / "runs", batch=10))


def test_paired_difference_counts_per_seed_and_flags_only_a_gap_beyond_noise() -> None:
    """The verdict names each budget after round 0 where sbin's mean is behind a peer, with the paired per-seed gap
    and its standard error; only a gap of more than two standard errors is called significant."""
    targets = np.array([100, 101, 102, 103])
    budgets = np.array([1, 2, 4])

    def run(method: str, seed: int, evaluated: list[int]) -> dict:
        return {"method": method, "seed": seed, "evaluated": evaluated, "timings": []}

    runs = [
        run("sbin", 0, [1, 2, 100, 101]),  # 0 then 2 targets
        run("gp_ei", 0, [1, 100, 3, 4]),  # 1 then 1
        run("sbin", 1, [5, 6, 102, 7]),  # 0 then 1
        run("gp_ei", 1, [5, 103, 8, 9]),  # 1 then 1
        run("gp_ei", 2, [100, 101, 102, 103]),  # no sbin run on seed 2: not paired
    ]
    paired = discovery.paired_difference(runs, targets, budgets, "gp_ei")
    assert paired["seeds"] == [0, 1]
    assert paired["mean"] == [0.0, -1.0, 0.5]
    assert paired["stderr"][1] == 0.0
    assert paired["stderr"][2] == pytest.approx(0.5)  # differences 1 and 0: sd 0.707 / sqrt 2
    assert (paired["wins"], paired["ties"], paired["losses"]) == ([0, 0, 1], [2, 0, 1], [0, 2, 0])

    summary = {
        "budgets": budgets.tolist(),
        "methods": {
            "sbin": {"fraction_top1": [0.0, 0.0, 0.375]},
            "gp_ei": {"fraction_top1": [0.1, 0.25, 0.25]},  # ahead at round 0 too, which is random for both
        },
        "paired_top1_sbin_minus": {"gp_ei": paired},
    }
    (behind,) = discovery.behind(summary)
    assert (behind["peer"], behind["budget"], behind["significant"]) == ("gp_ei", 2, True)  # zero spread
    paired["stderr"][1] = 0.6
    assert not discovery.behind(summary)[0]["significant"]  # -1 + 2 x 0.6 > 0: within noise


def test_a_change_of_the_bnn_settings_reruns_sbin_seeds_only(monkeypatch) -> None:
    """The GP and forest peers never read the ``model`` section, so their kept runs stay valid when it changes."""
    protocol = benchmark.Protocol("bundled:supercon", "Tc_K", "formula", 50, 50, 500, True)
    before = {method: benchmark.fingerprint(protocol, method, 0) for method in ("sbin", "forest_ei", "gp_ei")}
    original = benchmark.campaign_config

    def tempered(protocol, method, seed, **options):
        config = original(protocol, method, seed, **options)
        return config.model_copy(update={"model": config.model.model_copy(update={"kl_weight": 0.5})})

    monkeypatch.setattr(benchmark, "campaign_config", tempered)
    after = {method: benchmark.fingerprint(protocol, method, 0) for method in before}
    assert after["sbin"] != before["sbin"]
    assert after["forest_ei"] == before["forest_ei"] and after["gp_ei"] == before["gp_ei"]

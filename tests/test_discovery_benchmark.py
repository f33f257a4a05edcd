"""The retrospective discovery benchmark (benchmarks/campaign.py): its GP screen and its resumable per-seed runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from botorch.acquisition.analytic import LogExpectedImprovement
from botorch.models import SingleTaskGP

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import campaign as benchmark


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

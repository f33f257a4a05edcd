"""The surrogate accuracy benchmark (benchmarks/model_accuracy.py): its scores of predictive distributions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import model_accuracy as benchmark


def test_crps_of_draws_matches_the_closed_form_of_the_distribution_they_come_from() -> None:
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=50), rng.uniform(0.5, 2.0, size=50)
    y = mean + rng.normal(size=50) * std * 2  # some targets far out, where the score is dominated by the miss
    draws = mean + std * rng.standard_normal((20_000, 50))
    closed = benchmark.gaussian_prediction(mean, std, y).crps
    sampled = benchmark.draws_prediction(draws, y).crps
    assert np.allclose(sampled, closed, rtol=0.02, atol=0.01)
    assert (closed > 0).all()


def test_metrics_reward_the_right_distribution() -> None:
    """A sharp distribution centred on the targets scores better than a wide or a shifted one, by every score."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=400)
    truth = benchmark.gaussian_prediction(np.zeros(400), np.ones(400), y)
    wide = benchmark.gaussian_prediction(np.zeros(400), np.full(400, 4.0), y)
    shifted = benchmark.gaussian_prediction(np.full(400, 2.0), np.ones(400), y)
    scores = {name: benchmark.metrics(y, p, None) for name, p in (("truth", truth), ("wide", wide), ("shift", shifted))}
    for worse in ("wide", "shift"):
        assert scores["truth"]["crps"] < scores[worse]["crps"]
        assert scores["truth"]["miscalibration_area"] < scores[worse]["miscalibration_area"]
    assert abs(scores["truth"]["coverage_95"] - 0.95) < 0.03


def test_a_calibrated_point_mass_is_calibrated_by_the_pit_and_not_by_central_intervals() -> None:
    """Half the mass at 0 (Tc = 0), half spread above; targets drawn from that same distribution."""
    rng = np.random.default_rng(2)
    n, n_draws = 2000, 1000
    probability = rng.uniform(0.0, 0.9, size=n)  # each row's own chance of 0

    def sample(size: tuple[int, ...]) -> np.ndarray:
        return np.where(rng.random(size) < probability, 0.0, rng.exponential(10.0, size=size))

    y = sample((n,))
    calibrated = benchmark.metrics(y, benchmark.draws_prediction(sample((n_draws, n)), y), None)
    assert calibrated["miscalibration_area_pit"] < 0.02
    assert calibrated["miscalibration_area"] > 0.1  # [0, 0] covers a 0 at every level where the mass is large
    shifted = benchmark.metrics(y, benchmark.draws_prediction(sample((n_draws, n)) + 5.0, y), None)
    assert shifted["miscalibration_area_pit"] > 0.1
    # the 95% intervals sbin reports start at 0 where the mass there is 2.5% or more, and hold 95% (an interval that
    # holds 0 holds all its mass, so a level below a row's mass at 0 is still over-covered)
    reported = benchmark.metrics(y, benchmark.draws_prediction(sample((n_draws, n)), y, (0.0, None)), None)
    assert calibrated["coverage_95"] > 0.96
    assert reported["coverage_95"] == pytest.approx(0.95, abs=0.012)
    assert reported["interval_width_95"] < calibrated["interval_width_95"]
    assert reported["miscalibration_area"] < calibrated["miscalibration_area"]
    normal = rng.normal(size=n)
    scores = benchmark.metrics(normal, benchmark.gaussian_prediction(np.zeros(n), np.full(n, 1.3), normal), None)
    assert scores["miscalibration_area_pit"] == pytest.approx(scores["miscalibration_area"], abs=0.005)


def test_small_data_calibration_benchmark_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The small-data benchmark scores its draws with this module's functions: a change of their signature breaks it.

    It reports the posterior before recalibration (``raw``) beside the recalibrated one, in its table and its JSON.
    """
    import small_data_calibration

    out = tmp_path / "small.json"
    argv = ["small_data_calibration.py", "--sizes", "12", "--seeds", "1", "--test-rows", "40", "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    small_data_calibration.main()
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    runs = {run["setting"]: run for run in result["runs"]}
    assert set(runs) == {*small_data_calibration.SETTINGS, *small_data_calibration.REFERENCES}
    for name in small_data_calibration.SETTINGS:
        run = runs[name]
        assert run["crps"] > 0
        assert run["mae"] < run["mae_train_mean"], run  # 11.7 K against 16.5 K for predicting the training mean
    raw_line = next(line for line in table.splitlines() if line.startswith("12   raw"))
    assert f"{result['summary']['raw_12']['coverage_95']:.3f}" in raw_line
    # From 12 training rows both cover most of 40 held-out rows (0.80 is far below the binomial spread of a
    # calibrated model): the posterior is honest before recalibration, which only fine-tunes it.
    assert 0.80 <= runs["raw"]["coverage_95"] <= 1.0, runs["raw"]
    assert 0.80 <= runs["recalibrated"]["coverage_95"] <= 1.0, runs["recalibrated"]
    for run in runs.values():  # Tc's support [0, inf) holds for sbin and the references alike
        assert run["winkler_95"] >= run["interval_width_95"] > 0 and run["median_width_95"] > 0
    check = result["targets"]["12"]  # the verdict compares sbin with the narrower reference, seed by seed
    narrower = min(small_data_calibration.REFERENCES, key=lambda name: runs[name]["interval_width_95"])
    assert check["reference"] == narrower
    assert check["width_difference"] == pytest.approx(
        runs["recalibrated"]["interval_width_95"] - runs[narrower]["interval_width_95"]
    )
    assert check["met"] == (0.93 <= runs["recalibrated"]["coverage_95"] <= 0.97 and check["width_difference"] <= 0)
    assert ("met" if check["met"] else "missed") in table.splitlines()[-1]


def test_boosted_tree_baseline_learns_a_nonlinear_target_from_its_training_fold_only() -> None:
    """The LightGBM baseline picks its trees on the training fold and predicts held-out rows much better than a mean."""
    pytest.importorskip("lightgbm")
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, size=(600, 4))
    y = np.sin(2 * x[:, 0]) * 10 + x[:, 1] ** 2 * 5 + rng.normal(scale=0.5, size=600)
    train, test = np.arange(500), np.arange(500, 600)
    target = y.copy()
    target[test] = np.nan  # a peek at the test targets would turn into NaN predictions or an error
    task = benchmark.Task("toy", x, target, [(train, test)], np.ones(600, dtype=bool), None, "")
    prediction = benchmark.fit_boosting(task, train, test, seed=0, threads=1)
    mae = np.abs(prediction.point - y[test]).mean()
    assert mae < 0.35 * np.abs(y[train].mean() - y[test]).mean()


def test_merge_keeps_the_other_models_of_an_earlier_run_of_the_same_protocol(tmp_path, monkeypatch) -> None:
    """``--models`` fits only the named models; ``--merge`` takes the rest from an earlier JSON, and refuses one run
    under another protocol (here without the element fractions)."""
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    common = ["model_accuracy.py", "--quick", "--rows", "80", "--tasks", "vacancy"]
    monkeypatch.setattr(sys, "argv", [*common, "--models", "ridge,train_mean", "--json", str(first)])
    benchmark.main()
    monkeypatch.setattr(sys, "argv", [*common, "--models", "train_mean", "--merge", str(first), "--json", str(second)])
    benchmark.main()
    earlier, merged = json.loads(first.read_text()), json.loads(second.read_text())
    assert "tc_random" not in merged
    earlier_with_tc = {**earlier, "tc_random": {"ridge": {"mae": 1.0}}}  # a task the next run does not fit
    first.write_text(json.dumps(earlier_with_tc))
    benchmark.main()
    merged = json.loads(second.read_text())
    assert merged["tc_random"] == {"ridge": {"mae": 1.0}}
    assert merged["merged_from"]["tc_random"] == {"path": str(first), "models": ["ridge"]}
    assert list(merged["vacancy"]) == ["ridge", "train_mean"]
    assert merged["vacancy"]["ridge"] == earlier["vacancy"]["ridge"]
    assert merged["vacancy"]["train_mean"]["mae"] == pytest.approx(earlier["vacancy"]["train_mean"]["mae"])
    assert merged["merged_from"]["vacancy"] == {"path": str(first), "models": ["ridge"]}
    monkeypatch.setattr(sys, "argv", [*common, "--no-element-fractions", "--models", "ridge", "--merge", str(first)])
    with pytest.raises(SystemExit):
        benchmark.main()

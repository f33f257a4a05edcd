"""A small real campaign: rounds stored, no candidate picked twice, resumable, deterministic, failures recorded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST_MODEL, campaign_config

from sbin_loop.config import ConfigError, parse_config
from sbin_loop.data import bundled_path
from sbin_loop.loop import Campaign
from sbin_loop.oracles import JobRequest, OracleOutcome
from sbin_loop.space import parse_formula


class Interrupted(Exception):
    """Stands in for a crash (kill, power cut) in the middle of a round."""


class CrashingOracle:
    """Wraps the real replay oracle and crashes once, when round ``crash_round`` is polled."""

    def __init__(self, inner, crash_round: int) -> None:
        self.inner, self.crash_round, self.name, self.version = inner, crash_round, inner.name, inner.version

    def submit(self, requests: list[JobRequest]) -> None:
        self.inner.submit(requests)

    def known(self, requests: list[JobRequest]) -> set[str]:
        return self.inner.known(requests)

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        if any(request.round == self.crash_round for request in requests):
            self.crash_round = -1
            raise Interrupted
        return self.inner.poll(requests)


class FailingOracle:
    """Replays values but fails every job of one candidate, and returns NaN for another."""

    def __init__(self, inner, fail: str, nan: str) -> None:
        self.inner, self.fail, self.nan, self.name, self.version = inner, fail, nan, inner.name, inner.version

    def submit(self, requests: list[JobRequest]) -> None:
        self.inner.submit(requests)

    def known(self, requests: list[JobRequest]) -> set[str]:
        return self.inner.known(requests)

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        outcomes = self.inner.poll(requests)
        for job_id, outcome in outcomes.items():
            if job_id.endswith(":" + self.fail):
                outcomes[job_id] = OracleOutcome(job_id=job_id, status="failed", error="SCF did not converge")
            elif job_id.endswith(":" + self.nan):
                outcomes[job_id] = outcome.model_copy(update={"values": {"Tc_K": float("nan")}})
        return outcomes


def _selections(campaign: Campaign) -> list[list[str]]:
    return [[entry.candidate_id for entry in doc.selected] for doc in campaign.store.rounds()]


@pytest.fixture()
def finished(tmp_path: Path, pool_csv: Path) -> Campaign:
    campaign = Campaign.from_config(campaign_config(pool_csv), tmp_path / "a")
    campaign.run()
    return campaign


def test_three_rounds_stored_and_nothing_picked_twice(finished: Campaign):
    rounds = finished.store.rounds()
    assert [doc.round for doc in rounds] == [0, 1, 2]
    assert all(doc.state == "complete" for doc in rounds)
    picks = [candidate for selection in _selections(finished) for candidate in selection]
    assert len(picks) == 6 + 4 + 4 and len(set(picks)) == len(picks)
    assert "Xx2O" not in picks
    assert rounds[-1].n_evaluations == 14
    assert len(finished.store.results()) == 14
    # Rounds after the first carry a prediction made before the result, and acquisition values.
    assert all(entry.prediction is not None and entry.acquisition == "qLogEI" for entry in rounds[1].selected)
    for key in ("selected", "best_observed", "top_predicted"):
        assert rounds[-1].intervals[key], key
        for entry in rounds[-1].intervals[key]:
            assert entry.interval.lower <= entry.interval.mean <= entry.interval.upper
            assert entry.interval.n_draws == 200
    best = rounds[-1].best_observed
    assert best.observed == max(result.values["Tc_K"] for result in finished.store.results())
    assert (finished.directory / rounds[-1].checkpoint / "weights.safetensors").is_file()
    assert finished.next_round() is None


def test_same_seed_gives_same_rounds(finished: Campaign, tmp_path: Path, pool_csv: Path):
    again = Campaign.from_config(campaign_config(pool_csv), tmp_path / "b")
    again.run()
    assert _selections(again) == _selections(finished)


def test_warm_started_rounds_continue_from_the_last_checkpoint_and_repeat_with_the_seed(tmp_path: Path, pool_csv: Path):
    config = campaign_config(pool_csv, model={**FAST_MODEL, "warm_start_steps": 40, "warm_start_rounds": 1})
    first, again = Campaign.from_config(config, tmp_path / "a"), Campaign.from_config(config, tmp_path / "b")
    first.run()
    again.run()
    trainings = [doc.training for doc in first.store.rounds()]
    # round 0 has no model to continue; round 2 follows warm_start_rounds = 1 continued round, so it starts fresh
    assert [training["warm_started"] for training in trainings] == [False, True, False]
    members = config.model.ensemble_size
    assert trainings[1]["steps"] == 40 * members  # every ensemble member continues for 40 steps
    assert trainings[2]["steps"] > 40 * members
    assert _selections(again) == _selections(first)


def test_resume_after_interruption_continues_from_last_round(finished: Campaign, tmp_path: Path, pool_csv: Path):
    config = campaign_config(pool_csv)
    crashing = Campaign.from_config(config, tmp_path / "c")
    crashing.stages[0] = replace(crashing.stages[0], oracle=CrashingOracle(crashing.stages[0].oracle, crash_round=2))
    with pytest.raises(Interrupted):
        crashing.run()
    stored = crashing.store.rounds()
    assert [(doc.round, doc.state) for doc in stored] == [(0, "complete"), (1, "complete"), (2, "launched")]
    assert {job.state for job in crashing.store.jobs(2)} == {"submitted"}
    crashing.store.close()

    resumed = Campaign.from_config(config, tmp_path / "c")  # a fresh process would do exactly this
    assert resumed.next_round() == 2
    summaries = resumed.run()
    assert [summary.round for summary in summaries] == [2]
    assert _selections(resumed) == _selections(finished)
    assert len(resumed.store.results()) == 14
    assert len(resumed.store.jobs()) == 14


def test_budget_can_be_raised_but_nothing_else_changed(finished: Campaign, pool_csv: Path):
    longer = campaign_config(pool_csv, budget={"initial": 6, "rounds": 3})
    extended = Campaign.from_config(longer, finished.directory)
    assert extended.next_round() == 3
    with pytest.raises(ConfigError, match=r"policy\.batch_size"):
        Campaign.from_config(campaign_config(pool_csv, policy={"batch_size": 5}), finished.directory)


def test_a_campaign_keeps_the_model_it_started_with_when_sbin_defaults_change(finished: Campaign, pool_csv: Path):
    """A campaign started before ``model.likelihood`` existed (Gaussian, validation by squared error) resumes with that
    model, not today's defaults; setting the new value in the config file is a change, refused as any other."""
    stored = finished.store.campaign_doc()
    old_model = {key: value for key, value in stored.config["model"].items() if key != "likelihood"}
    old_model["validation_metric"] = "mse"
    finished.store.put_campaign(stored.model_copy(update={"config": {**stored.config, "model": old_model}}))
    finished.store.close()

    resumed = Campaign.from_config(campaign_config(pool_csv), finished.directory)
    assert (resumed.config.model.likelihood, resumed.config.model.validation_metric) == ("gaussian", "mse")
    assert resumed.store.campaign_doc().config["model"]["likelihood"] == "gaussian"
    resumed.store.close()
    explicit = campaign_config(pool_csv, model={**FAST_MODEL, "likelihood": "laplace"})
    with pytest.raises(ConfigError, match=r"model\.likelihood"):
        Campaign.from_config(explicit, finished.directory)


def test_failed_and_nan_jobs_are_recorded_not_ingested(tmp_path: Path, pool_csv: Path):
    config = campaign_config(pool_csv, budget={"initial": 6, "rounds": 0})
    campaign = Campaign.from_config(config, tmp_path / "f")
    # the seeded initial picks, in a scratch directory
    first = Campaign.from_config(config, tmp_path / "probe")._propose(0)
    bad, nan = first.selected[0].candidate_id, first.selected[1].candidate_id
    campaign.stages[0] = replace(campaign.stages[0], oracle=FailingOracle(campaign.stages[0].oracle, fail=bad, nan=nan))
    campaign.run()
    jobs = {job.candidate_id: job for job in campaign.store.jobs()}
    assert jobs[bad].state == "failed" and jobs[bad].attempts == config.oracle.max_attempts
    assert jobs[bad].errors == ["SCF did not converge"] * 2
    assert jobs[nan].state == "failed" and "non-finite" in jobs[nan].errors[0]
    ingested = {result.candidate_id for result in campaign.store.results()}
    assert bad not in ingested and nan not in ingested and len(ingested) == 4
    assert campaign.store.rounds()[0].n_failed == 2


def test_perovskite_space_campaign_with_filtered_replay(tmp_path: Path):
    config = parse_config(
        {
            "name": "abo3",
            "seed": 1,
            "space": {
                "kind": "perovskite",
                "a_site": ["Ca", "Sr", "Ba", "La"],
                "b_site": ["Ti", "Zr", "Al", "Ga", "Fe"],
                "max_species_a": 1,
                "max_species_b": 1,
            },
            "objectives": [{"name": "Ef_vac_O", "column": "e_form oxygen", "unit": "eV"}],
            "model": FAST_MODEL,
            "policy": {"kind": "uncertainty", "batch_size": 2, "mc_samples": 16},
            "oracle": {
                "source": "bundled:emery_wolverton",
                "where": {"is_lowest_ehull_assignment": True},
                "poll_seconds": 0.01,
                "max_attempts": 1,
            },
            "budget": {"initial": 4, "rounds": 1},
            "intervals": {"n_draws": 100},
        }
    )
    campaign = Campaign.from_config(config, tmp_path / "abo3")
    assert "SrTiO3" in campaign.pool.rows_of({"SrTiO3"})
    assert "perovskite tolerance_factor" in campaign.pool.feature_names
    campaign.run()
    assert [doc.state for doc in campaign.store.rounds()] == ["complete", "complete"]
    results = {result.candidate_id: result.values["Ef_vac_O"] for result in campaign.store.results()}
    table = pd.read_csv(bundled_path("emery_wolverton"))
    physical = table[table["is_lowest_ehull_assignment"]]
    for candidate, value in results.items():  # the physical site assignment's value, never the other one
        rows = physical[[parse_formula(f).reduced_formula == candidate for f in physical["formula"]]]
        assert value == pytest.approx(rows["e_form oxygen"].median())
    failed = [job for job in campaign.store.jobs() if job.state == "failed"]
    assert all("not in the replayed table" in job.errors[0] for job in failed)
    assert len(results) + len(failed) == 6

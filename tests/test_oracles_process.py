"""The worker-process oracle: asynchronous polls, timeouts, crashes, retries, NaN rejection."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from sbin_loop.oracles import JobRequest, OracleOutcome, checked_outcome
from sbin_loop.oracles.process import ProcessOracle


def sleepy_task(request: JobRequest, job_dir: Path) -> OracleOutcome:
    """Sleeps as long as the formula says; ``crash`` exits hard; ``nan`` returns NaN; ``raise`` raises."""
    if request.formula == "crash":
        os._exit(3)
    if request.formula == "raise":
        raise ValueError("bad input")
    if request.formula == "nan":
        return OracleOutcome(job_id=request.job_id, status="completed", values={"y": math.nan})
    time.sleep(float(request.formula))
    return OracleOutcome(job_id=request.job_id, status="completed", values={"y": request.attempt})


def _request(job_id: str, formula: str, attempt: int = 1) -> JobRequest:
    return JobRequest(job_id=job_id, candidate_id=job_id, formula=formula, round=0, attempt=attempt)


def _wait(oracle: ProcessOracle, job_ids: list[str], limit: float = 40.0) -> dict[str, OracleOutcome]:
    outcomes: dict[str, OracleOutcome] = {}
    start = time.monotonic()
    while len(outcomes) < len(job_ids) and time.monotonic() - start < limit:
        outcomes.update(oracle.poll(job_ids))
        time.sleep(0.05)
    return outcomes


def test_failures_of_every_kind_are_reported_with_reasons(tmp_path: Path):
    oracle = ProcessOracle(
        "test", "1", sleepy_task, tmp_path, workers=4, timeout_seconds=8.0
    )  # start-up (spawn, imports) counts
    oracle.submit(
        [_request("slow", "30"), _request("crash", "crash"), _request("raise", "raise"), _request("nan", "nan")]
    )
    assert oracle.poll(["slow"]) == {}  # submit returned at once; still running
    outcomes = _wait(oracle, ["slow", "crash", "raise", "nan"])
    assert outcomes["slow"].status == "failed" and outcomes["slow"].error == "timed out after 8 s"
    assert "exited with code 3" in outcomes["crash"].error
    assert outcomes["raise"].error == "ValueError: bad input"
    nan = checked_outcome(outcomes["nan"], ("y",))
    assert nan.status == "failed" and "non-finite" in nan.error
    assert outcomes["raise"].provenance["oracle"] == "test" and outcomes["raise"].provenance["attempt"] == 1


def test_resubmitted_attempt_runs_once_and_a_retry_runs_again(tmp_path: Path):
    oracle = ProcessOracle("test", "1", sleepy_task, tmp_path, workers=1)
    oracle.submit([_request("a", "0")])
    oracle.submit([_request("a", "0")])  # same attempt: no second computation
    first = _wait(oracle, ["a"])["a"]
    assert first.values == {"y": 1.0} and len(list((tmp_path / "a").iterdir())) == 1
    oracle.submit([_request("a", "0", attempt=2)])
    assert _wait(oracle, ["a"])["a"].values == {"y": 2.0}
    oracle.close()

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


def _wait(oracle: ProcessOracle, requests: list[JobRequest], limit: float = 40.0) -> dict[str, OracleOutcome]:
    outcomes: dict[str, OracleOutcome] = {}
    start = time.monotonic()
    while len(outcomes) < len(requests) and time.monotonic() - start < limit:
        outcomes.update(oracle.poll(requests))
        time.sleep(0.05)
    return outcomes


def test_failures_of_every_kind_are_reported_with_reasons(tmp_path: Path):
    # the limit counts process start-up (spawn, imports), slow on a loaded machine
    oracle = ProcessOracle("test", "1", sleepy_task, tmp_path, workers=4, timeout_seconds=12.0)
    requests = [_request("slow", "30"), _request("crash", "crash"), _request("raise", "raise"), _request("nan", "nan")]
    oracle.submit(requests)
    assert oracle.poll(requests[:1]) == {}  # submit returned at once; still running
    assert oracle.known(requests) == {"slow", "crash", "raise", "nan"}
    outcomes = _wait(oracle, requests)
    assert outcomes["slow"].status == "failed" and outcomes["slow"].error == "timed out after 12 s"
    assert "exited with code 3" in outcomes["crash"].error
    assert outcomes["raise"].error == "ValueError: bad input"
    nan = checked_outcome(outcomes["nan"], ("y",))
    assert nan.status == "failed" and "non-finite" in nan.error
    assert outcomes["raise"].provenance["oracle"] == "test" and outcomes["raise"].provenance["attempt"] == 1


def test_attempts_run_once_survive_restarts_and_retries_run_again(tmp_path: Path):
    oracle = ProcessOracle("test", "1", sleepy_task, tmp_path, workers=1)
    first = _request("a", "0")
    oracle.submit([first])
    oracle.submit([first])  # same attempt: no second computation
    assert _wait(oracle, [first])["a"].values == {"y": 1.0} and len(list((tmp_path / "a").iterdir())) == 1
    restarted = ProcessOracle("test", "1", sleepy_task, tmp_path, workers=1)
    assert restarted.known([first]) == {"a"} and restarted.poll([first]) == {}
    restarted.submit([first])  # a restarted campaign gets the stored outcome
    assert restarted.poll([first])["a"].values == {"y": 1.0}
    retry = _request("a", "0", attempt=2)
    assert restarted.known([retry]) == set() and restarted.poll([retry]) == {}
    restarted.submit([retry])
    assert _wait(restarted, [retry])["a"].values == {"y": 2.0}
    restarted.close()

"""Fault injection: run a campaign under repeated ``kill -9`` and check that nothing was lost or launched twice.

The campaign runs as ``python -m sbin_loop run CONFIG --dir DIR`` in a subprocess, is killed with SIGKILL at seeded
random moments, restarted, and so on until it finishes. The result is compared with an uninterrupted run of the same
config in another directory:

- lost results: jobs that completed without a stored result, jobs of any oracle stage not in a final state, picks
  without a job, or results in the uninterrupted run missing from the interrupted one;
- duplicate launches: a job attempt submitted to the oracle more than once (read from the replay oracle's ledger,
  which the dataset oracles of every stage share);
- identical rounds: the same picks in the same order, acquisition values and best candidates in every round.

``crash_point`` marks places where a test can land a kill exactly (``SBIN_KILL_AT``), between writes that a random
kill rarely separates.

Used by the test suite (up to 20 kills, at least 10 landing) and ``benchmarks/faults.py`` (``--kills``). Needs a
config whose oracle is the dataset replay (it writes the ledger) and, to land kills inside the oracle phase, some
``oracle.latency_seconds``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sbin_loop.locking import lock_holder
from sbin_loop.status import open_campaign

LEDGER = Path("oracle") / "dataset_ledger.jsonl"

KILL_AT = "SBIN_KILL_AT"
"""Environment variable naming a ``crash_point`` at which the process kills itself with SIGKILL (tests only)."""


def crash_point(name: str) -> None:
    """Die here with SIGKILL if ``SBIN_KILL_AT`` names this point: a kill -9 landing exactly between two writes."""
    if os.environ.get(KILL_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class FaultReport:
    """What a kill-and-restart run did and what it broke (ideally nothing)."""

    kills: int = 0
    restarts: int = 0
    states_at_kill: Counter = field(default_factory=Counter)
    lost_results: list[str] = field(default_factory=list)
    duplicate_launches: list[str] = field(default_factory=list)
    round_differences: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No lost result, no duplicate launch, identical rounds."""
        return not (self.lost_results or self.duplicate_launches or self.round_differences)


def _command(config: Path, directory: Path) -> list[str]:
    return [sys.executable, "-m", "sbin_loop", "run", str(config), "--dir", str(directory)]


def _environment() -> dict[str, str]:
    """Same thread count in every process, so that interrupted and uninterrupted runs compute the same floats."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_uninterrupted(config: Path, directory: Path, timeout: float = 1800) -> None:
    """Run a campaign to its end in one subprocess (the reference)."""
    subprocess.run(_command(config, directory), env=_environment(), check=True, capture_output=True, timeout=timeout)


def _round_state(directory: Path) -> str:
    """Where the campaign stands ("r3:launched", "r3:launched:s1" in a later oracle stage), read while it is dead."""
    try:
        store, _ = open_campaign(directory)
    except FileNotFoundError:
        return "not started"
    try:
        rounds = store.rounds()
    finally:
        store.close()
    if not rounds:
        return "no round"
    last = rounds[-1]
    return f"r{last.round}:{last.state}" + (f":s{last.stage}" if last.stage else "")


def _wait_until_driving(process: subprocess.Popen, directory: Path, timeout: float = 600) -> None:
    """Return once ``process`` holds the campaign lock (its imports and start-up are over) or has exited.

    Kill delays are counted from here, so that on a loaded machine, where importing torch alone can take longer
    than ``max_delay``, kills still land inside rounds rather than all during start-up.
    """
    deadline = time.monotonic() + timeout
    while process.poll() is None and lock_holder(directory) != process.pid and time.monotonic() < deadline:
        time.sleep(0.02)


def run_with_kills(
    config: Path, directory: Path, kills: int, seed: int, max_delay: float = 8.0, timeout: float = 1800
) -> FaultReport:
    """Kill the campaign process ``kills`` times at seeded random delays after each start, then let it finish.

    Args:
        config: Campaign YAML.
        directory: Campaign directory (fresh).
        kills: Number of SIGKILLs to deliver (a process that finishes before its kill is simply restarted).
        seed: Seed of the kill delays.
        max_delay: Kills land uniformly between 0.5 s and this many seconds after a start has taken the campaign
            lock; the window grows 1.5-fold for each kill in a row that found the campaign in the same state as
            the last, so a slow machine still makes progress between kills.
        timeout: Bound on the final, uninterrupted completion.
    """
    rng = np.random.default_rng(seed)
    report = FaultReport()
    start = time.monotonic()
    last_state, stuck = "", 0
    while report.kills < kills:
        process = subprocess.Popen(
            _command(config, directory), env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        report.restarts += 1
        _wait_until_driving(process, directory)
        try:
            process.wait(timeout=float(rng.uniform(0.5, max_delay)) * 1.5**stuck)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            report.kills += 1
            state = _round_state(directory)
            stuck = stuck + 1 if state == last_state else 0
            last_state = state
            report.states_at_kill[state] += 1
            continue
        if process.returncode != 0:
            raise RuntimeError(f"campaign process failed: {process.stderr.read().decode(errors='replace')[-2000:]}")
        break  # it finished before its kill was due
    run_uninterrupted(config, directory, timeout)
    report.restarts += 1
    report.seconds = time.monotonic() - start
    return report


def _comparable_rounds(directory: Path) -> list[dict]:
    store, _ = open_campaign(directory)
    try:
        rounds = store.rounds()
    finally:
        store.close()
    return [
        {
            "round": doc.round,
            "state": doc.state,
            "selected": [(entry.candidate_id, entry.acquisition_value) for entry in doc.selected],
            "n_evaluations": doc.n_evaluations,
            "best": doc.best_observed.model_dump() if doc.best_observed else None,
        }
        for doc in rounds
    ]


def check_invariants(directory: Path, reference: Path, report: FaultReport) -> FaultReport:
    """Fill ``report`` with lost results, duplicate launches and round differences against ``reference``."""
    store, _ = open_campaign(directory)
    try:
        jobs, results = store.jobs(), {result.job_id: result for result in store.results()}
        picks = [(doc.round, entry.candidate_id) for doc in store.rounds() for entry in doc.selected]
    finally:
        store.close()
    first_stage = {(job.round, job.candidate_id) for job in jobs if job.stage == 0}
    report.lost_results += [
        f"{job.job_id}: completed without result"
        for job in jobs
        if job.state == "completed" and job.job_id not in results
    ]
    report.lost_results += [
        f"{job.job_id}: left {job.state}" for job in jobs if job.state not in ("completed", "failed")
    ]
    report.lost_results += [
        f"r{index}:{candidate}: no job" for index, candidate in picks if (index, candidate) not in first_stage
    ]
    reference_store, _ = open_campaign(reference)
    try:
        expected = {result.job_id for result in reference_store.results()}
    finally:
        reference_store.close()
    report.lost_results += [f"{job_id}: missing" for job_id in sorted(expected - set(results))]
    launches = Counter(
        json.loads(line)["key"] for line in (directory / LEDGER).read_text().splitlines() if line.strip()
    )
    report.duplicate_launches += [f"{key} x{count}" for key, count in sorted(launches.items()) if count > 1]
    ours, theirs = _comparable_rounds(directory), _comparable_rounds(reference)
    if len(ours) != len(theirs):
        report.round_differences.append(f"{len(ours)} rounds instead of {len(theirs)}")
    report.round_differences += [f"round {a['round']} differs" for a, b in zip(ours, theirs, strict=False) if a != b]
    return report

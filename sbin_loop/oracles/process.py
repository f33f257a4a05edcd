"""Run oracle jobs in worker processes: ``submit`` returns at once, ``poll`` reports the finished ones.

Each job runs a picklable task in its own spawned process (so a hung or crashed computation can be killed without
taking the campaign with it), at most ``workers`` at a time. A job that runs past ``timeout_seconds`` is killed and
reported failed with that reason; a task that raises is reported failed with the exception; a process that dies
without a result is reported failed with its exit code. An outcome's ``wall_seconds`` is the whole process time
(start-up and imports included); the task's own time is ``provenance["task_seconds"]``. Outcomes are written to
``work_dir/<job>/attempt-<n>/`` with the job's log, so a restarted campaign that submits the same attempt again gets
the stored outcome instead of a second computation.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sbin_loop.atomic import write_atomic
from sbin_loop.oracles.base import JobRequest, OracleOutcome

Task = Callable[[JobRequest, Path], OracleOutcome]
"""Computes one job in the worker process, given the job's own directory; raises to fail the job."""

_OUTCOME = "outcome.json"


def _job_dir(work_dir: Path, request: JobRequest) -> Path:
    return work_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", request.job_id) / f"attempt-{request.attempt}"


def _run_task(task: Task, request: JobRequest, job_dir: Path) -> None:
    """Worker process body: run the task with output going to the job's log, write the outcome file."""
    with open(job_dir / "job.log", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        start = time.perf_counter()
        try:
            outcome = task(request, job_dir)
        except Exception as error:  # the reason is the job's result
            traceback.print_exc()
            outcome = OracleOutcome(job_id=request.job_id, status="failed", error=f"{type(error).__name__}: {error}")
        if not outcome.wall_seconds:
            outcome = outcome.model_copy(update={"wall_seconds": time.perf_counter() - start})
        write_atomic(job_dir / _OUTCOME, outcome.model_dump_json())


@dataclass
class _Running:
    request: JobRequest
    job_dir: Path
    process: multiprocessing.process.BaseProcess
    started: float


class ProcessOracle:
    """An oracle whose jobs are computed by ``task`` in worker processes.

    Args:
        name: Oracle name recorded with every result.
        version: Oracle version recorded with every result.
        task: Picklable callable computing one job.
        work_dir: Directory of the job directories.
        workers: Jobs run at once.
        timeout_seconds: Wall-clock limit per job; ``None`` for none.
    """

    def __init__(
        self,
        name: str,
        version: str,
        task: Task,
        work_dir: Path,
        workers: int = 1,
        timeout_seconds: float | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self._task = task
        self._work_dir = Path(work_dir)
        self._workers = workers
        self._timeout = timeout_seconds
        self._context = multiprocessing.get_context("spawn")
        self._queued: dict[str, JobRequest] = {}
        self._running: dict[str, _Running] = {}
        self._finished: dict[str, OracleOutcome] = {}

    def submit(self, requests: list[JobRequest]) -> None:
        """Queue job attempts; an attempt already queued, running or finished (here or on disk) is not run again."""
        for request in requests:
            if self._accepted(request):
                continue
            stored = _job_dir(self._work_dir, request) / _OUTCOME
            if stored.is_file():
                outcome = OracleOutcome.model_validate_json(stored.read_text())
                self._finished[request.key] = self._with_provenance(outcome, request, stored.parent)
            else:
                self._queued[request.key] = request
        self._schedule()

    def known(self, requests: list[JobRequest]) -> set[str]:
        """Job ids whose attempt is queued, running or finished, or whose outcome is stored from an earlier run."""
        return {
            request.job_id
            for request in requests
            if self._accepted(request) or (_job_dir(self._work_dir, request) / _OUTCOME).is_file()
        }

    def _accepted(self, request: JobRequest) -> bool:
        return request.key in self._queued or request.key in self._running or request.key in self._finished

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        """Outcomes, by job id, of the finished attempts among ``requests`` (after reaping and starting jobs)."""
        self._reap()
        self._schedule()
        return {request.job_id: self._finished[request.key] for request in requests if request.key in self._finished}

    def close(self) -> None:
        """Kill running jobs and forget queued ones."""
        for running in self._running.values():
            running.process.kill()
            running.process.join()
        self._running.clear()
        self._queued.clear()

    def _schedule(self) -> None:
        while self._queued and len(self._running) < self._workers:
            key, request = next(iter(self._queued.items()))
            del self._queued[key]
            job_dir = _job_dir(self._work_dir, request)
            job_dir.mkdir(parents=True, exist_ok=True)
            process = self._context.Process(target=_run_task, args=(self._task, request, job_dir), daemon=True)
            process.start()
            self._running[key] = _Running(request, job_dir, process, time.monotonic())

    def _reap(self) -> None:
        for key, running in list(self._running.items()):
            elapsed = time.monotonic() - running.started
            if running.process.is_alive():
                if self._timeout is None or elapsed <= self._timeout:
                    continue
                running.process.kill()
                running.process.join()
                outcome = self._failure(running.request, f"timed out after {self._timeout:g} s", elapsed)
            else:
                running.process.join()
                outcome = self._stored_outcome(running, elapsed)
            del self._running[key]
            outcome = outcome.model_copy(
                update={
                    "wall_seconds": elapsed,
                    "provenance": {**outcome.provenance, "task_seconds": outcome.wall_seconds},
                }
            )
            self._finished[key] = self._with_provenance(outcome, running.request, running.job_dir)

    def _stored_outcome(self, running: _Running, elapsed: float) -> OracleOutcome:
        stored = running.job_dir / _OUTCOME
        log = running.job_dir / "job.log"
        if not stored.is_file():
            reason = f"worker exited with code {running.process.exitcode} without a result (log: {log})"
            return self._failure(running.request, reason, elapsed)
        try:
            return OracleOutcome.model_validate_json(stored.read_text())
        except ValueError as error:
            return self._failure(running.request, f"unreadable outcome {stored}: {error}", elapsed)

    @staticmethod
    def _failure(request: JobRequest, reason: str, elapsed: float) -> OracleOutcome:
        return OracleOutcome(job_id=request.job_id, status="failed", error=reason, wall_seconds=elapsed)

    def _with_provenance(self, outcome: OracleOutcome, request: JobRequest, job_dir: Path) -> OracleOutcome:
        provenance = {
            **outcome.provenance,
            "oracle": self.name,
            "version": self.version,
            "job_id": request.job_id,
            "round": request.round,
            "attempt": request.attempt,
            "job_dir": str(job_dir),
            "python": sys.version.split()[0],
        }
        return outcome.model_copy(update={"provenance": provenance})

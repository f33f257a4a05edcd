"""Oracle stages of a round: write the jobs (the intent), submit them, poll them, ingest each outcome once.

A round's first stage evaluates every pick; each later stage evaluates the picks its previous stage completed, or the
``select.top_k`` best of them by ``select.rank_by`` (``StageRunner.promoted``). Failed attempts are retried up to the
stage's ``max_attempts``, then recorded as failed and never ingested. Every outcome passes ``ingestible_outcome``.
"""

from __future__ import annotations

import logging
import threading
import time

from sbin_loop.config import CampaignConfig
from sbin_loop.faults import crash_point
from sbin_loop.measurements import ingestible_outcome
from sbin_loop.oracles import JobRequest, OracleOutcome, OracleStage
from sbin_loop.stores import CampaignStore, JobDoc, ResultDoc, RoundDoc, SelectionEntry
from sbin_loop.stores.documents import TOLD, elapsed_seconds, merged_values, utc_now

logger = logging.getLogger(__name__)


def job_request(job: JobDoc) -> JobRequest:
    """What the oracle is asked to evaluate for a job's current attempt."""
    return JobRequest(
        job_id=job.job_id, candidate_id=job.candidate_id, formula=job.formula, round=job.round, attempt=job.attempts
    )


class StageRunner:
    """Runs the oracle stages of rounds against a store.

    Args:
        config: The campaign config.
        store: The campaign's store.
        stages: The oracle stages (the same list the campaign holds, so a stage replaced there is used here).
        stop: Set to leave a poll loop at the next step boundary.
    """

    def __init__(
        self, config: CampaignConfig, store: CampaignStore, stages: list[OracleStage], stop: threading.Event
    ) -> None:
        self.config = config
        self.store = store
        self.stages = stages
        self._stop = stop

    def job_id(self, index: int, stage: int, candidate: str) -> str:
        """``campaign:rNNNN:candidate`` in stage 0 (ids from before stages), ``campaign:rNNNN:sK:candidate`` in K."""
        return f"{self.config.name}:r{index:04d}:{f's{stage}:' if stage else ''}{candidate}"

    def stage_jobs(self, index: int, stage: int) -> list[JobDoc]:
        """The jobs of one stage of a round."""
        # Filtered here, not in the query: jobs stored before stages existed have no ``stage`` field in the backend.
        return [job for job in self.store.jobs(index) if job.stage == stage]

    def launch(self, doc: RoundDoc, stage: int = 0) -> RoundDoc:
        """Write one ``pending`` job per pick the stage evaluates (the intent), submit them, store the round launched.

        Rewriting the intents after a restart is harmless: the picks of a stage are computed from stored documents
        only, the same every time, and jobs already written are kept as they are.
        """
        existing = {job.job_id for job in self.stage_jobs(doc.round, stage)}
        oracle = self.stages[stage].oracle
        for entry in doc.selected if stage == 0 else self.promoted(doc, stage):
            job_id = self.job_id(doc.round, stage, entry.candidate_id)
            if job_id not in existing:
                self.store.put_job(
                    JobDoc(
                        campaign=self.config.name,
                        job_id=job_id,
                        round=doc.round,
                        candidate_id=entry.candidate_id,
                        formula=entry.formula,
                        oracle=oracle.name,
                        stage=stage,
                        state="pending",
                    )
                )
        self.submit_pending(doc.round, stage)
        if stage:
            logger.info("round %d: stage %d (%s) launched", doc.round, stage, oracle.name)
        return self.store.update_round(doc, state="launched", stage=stage)

    def promoted(self, doc: RoundDoc, stage: int) -> list[SelectionEntry]:
        """The picks a later stage evaluates, best first.

        Only picks whose job in the previous stage completed are eligible. They are ranked by the ``select.rank_by``
        objective (the policy objective if not given) in its goal's direction: by the latest value an earlier stage of
        this round measured, else by the predicted mean stored with the pick; picks with neither come last; ties keep
        pick order. The first ``select.top_k`` are returned (all of them without ``top_k``).
        """
        select = self.stages[stage].select
        completed = {job.candidate_id for job in self.stage_jobs(doc.round, stage - 1) if job.state == "completed"}
        name = select.rank_by or self.config.policy_objective.name
        goal = next(objective.goal for objective in self.config.objectives if objective.name == name)
        sign = 1.0 if goal == "maximize" else -1.0
        measured = merged_values(result for result in self.store.results() if result.round == doc.round)

        def rank(entry: SelectionEntry) -> tuple[bool, float]:
            value = measured.get(entry.candidate_id, {}).get(name, entry.predicted_means.get(name))
            return value is None, 0.0 if value is None else -sign * value

        ranked = sorted((entry for entry in doc.selected if entry.candidate_id in completed), key=rank)
        return ranked[: select.top_k]

    def submit_pending(self, index: int, stage: int) -> None:
        """Submit the stage's ``pending`` attempts its oracle does not already know, then record them submitted."""
        pending = [job for job in self.stage_jobs(index, stage) if job.state == "pending" and job.oracle != TOLD]
        if not pending:
            return
        oracle = self.stages[stage].oracle
        known = oracle.known([job_request(job) for job in pending])
        fresh = [job for job in pending if job.job_id not in known]
        if fresh:
            oracle.submit([job_request(job) for job in fresh])
        if len(fresh) < len(pending):
            logger.info(
                "round %d, stage %d: %d attempts were already submitted before a restart",
                index,
                stage,
                len(pending) - len(fresh),
            )
        now = utc_now()
        for job in pending:
            self.store.put_job(job.model_copy(update={"state": "submitted", "submitted_at": now}))

    def ingest(self, doc: RoundDoc) -> RoundDoc:
        """Poll the launched stage until each of its jobs is completed or failed; then launch the next stage.

        Failures are retried and each result is ingested exactly once. After the last stage the round is stored
        ``ingested``.
        """
        start = time.perf_counter()
        stage = self.stages[doc.stage]
        self.submit_pending(doc.round, doc.stage)
        running = {job.job_id: job for job in self.stage_jobs(doc.round, doc.stage) if job.state == "submitted"}
        known = stage.oracle.known([job_request(job) for job in running.values()])
        lost = [job for job in running.values() if job.job_id not in known]
        if lost:
            logger.warning("round %d, stage %d: %d submitted attempts lost", doc.round, doc.stage, len(lost))
            stage.oracle.submit([job_request(job) for job in lost])
        while running:
            if self._stop.is_set():
                return doc
            outcomes = stage.oracle.poll([job_request(job) for job in running.values()])
            for job_id, job in list(running.items()):
                outcome = outcomes.get(job_id) or self._timeout(job)
                if outcome is None:
                    continue
                del running[job_id]
                retry = self.record_outcome(job, ingestible_outcome(outcome, tuple(self.config.objectives)))
                if retry is not None:
                    running[job_id] = retry
            if running and not outcomes:
                self._stop.wait(stage.poll_seconds)
        timer = f"oracle_s{doc.stage}" if doc.stage else "oracle"
        timings = {**doc.timings, timer: doc.timings.get(timer, 0.0) + time.perf_counter() - start}
        if doc.stage + 1 < len(self.stages):
            return self.launch(doc.model_copy(update={"timings": timings}), doc.stage + 1)
        return self.store.update_round(doc, state="ingested", timings=timings)

    def _timeout(self, job: JobDoc) -> OracleOutcome | None:
        """A failure outcome if the job's current attempt has run longer than its stage's ``timeout_seconds``."""
        limit = self.stages[job.stage].timeout_seconds
        if job.submitted_at is None or elapsed_seconds(job.submitted_at) <= limit:
            return None
        return OracleOutcome(job_id=job.job_id, status="failed", error=f"timed out after {limit:g} s")

    def store_outcome(self, job: JobDoc, outcome: OracleOutcome, final: bool = False) -> JobDoc:
        """Store a result (then mark the job completed), or a failure; return the job as stored.

        A failure is final once the job has had its stage's ``max_attempts`` (or when ``final``); otherwise the job
        is stored ``pending`` with one more attempt.
        """
        if outcome.status == "completed":
            self.store.put_result(
                ResultDoc(
                    campaign=self.config.name,
                    job_id=job.job_id,
                    round=job.round,
                    candidate_id=job.candidate_id,
                    formula=job.formula,
                    values=outcome.values,
                    oracle=job.oracle,
                    stage=job.stage,
                    provenance={**outcome.provenance, "wall_seconds": outcome.wall_seconds, "attempt": job.attempts},
                    document=outcome.document,
                )
            )
            crash_point("outcome:result")
            stored = job.model_copy(update={"state": "completed"})
        else:
            errors = [*job.errors, outcome.error or "unknown failure"]
            logger.warning("job %s failed (attempt %d): %s", job.job_id, job.attempts, errors[-1])
            if final or job.attempts >= self.stages[job.stage].max_attempts:
                stored = job.model_copy(update={"state": "failed", "errors": errors})
            else:
                stored = job.model_copy(update={"attempts": job.attempts + 1, "errors": errors, "state": "pending"})
        self.store.put_job(stored)
        return stored

    def record_outcome(self, job: JobDoc, outcome: OracleOutcome) -> JobDoc | None:
        """Store an outcome (``store_outcome``); return the retried job, submitted again, if the job is retried."""
        stored = self.store_outcome(job, outcome)
        if stored.state != "pending":
            return None
        self.submit_pending(job.round, job.stage)
        return next(retry for retry in self.store.jobs(job.round) if retry.job_id == job.job_id)

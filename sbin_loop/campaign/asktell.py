"""Ask/tell: a campaign driven by hand, one batch of proposals and one file of measurements at a time.

``Campaign.ask`` proposes a batch and stores it as a round (its picks are the round's jobs, pending until told);
asking again while picks are pending returns them again, and ``new=True`` adds more picks to the open round.
``Campaign.tell`` stores measurements: of pending picks, and of any other candidate of the space (extra data the
next model learns from; before the first ask they make round 0 model-driven). The next ask retrains on everything
once every pick of the open round is told, then proposes the next round.

Crash safety follows from the store's write order: a round's picks are stored (``proposed``) before their jobs, an
extension is stored ``proposed`` again, and a tell is idempotent (``sbin_loop.campaign.tell``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from sbin_loop.campaign.rounds import RoundMachine
from sbin_loop.campaign.tell import (
    CandidateMatcher,
    Measurement,
    MeasurementError,
    TellReport,
    csv_records,
    read_rows,
)
from sbin_loop.config import parse_config, stored_campaign_config
from sbin_loop.engine import CampaignError
from sbin_loop.faults import crash_point
from sbin_loop.space.pool import resolve_source
from sbin_loop.status import STORE_URI_VARIABLE, open_campaign, read_marker
from sbin_loop.stores import JobDoc, RoundDoc, SelectionEntry
from sbin_loop.stores.config import StoreConfig
from sbin_loop.stores.documents import TOLD

logger = logging.getLogger(__name__)

Told = str | Path | pd.DataFrame | Iterable[Mapping[str, object]]
"""Measurements as a CSV path, a data frame, or records (``formula``/``candidate_id``, objectives, ``status``)."""


class Campaign(RoundMachine):
    """A campaign bound to its directory and store: ``run`` it, or drive it by hand with ``ask`` and ``tell``.

    Build one with ``Campaign.from_config(config, directory, base_dir)`` (or ``Campaign.open(directory)`` for an
    existing one); the constructor takes the collaborators (see ``RoundMachine``).
    """

    @classmethod
    def open(cls, directory: Path) -> Campaign:
        """The campaign stored in ``directory``, under the config it was created with.

        Raises:
            NotACampaignError: If the directory holds no campaign (or its MongoDB URI is not in the environment).
        """
        store, document = open_campaign(Path(directory))
        store.close()
        stored = stored_campaign_config(document.config)
        config = parse_config(stored, origin=f"{directory}: the campaign's stored config")
        marker = read_marker(Path(directory)) or {}
        if marker.get("backend") == "mongodb":
            uri = os.environ.get(STORE_URI_VARIABLE)
            config = config.model_copy(update={"store": StoreConfig(uri=uri, database=marker["database"])})
        return cls.from_config(config, Path(directory), Path(directory))

    # Tell -------------------------------------------------------------------------------------------------------
    def _tell_initial(self, base_dir: Path) -> None:
        """Store ``budget.initial``'s measurements (``{from: FILE}``) once, before round 0 is proposed."""
        source = self.config.budget.initial_source
        document = self.store.campaign_doc()
        if source is None or self.store.rounds() or document is None or document.initial_told:
            return
        report = self.tell(resolve_source(source, base_dir))
        self.store.put_campaign(document.model_copy(update={"initial_told": True}))
        logger.info("budget.initial from %s: %s", source, report.line())

    def measurements(self, told: Told) -> list[Measurement]:
        """Measurements read and matched to candidates of the pool, all checked before anything is stored.

        Raises:
            MeasurementError: Listing every bad row (line and column): nothing of them is stored.
        """
        objectives = tuple(self.config.objectives)
        if isinstance(told, str | Path):
            records = csv_records(Path(told), objectives)
        elif isinstance(told, pd.DataFrame):
            records = [(f"row {index}", record) for index, record in enumerate(told.to_dict("records"))]
        else:
            records = [(f"measurement {index}", record) for index, record in enumerate(told)]
        return CandidateMatcher(self.pool).match(*read_rows(records, objectives))

    def tell(self, told: Told) -> TellReport:
        """Store measurements of pending picks and of any other candidate of the space.

        Values pass the same checks as every oracle's (``ingestible_outcome``): a non-finite or out-of-support value
        is stored as a failure with the reason; ``status: failed`` rows are stored as failures. Telling the same
        measurements again stores nothing new.

        Raises:
            MeasurementError: If any row is bad (nothing is stored), or names a candidate that another oracle is
                evaluating right now.
        """
        measurements = self.measurements(told)
        jobs = self.store.jobs()
        pending = {
            job.candidate_id: job
            for job in jobs
            if job.stage == 0 and job.oracle != TOLD and job.state in ("pending", "submitted")
        }
        busy = [m for m in measurements if m.candidate_id in pending and pending[m.candidate_id].oracle != "manual"]
        if busy:
            raise MeasurementError(
                "\n".join(f"{m.where}: {m.candidate_id} is being evaluated by the campaign's oracle" for m in busy)
            )
        by_id = {job.job_id: job for job in jobs}
        stored_values = {(r.candidate_id, json.dumps(sorted(r.values.items()))) for r in self.store.results()}
        failures = {(job.candidate_id, job.errors[-1]) for job in jobs if job.state == "failed" and job.errors}
        told_round = self._told_round()
        objectives = tuple(self.config.objectives)
        report = TellReport()
        for measurement in measurements:
            job = pending.get(measurement.candidate_id)
            if job is None:
                job_id = f"{self.config.name}:told:{measurement.candidate_id}:{measurement.digest()}"
                outcome = measurement.outcome(job_id, objectives)
                done = (measurement.candidate_id, json.dumps(sorted(outcome.values.items()))) in stored_values
                done = done if outcome.status == "completed" else (measurement.candidate_id, outcome.error) in failures
                existing = by_id.get(job_id)
                if (existing is not None and existing.state != "pending") or (existing is None and done):
                    report.skipped += 1
                    continue
                job = existing or JobDoc(
                    campaign=self.config.name,
                    job_id=job_id,
                    round=told_round,
                    candidate_id=measurement.candidate_id,
                    formula=measurement.formula,
                    oracle=TOLD,
                    state="pending",
                )
                if existing is None:
                    self.store.put_job(job)  # the intent first: a result is never stored without its job
                    crash_point("tell:intent")
                report.new += 1
            else:
                outcome = measurement.outcome(job.job_id, objectives)
                report.picks += 1
            stored = self.runner.store_outcome(job, outcome, final=True)
            crash_point("tell:stored")
            if stored.state == "failed":
                report.failed += 1
                report.errors.append(f"{measurement.candidate_id}: {stored.errors[-1]}")
        return report

    def _told_round(self) -> int:
        """The round told measurements belong to: the open round, else the next one."""
        rounds = self.store.rounds()
        if not rounds:
            return 0
        return rounds[-1].round if rounds[-1].state != "complete" else rounds[-1].round + 1

    # Ask --------------------------------------------------------------------------------------------------------
    def ask(self, n: int | None = None, new: bool = False) -> list[SelectionEntry]:
        """Propose ``n`` candidates (the policy's batch size by default), stored as a round, with predictions.

        While picks of the open round are untold, they are returned again; ``new=True`` adds ``n`` more picks to the
        round instead. Once every pick is told, the model is retrained on every result and the next round proposed.

        Raises:
            CampaignError: If the campaign's oracle is not manual, or its budget is spent.
        """
        if not self.config.manual:
            raise CampaignError(
                f"campaign {self.config.name!r}: its {self.config.oracle.kind} oracle evaluates the picks itself; "
                "ask/tell needs oracle: {kind: manual} (use sbin run)"
            )
        if n is not None and n < 1:
            raise CampaignError(f"ask: n must be at least 1, not {n}")
        rounds = self.store.rounds()
        doc = rounds[-1] if rounds and rounds[-1].state != "complete" else None
        if doc is not None:
            if doc.state == "proposed":
                doc = self.runner.launch(doc)
            pending = self._pending(doc)
            if pending:
                return self._extend(doc, n) if new else pending
            self._advance(doc)
        index = self.next_round()
        if index is None:
            self._record_stop_reason()
            raise CampaignError(
                f"campaign {self.config.name!r} is finished ({self.stop_reason()}); raise the budget to continue"
            )
        doc = self._propose(index, n)
        crash_point("ask:proposed")
        return self._pending(self.runner.launch(doc))

    def _pending(self, doc: RoundDoc) -> list[SelectionEntry]:
        """The picks of a round whose measurement has not been told yet, in pick order."""
        waiting = {
            job.candidate_id
            for job in self.runner.stage_jobs(doc.round, 0)
            if job.oracle != TOLD and job.state in ("pending", "submitted")
        }
        return [entry for entry in doc.selected if entry.candidate_id in waiting]

    def _extend(self, doc: RoundDoc, n: int | None) -> list[SelectionEntry]:
        """Add ``n`` picks to an open round; it is stored ``proposed`` with them before their jobs are written."""
        results = self.store.results()
        surrogate = self._proposal_model(doc.round, results)
        if surrogate is None and n is None:
            n = self.config.budget.initial_count
        picks = self.engine.propose(surrogate, self._available(), doc.round, results, n, extension=len(doc.selected))
        doc = self.store.update_round(doc, state="proposed", selected=[*doc.selected, *picks])
        crash_point("ask:extended")
        self.runner.launch(doc)
        logger.info("round %d: %d more picks: %s", doc.round, len(picks), ", ".join(p.candidate_id for p in picks))
        return picks

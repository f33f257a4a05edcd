"""The persistent campaign: a round state machine over a store, composing an engine and oracle stages.

A round goes through these stored states:

1. ``proposed``: candidates picked (at random in round 0 when nothing is measured yet, otherwise by the policy on
   the model) and the round document written, with the prediction made for each pick before its result exists.
2. ``launched``: one job document per pick written (the intent), then the jobs submitted to the first oracle stage;
   later stages are launched in turn (``sbin_loop.campaign.stages``).
3. ``ingested``: every job of the last stage completed or failed.
4. ``trained`` and ``complete``: the model retrained on every result, its checkpoint saved, and Monte Carlo
   intervals stored for the picks, the best measured and the best predicted candidates.

A restarted campaign continues the last round from its stored state with the stored picks, so it neither re-picks
nor re-labels anything. All randomness derives from the campaign seed and the round number (``sbin_loop.seeds``).
Measurements may also be told (``tell``): before round 0 (then round 0 is picked by a model), or, with a manual
oracle, for the picks ``ask`` returned (``sbin_loop.campaign.asktell``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sbin_loop import __version__
from sbin_loop.campaign.resume import PoolLoader, check_directory_belongs_to, resumed_config
from sbin_loop.campaign.stages import StageRunner
from sbin_loop.campaign.summary import RoundSummary, round_summary
from sbin_loop.candidates import CandidatePool
from sbin_loop.config import CampaignConfig
from sbin_loop.engine import CampaignError, Engine, SurrogateFactory
from sbin_loop.integrity import check_campaign, check_directory, check_pool_candidates, save_checkpoint_once
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.oracles import OracleStage, build_oracles, dataset_table
from sbin_loop.oracles.config import DatasetOracleConfig
from sbin_loop.policies import Policy
from sbin_loop.seeds import TELL_TRAIN, TRAIN, derive_seed
from sbin_loop.status import read_marker, write_marker
from sbin_loop.stores import CampaignDoc, CampaignStore, ResultDoc, RoundDoc
from sbin_loop.stores.documents import merged_values
from sbin_loop.surrogates.registry import load_model, save_model

logger = logging.getLogger(__name__)


class RoundMachine:
    """A campaign's rounds over its store: propose, launch, ingest, train, finish, and the stop rules.

    Args:
        config: The validated campaign config.
        directory: Campaign directory (checkpoints are written under it).
        store: The campaign's store.
        pool: The candidate pool.
        stages: The oracle stages of every round, in ``config.oracles`` order (the first evaluates every pick).
        policy: The acquisition policy (``build_policy(config.policy)`` if not given).
        surrogate_factory: Makes untrained surrogates (a ``BNNSurrogate`` of ``config.model`` if not given).

    Attributes:
        stages: The oracle stages; replacing one (``campaign.stages[0] = ...``) takes effect at once.
        engine: Fits, proposes and predicts in memory.
    """

    def __init__(
        self,
        config: CampaignConfig,
        directory: Path,
        *,
        store: CampaignStore,
        pool: CandidatePool,
        stages: list[OracleStage],
        policy: Policy | None = None,
        surrogate_factory: SurrogateFactory | None = None,
    ) -> None:
        self.config = config
        self.directory = Path(directory)
        self.store = store
        self.pool = pool
        self.stages = list(stages)
        self._stop = threading.Event()
        self.engine = Engine(config, pool, policy, surrogate_factory)
        self.runner = StageRunner(config, store, self.stages, self._stop)
        self.objective_names = self.engine.objective_names

    @classmethod
    def from_config(
        cls,
        config: CampaignConfig,
        directory: Path,
        base_dir: Path | None = None,
        *,
        stages: list[OracleStage] | None = None,
        policy: Policy | None = None,
        surrogate_factory: SurrogateFactory | None = None,
    ) -> RoundMachine:
        """Open (creating if needed) the campaign of ``config`` in ``directory``, with the collaborators it names.

        Args:
            config: The validated campaign config.
            directory: Campaign directory (created if needed); holds the embedded store, pool cache, checkpoints, log.
            base_dir: Directory that relative paths in the config are resolved against (the working directory).
            stages: Replace the configured oracle stages (built from ``config.oracles`` if not given).
            policy: Replaces the configured policy.
            surrogate_factory: Replaces the configured surrogate.

        Raises:
            ConfigError: If the directory holds another campaign, or this one started with a different config (other
                than its budget).
        """
        directory, base_dir = Path(directory), base_dir or Path.cwd()
        directory.mkdir(parents=True, exist_ok=True)
        check_directory_belongs_to(directory, config.name)
        store = CampaignStore.open(config.name, config.store, directory)
        check_directory(directory, read_marker(directory), store, config.name, config.store.uri is None)
        stored = store.campaign_doc()
        if stored is not None:
            check_campaign(store, directory, stored.config)
            config = resumed_config(config, stored, store, directory)
        # Pool and oracles are built (and so validated) before a new campaign writes anything to its store.
        table = functools.cache(lambda: dataset_table(config.oracle, config, base_dir))
        pool = PoolLoader(config, directory, base_dir, table).load(bool(store.rounds() or store.jobs()))
        check_pool_candidates(directory, {job.candidate_id for job in store.jobs()}, pool.rows_of)
        if stages is None:
            primary = table() if isinstance(config.oracle, DatasetOracleConfig) else None
            stages = build_oracles(config, base_dir, directory, table=primary)
        if stored is None:
            current = config.model_dump(mode="json")
            store.put_campaign(CampaignDoc(campaign=config.name, config=current, sbin_version=__version__))
        write_marker(directory, config.name, config.store)
        campaign = cls(
            config, directory, store=store, pool=pool, stages=stages, policy=policy, surrogate_factory=surrogate_factory
        )
        campaign._tell_initial(base_dir)
        return campaign

    def _tell_initial(self, base_dir: Path) -> None:
        """Hook: store ``budget.initial``'s measurements before round 0 (see ``Campaign``)."""

    @property
    def policy(self) -> Policy:
        """The acquisition policy."""
        return self.engine.policy

    # Round bookkeeping ------------------------------------------------------------------------------------------
    @property
    def last_round(self) -> int:
        """Index of the last round (``budget.rounds``); round 0 is the initial design."""
        return self.config.budget.rounds

    def request_stop(self) -> None:
        """Ask the loop to stop at the next step boundary (thread- and signal-handler-safe)."""
        self._stop.set()

    def stop_reason(self) -> str | None:
        """Why no further round should start, or ``None``. A round in progress is always finished first."""
        rounds = self.store.rounds()
        if rounds and rounds[-1].state != "complete":
            return None
        if rounds and rounds[-1].round >= self.last_round:
            return f"all {self.last_round} rounds after round 0 are complete"
        budget = self.config.budget
        results = self.store.results()
        if budget.max_evaluations is not None and len(results) >= budget.max_evaluations:
            return f"{len(results)} evaluations reached budget.max_evaluations={budget.max_evaluations}"
        name, sign = self.config.policy_objective.name, self.engine.sign
        if budget.target is not None:
            hits = [r for r in results if name in r.values and sign * (r.values[name] - budget.target) >= 0]
            if hits:
                return f"target {name}={budget.target} reached by {hits[0].candidate_id} ({hits[0].values[name]})"
        campaign = self.store.campaign_doc()
        if budget.max_hours is not None and campaign is not None:
            hours = (datetime.now(UTC) - datetime.fromisoformat(campaign.created_at)).total_seconds() / 3600
            if hours >= budget.max_hours:
                return f"{hours:.2f} h since the campaign was created reached budget.max_hours={budget.max_hours}"
        return None

    def next_round(self) -> int | None:
        """The round to work on: an unfinished stored round, else the next one, else ``None`` when finished."""
        rounds = self.store.rounds()
        if rounds and rounds[-1].state != "complete":
            return rounds[-1].round
        if self.stop_reason() is not None:
            return None
        return rounds[-1].round + 1 if rounds else 0

    def run(
        self, on_round: Callable[[RoundSummary], None] | None = None, max_rounds: int | None = None
    ) -> list[RoundSummary]:
        """Run (or resume) rounds until a stop criterion is met or a stop is requested.

        Args:
            on_round: Called with each round's summary as soon as the round is complete.
            max_rounds: Stop after this many rounds in this call (the campaign stays resumable).

        Raises:
            CampaignError: For a campaign whose results are told by hand (``oracle: {kind: manual}``).
        """
        if self.config.manual:
            raise CampaignError(
                f"campaign {self.config.name!r} has a manual oracle: nothing runs by itself; "
                f"use sbin ask {self.directory} and sbin tell {self.directory} RESULTS.csv"
            )
        summaries: list[RoundSummary] = []
        while not self._stop.is_set() and (max_rounds is None or len(summaries) < max_rounds):
            index = self.next_round()
            if index is None:
                break
            summary = self.run_round(index)
            if summary is None:
                break
            summaries.append(summary)
            if on_round is not None:
                on_round(summary)
        self._record_stop_reason()
        if self.next_round() is None:
            self.close()
        return summaries

    def close(self) -> None:
        """Release what the oracles hold (worker pools, connections)."""
        for stage in self.stages:
            close = getattr(stage.oracle, "close", None)
            if close is not None:
                close()

    def _record_stop_reason(self) -> None:
        campaign = self.store.campaign_doc()
        reason = self.stop_reason()
        if campaign is not None and campaign.stop_reason != reason:
            self.store.put_campaign(campaign.model_copy(update={"stop_reason": reason}))
            if reason:
                logger.info("campaign finished: %s", reason)

    def _advance(self, doc: RoundDoc) -> RoundDoc | None:
        """Carry a round to ``complete``; ``None`` if a stop was requested first."""
        steps = {"proposed": self.runner.launch, "launched": self.runner.ingest, "ingested": self._train}
        while doc.state != "complete":
            if self._stop.is_set():
                logger.info("stop requested: round %d left in state %s", doc.round, doc.state)
                return None
            doc = steps.get(doc.state, self._finish)(doc)
        return doc

    def run_round(self, index: int) -> RoundSummary | None:
        """Carry one round from wherever it stands to ``complete``; ``None`` if a stop was requested first."""
        start = time.perf_counter()
        existing = [doc for doc in self.store.rounds() if doc.round == index]
        doc = self._advance(existing[0] if existing else self._propose(index))
        return None if doc is None else self.summarise(doc, time.perf_counter() - start)

    def summarise(self, doc: RoundDoc, seconds: float = 0.0) -> RoundSummary:
        """The summary line data of a stored round."""
        return round_summary(doc, self.config.policy_objective.name, seconds)

    # Step 1: propose --------------------------------------------------------------------------------------------
    def _propose(self, index: int, n: int | None = None) -> RoundDoc:
        """Store round ``index``'s picks: ``n``, else the policy's batch (``budget.initial`` when random)."""
        start = time.perf_counter()
        results = self.store.results()
        surrogate = self._proposal_model(index, results)
        if surrogate is None and n is None:
            n = self.config.budget.initial_count
        doc = RoundDoc(
            campaign=self.config.name,
            round=index,
            state="proposed",
            seed=self.config.seed,
            selected=self.engine.propose(surrogate, self._available(), index, results, n),
            timings={"select": time.perf_counter() - start},
        )
        self.store.put_round(doc)
        logger.info("round %d: picked %s", index, ", ".join(entry.candidate_id for entry in doc.selected))
        return doc

    def _proposal_model(self, index: int, results: list[ResultDoc]) -> BNNSurrogate | None:
        """The model round ``index`` picks with: the previous round's, or one fitted now on told measurements.

        Measurements told since the previous round was trained (their round is ``index`` or later) are used at once:
        a model is fitted on every result (seeded by the round, so a restart fits the same one). Round 0 without
        any measurement has no model (``None``: random picks).
        """
        told_since = any(result.round >= index for result in results)
        if index > 0 and not told_since:
            return self._load_model(index - 1)
        rows, _ = self.engine.inputs.training_data(results)
        if rows.size == 0:
            return self._load_model(index - 1) if index > 0 else None
        seed = derive_seed(self.config.seed, index, TELL_TRAIN)
        return self.engine.fit(results, seed, what=f"round {index}").surrogate

    def _available(self) -> np.ndarray:
        """``P`` mask of the pool rows no job has taken yet."""
        available = np.ones(len(self.pool), dtype=bool)
        taken = self.pool.rows_of({job.candidate_id for job in self.store.jobs()})
        available[np.fromiter(taken.values(), dtype=np.int64, count=len(taken))] = False
        return available

    def _load_model(self, index: int) -> BNNSurrogate:
        doc = next((doc for doc in self.store.rounds() if doc.round == index), None)
        if doc is None or doc.checkpoint is None:
            raise CampaignError(f"round {index} has no model checkpoint; the campaign store is incomplete")
        return load_model(self.directory / doc.checkpoint)

    def _warm_start(self, index: int, surrogate: BNNSurrogate) -> BNNSurrogate | None:
        """Round ``index - 1``'s model for round ``index``'s fit to continue from (``model.warm_start_steps``), if any.

        None (train from scratch) when warm starts are off, the previous round kept no checkpoint (the first round),
        the last ``model.warm_start_rounds`` rounds all continued, or the previous model cannot be continued
        (structural descriptors appeared since, or the model section changed).
        """
        model = self.config.model
        if not model.warm_start_steps or self.config.surrogate != "bnn":
            return None
        earlier = [doc for doc in self.store.rounds() if doc.round < index]
        doc = earlier[-1] if earlier and earlier[-1].round == index - 1 and earlier[-1].checkpoint else None
        recent = earlier[-model.warm_start_rounds :]
        if doc is None or (
            len(recent) == model.warm_start_rounds and all((d.training or {}).get("warm_started") for d in recent)
        ):
            return None
        previous = load_model(self.directory / doc.checkpoint)
        if not surrogate.continues(previous):
            logger.info("round %d: trains from scratch, round %d's model has other inputs or layers", index, index - 1)
            return None
        return previous

    # Steps 4 and 5: retrain, intervals --------------------------------------------------------------------------
    def _train(self, doc: RoundDoc) -> RoundDoc:
        """Retrain on every result so far and save the checkpoint the next round will pick with."""
        start = time.perf_counter()
        results = self.store.results()
        fit = self.engine.fit(
            results,
            derive_seed(self.config.seed, doc.round, TRAIN),
            warm_start=lambda surrogate: self._warm_start(doc.round, surrogate),
            what=f"round {doc.round}",
        )
        checkpoint = Path("checkpoints") / f"round_{doc.round:04d}"
        save_checkpoint_once(
            self.directory / checkpoint, lambda path: save_model(fit.surrogate, path, fit.feature_names)
        )
        return self.store.update_round(
            doc,
            state="trained",
            n_evaluations=len(results),
            training=asdict(fit.report),
            checkpoint=str(checkpoint),
            timings={**doc.timings, "train": time.perf_counter() - start},
        )

    def _finish(self, doc: RoundDoc) -> RoundDoc:
        """Store Monte Carlo intervals for the picks, the best measured and the best predicted candidates."""
        start = time.perf_counter()
        surrogate = self._load_model(doc.round)
        results = self.store.results()
        observed = merged_values(results)
        name, sign = self.config.policy_objective.name, self.engine.sign
        measured = [(sign * values[name], candidate) for candidate, values in observed.items() if name in values]
        ranked = [candidate for _, candidate in sorted(measured, key=lambda item: (-item[0], item[1]))]
        row_of = self.pool.rows_of(observed)
        best_rows = np.array([row_of[c] for c in ranked[: self.config.intervals.top_k]], dtype=np.int64)
        selected_rows = np.array(
            [row_of[entry.candidate_id] for entry in doc.selected if entry.candidate_id in observed], dtype=np.int64
        )
        intervals = {
            "selected": self.engine.candidate_intervals(surrogate, selected_rows, doc.round, observed, results),
            "best_observed": self.engine.candidate_intervals(surrogate, best_rows, doc.round, observed, results),
        }
        top_rows = self.engine.top_predicted_rows(surrogate, observed, doc.round, results)
        intervals["top_predicted"] = self.engine.candidate_intervals(surrogate, top_rows, doc.round, observed, results)
        best = next((entry for entry in intervals["best_observed"] if entry.objective == name), None)
        return self.store.update_round(
            doc,
            state="complete",
            n_failed=sum(job.state == "failed" for job in self.store.jobs()),
            best_observed=best,
            intervals=intervals,
            timings={**doc.timings, "intervals": time.perf_counter() - start},
        )

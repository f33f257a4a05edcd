"""The campaign loop: one round at a time, every step persisted, resumable after any interruption.

A round goes through three stored states:

1. ``proposed``: candidates picked (round 0 at random, later rounds by the policy on the previous round's model) and
   the round document written, with the prediction made for each pick before its result exists.
2. ``launched``: one job document per pick written (the intent), then the jobs submitted to the oracle.
3. ``complete``: outcomes collected (failures retried up to ``oracle.max_attempts``, then recorded as failed and never
   ingested), the model retrained on every result, its checkpoint saved, and Monte Carlo intervals stored for the
   picks, the best measured and the best predicted candidates.

A restarted campaign continues the last round from its stored state with the stored picks, so it neither re-picks
nor re-labels anything. All randomness derives from the campaign seed and the round number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from sbin_loop import __version__
from sbin_loop.candidates import CandidatePool
from sbin_loop.config import CampaignConfig, ConfigError
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.checkpoint import load_surrogate, save_surrogate
from sbin_loop.model.intervals import summarise_draws
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.oracles import DatasetReplayOracle, JobRequest, Oracle, checked_outcome
from sbin_loop.policies import PoolScores, RandomPolicy, Selection, build_policy
from sbin_loop.space import FormulaTable, read_formula_table, sample_rows
from sbin_loop.status import write_marker
from sbin_loop.stores import CampaignDoc, CampaignStore, CandidateInterval, JobDoc, ResultDoc, RoundDoc, SelectionEntry

logger = logging.getLogger(__name__)

_SELECT, _DRAWS, _TRAIN, _INTERVALS, _POOL = range(5)
"""Purposes mixed into derived seeds so that no two random streams coincide."""


def derive_seed(seed: int, *parts: int) -> int:
    """A 31-bit seed derived from the campaign seed and integers naming the purpose (round, step...)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0] >> 1)


class CampaignError(RuntimeError):
    """A campaign that cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class RoundSummary:
    """The per-round line a user reads: progress, best so far and how certain the model is."""

    round: int
    n_evaluations: int
    n_failed: int
    best_candidate: str | None
    best_value: float | None
    mean_interval_width: float | None
    seconds: float

    def line(self, objective: str, unit: str) -> str:
        """Human-readable one-liner."""
        best = "n/a" if self.best_value is None else f"{self.best_value:.2f} {unit} ({self.best_candidate})".strip()
        width = "n/a" if self.mean_interval_width is None else f"{self.mean_interval_width:.2f} {unit}".strip()
        return (
            f"round {self.round:3d} | evaluations {self.n_evaluations:5d} | failed {self.n_failed} | "
            f"best {objective} {best} | mean 95% interval width {width} | {self.seconds:.1f} s"
        )


def _config_differences(old: object, new: object, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        differences = []
        for key in sorted(set(old) | set(new)):
            differences += _config_differences(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return differences
    return [] if old == new else [path]


class Campaign:
    """A campaign bound to its directory and store.

    Args:
        config: The validated campaign config.
        directory: Campaign directory (created if needed); holds the embedded store, pool cache, checkpoints, log.
        base_dir: Directory that relative paths in the config are resolved against.
        oracle: Oracle to use instead of the one the config describes (tests, custom backends).

    Raises:
        ConfigError: If the directory holds a campaign started with a different config (other than its budget).
    """

    def __init__(
        self, config: CampaignConfig, directory: Path, base_dir: Path | None = None, oracle: Oracle | None = None
    ) -> None:
        self.config = config
        self.directory = Path(directory)
        self.base_dir = base_dir or Path.cwd()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.store = CampaignStore.open(config.name, config.store, self.directory)
        self._check_campaign_doc()
        write_marker(self.directory, config.name, config.store)
        self.pool = self._load_or_build_pool()
        self.oracle = oracle or self._build_oracle()
        self.policy = build_policy(config.policy)
        self.objective_names = tuple(objective.name for objective in config.objectives)
        self._objective_index = self.objective_names.index(config.policy_objective.name)
        self._sign = 1.0 if config.policy_objective.goal == "maximize" else -1.0
        self._submitted_here: set[str] = set()
        self._row_of = {candidate: row for row, candidate in enumerate(self.pool.ids)}

    # Set-up -----------------------------------------------------------------------------------------------------
    def _check_campaign_doc(self) -> None:
        stored = self.store.campaign_doc()
        current = self.config.model_dump(mode="json")
        if stored is None:
            self.store.put_campaign(CampaignDoc(campaign=self.config.name, config=current, sbin_version=__version__))
            return
        old = {key: value for key, value in stored.config.items() if key != "budget"}
        new = {key: value for key, value in current.items() if key != "budget"}
        differences = _config_differences(old, new)
        if differences:
            raise ConfigError(
                f"{self.directory} holds campaign {self.config.name!r} started with a different config; "
                f"changed fields: {', '.join(differences)}. Only budget.* may change on resume; "
                "use a new --dir for a new campaign."
            )
        if stored.config != current:
            self.store.put_campaign(stored.model_copy(update={"config": current}))

    def _load_or_build_pool(self) -> CandidatePool:
        pool_dir = self.directory / "pool"
        if (pool_dir / "pool.json").is_file():
            return CandidatePool.load(pool_dir)
        table = self._oracle_table if self._oracle_reads_pool_source else self._read_pool_source()
        logger.info("%s", table.summary())
        frame = sample_rows(table.frame, self.config.space.sample, derive_seed(self.config.seed, _POOL))
        if len(frame) < self.config.budget.initial:
            raise ConfigError(
                f"space: the pool has {len(frame)} usable compositions, fewer than budget.initial="
                f"{self.config.budget.initial}"
            )
        pool = CandidatePool.from_frame(frame)
        pool.save(pool_dir)
        logger.info("pool of %d candidates featurised with %d descriptors", len(pool), pool.features.shape[1])
        return pool

    @property
    def _oracle_reads_pool_source(self) -> bool:
        oracle, space = self.config.oracle, self.config.space
        return oracle.source in (None, space.source) and oracle.formula_column in (None, space.formula_column)

    def _read_pool_source(self) -> FormulaTable:
        space = self.config.space
        return read_formula_table(space.source, space.formula_column, base_dir=self.base_dir)

    @cached_property
    def _objective_columns(self) -> dict[str, str]:
        return {objective.name: objective.data_column for objective in self.config.objectives}

    @cached_property
    def _oracle_table(self) -> FormulaTable:
        """The replayed table, read once per process (also serves as the pool source when they are the same)."""
        oracle = self.config.oracle
        return read_formula_table(
            oracle.source or self.config.space.source,
            oracle.formula_column or self.config.space.formula_column,
            value_columns=tuple(self._objective_columns.values()),
            base_dir=self.base_dir,
        )

    def _build_oracle(self) -> Oracle:
        return DatasetReplayOracle(self._oracle_table, self._objective_columns)

    # Round bookkeeping ------------------------------------------------------------------------------------------
    @property
    def last_round(self) -> int:
        """Index of the last round (``budget.rounds``); round 0 is the random initial design."""
        return self.config.budget.rounds

    def next_round(self) -> int | None:
        """The round to work on: an unfinished stored round, else the next one, else ``None`` when finished."""
        rounds = self.store.rounds()
        if rounds and rounds[-1].state != "complete":
            return rounds[-1].round
        index = rounds[-1].round + 1 if rounds else 0
        return index if index <= self.last_round else None

    def run(
        self, on_round: Callable[[RoundSummary], None] | None = None, max_rounds: int | None = None
    ) -> list[RoundSummary]:
        """Run (or resume) rounds until the budget is spent.

        Args:
            on_round: Called with each round's summary as soon as the round is complete.
            max_rounds: Stop after this many rounds in this call (the campaign stays resumable).
        """
        summaries: list[RoundSummary] = []
        while (index := self.next_round()) is not None and (max_rounds is None or len(summaries) < max_rounds):
            summaries.append(self.run_round(index))
            if on_round is not None:
                on_round(summaries[-1])
        return summaries

    def run_round(self, index: int) -> RoundSummary:
        """Carry one round from wherever it stands to ``complete``."""
        start = time.perf_counter()
        existing = [doc for doc in self.store.rounds() if doc.round == index]
        doc = existing[0] if existing else self._propose(index)
        if doc.state == "proposed":
            doc = self._launch(doc)
        if doc.state == "launched":
            doc = self._complete(doc)
        return self.summarise(doc, time.perf_counter() - start)

    def summarise(self, doc: RoundDoc, seconds: float = 0.0) -> RoundSummary:
        """The summary line data of a stored round."""
        objective = self.config.policy_objective.name
        widths = [entry.interval.width for entry in doc.intervals.get("selected", []) if entry.objective == objective]
        best = doc.best_observed
        return RoundSummary(
            round=doc.round,
            n_evaluations=doc.n_evaluations,
            n_failed=doc.n_failed,
            best_candidate=best.candidate_id if best else None,
            best_value=best.observed if best else None,
            mean_interval_width=float(np.mean(widths)) if widths else None,
            seconds=seconds or sum(doc.timings.values()),
        )

    # Step 1: propose --------------------------------------------------------------------------------------------
    def _propose(self, index: int) -> RoundDoc:
        start = time.perf_counter()
        taken = {job.candidate_id for job in self.store.jobs()}
        available = np.array([row for row, candidate in enumerate(self.pool.ids) if candidate not in taken])
        if available.size == 0:
            raise CampaignError(f"round {index}: every candidate of the pool has been evaluated; nothing left to pick")
        rng = np.random.default_rng(derive_seed(self.config.seed, index, _SELECT))
        predictions = None
        if index == 0:
            selection = RandomPolicy(self.config.budget.initial).select(None, available.size, rng)
        else:
            surrogate = self._load_model(index - 1)
            scores = self._pool_scores(surrogate, available, index) if self.policy.needs_model else None
            selection = self.policy.select(scores, available.size, rng)
            rows = available[selection.indices]
            predictions = self._intervals(surrogate, rows, index)[self._objective_index]
        doc = RoundDoc(
            campaign=self.config.name,
            round=index,
            state="proposed",
            seed=self.config.seed,
            selected=self._selection_entries(selection, available, predictions),
            timings={"select": time.perf_counter() - start},
        )
        self.store.put_round(doc)
        logger.info("round %d: picked %s", index, ", ".join(entry.candidate_id for entry in doc.selected))
        return doc

    def _selection_entries(
        self, selection: Selection, available: np.ndarray, predictions: list | None
    ) -> list[SelectionEntry]:
        entries = []
        for position, (pick, value) in enumerate(zip(selection.indices, selection.acquisition_values, strict=True)):
            row = int(available[pick])
            entries.append(
                SelectionEntry(
                    candidate_id=self.pool.ids[row],
                    formula=self.pool.formulas[row],
                    policy=selection.policy,
                    acquisition=selection.acquisition,
                    acquisition_value=value,
                    prediction=predictions[position] if predictions is not None else None,
                )
            )
        return entries

    def _pool_scores(self, surrogate: BNNSurrogate, available: np.ndarray, index: int) -> PoolScores:
        model = BNNModel(surrogate, self.config.policy.mc_samples, derive_seed(self.config.seed, index, _DRAWS))
        features = torch.as_tensor(self.pool.features[available])  # N x d
        samples = model.posterior(features).values[..., self._objective_index] * self._sign  # S x N
        observed = [
            result.values[self.config.policy_objective.name] * self._sign
            for result in self.store.results()
            if self.config.policy_objective.name in result.values
        ]
        best = max(observed) if observed else float(samples.mean(dim=0).min())
        return PoolScores(samples=samples, best_observed=best)

    def _load_model(self, index: int) -> BNNSurrogate:
        doc = next((doc for doc in self.store.rounds() if doc.round == index), None)
        if doc is None or doc.checkpoint is None:
            raise CampaignError(f"round {index} has no model checkpoint; the campaign store is incomplete")
        surrogate, _ = load_surrogate(self.directory / doc.checkpoint)
        return surrogate

    # Step 2: launch ---------------------------------------------------------------------------------------------
    def _job_id(self, index: int, candidate: str) -> str:
        return f"{self.config.name}:r{index:04d}:{candidate}"

    def _launch(self, doc: RoundDoc) -> RoundDoc:
        existing = {job.job_id for job in self.store.jobs(doc.round)}
        for entry in doc.selected:
            job_id = self._job_id(doc.round, entry.candidate_id)
            if job_id not in existing:
                self.store.put_job(
                    JobDoc(
                        campaign=self.config.name,
                        job_id=job_id,
                        round=doc.round,
                        candidate_id=entry.candidate_id,
                        formula=entry.formula,
                        oracle=self.oracle.name,
                        state="submitted",
                    )
                )
        self._submit([job for job in self.store.jobs(doc.round) if job.state == "submitted"])
        return self.store.update_round(doc, state="launched")

    def _submit(self, jobs: list[JobDoc]) -> None:
        requests = [
            JobRequest(
                job_id=job.job_id,
                candidate_id=job.candidate_id,
                formula=job.formula,
                round=job.round,
                attempt=job.attempts,
            )
            for job in jobs
        ]
        self.oracle.submit(requests)
        self._submitted_here.update(job.job_id for job in jobs)

    # Step 3: collect, retrain, intervals ------------------------------------------------------------------------
    def _collect(self, index: int) -> None:
        pending = {job.job_id: job for job in self.store.jobs(index) if job.state == "submitted"}
        self._submit([job for job_id, job in pending.items() if job_id not in self._submitted_here])
        while pending:
            outcomes = self.oracle.poll(list(pending))
            if not outcomes:
                time.sleep(self.config.oracle.poll_seconds)
                continue
            for job_id, raw in outcomes.items():
                job = pending.pop(job_id)
                outcome = checked_outcome(raw, self.objective_names)
                if outcome.status == "completed":
                    self.store.put_result(
                        ResultDoc(
                            campaign=self.config.name,
                            job_id=job_id,
                            round=index,
                            candidate_id=job.candidate_id,
                            formula=job.formula,
                            values=outcome.values,
                            oracle=self.oracle.name,
                            provenance={**outcome.provenance, "wall_seconds": outcome.wall_seconds},
                        )
                    )
                    self.store.put_job(job.model_copy(update={"state": "completed"}))
                    continue
                errors = [*job.errors, outcome.error or "unknown failure"]
                logger.warning("job %s failed (attempt %d): %s", job_id, job.attempts, errors[-1])
                if job.attempts < self.config.oracle.max_attempts:
                    retry = job.model_copy(update={"attempts": job.attempts + 1, "errors": errors})
                    self.store.put_job(retry)
                    self._submit([retry])
                    pending[job_id] = retry
                else:
                    self.store.put_job(job.model_copy(update={"state": "failed", "errors": errors}))

    def _training_data(self) -> tuple[np.ndarray, np.ndarray, list[ResultDoc]]:
        results = self.store.results()
        rows = np.array([self._row_of[result.candidate_id] for result in results], dtype=np.int64)
        targets = np.array(
            [[result.values.get(name, np.nan) for name in self.objective_names] for result in results],
            dtype=np.float64,
        ).reshape(len(results), len(self.objective_names))
        return rows, targets, results

    def _intervals(self, surrogate: BNNSurrogate, rows: np.ndarray, index: int) -> list[list]:
        """Intervals per objective (outer list) for pool rows (inner list)."""
        draws = surrogate.predictive_draws(
            self.pool.features[rows], self.config.intervals.n_draws, derive_seed(self.config.seed, index, _INTERVALS)
        ).numpy()  # S x n x m
        return [summarise_draws(draws[..., j], self.config.intervals.level) for j in range(draws.shape[-1])]

    def _candidate_intervals(
        self, surrogate: BNNSurrogate, rows: np.ndarray, index: int, observed: dict[str, dict[str, float]]
    ) -> list[CandidateInterval]:
        if rows.size == 0:
            return []
        per_objective = self._intervals(surrogate, rows, index)
        return [
            CandidateInterval(
                candidate_id=self.pool.ids[row],
                formula=self.pool.formulas[row],
                objective=name,
                interval=per_objective[j][position],
                observed=observed.get(self.pool.ids[row], {}).get(name),
            )
            for position, row in enumerate(rows)
            for j, name in enumerate(self.objective_names)
        ]

    def _complete(self, doc: RoundDoc) -> RoundDoc:
        timings = dict(doc.timings)
        start = time.perf_counter()
        self._collect(doc.round)
        timings["oracle"] = time.perf_counter() - start

        start = time.perf_counter()
        rows, targets, results = self._training_data()
        if not results:
            raise CampaignError(f"round {doc.round}: no successful evaluation so far; check the oracle's failures")
        surrogate = BNNSurrogate(
            self.pool.features.shape[1],
            self.objective_names,
            tuple(objective.transform for objective in self.config.objectives),
            self.config.model,
        )
        report = surrogate.fit(self.pool.features[rows], targets, derive_seed(self.config.seed, doc.round, _TRAIN))
        checkpoint = Path("checkpoints") / f"round_{doc.round:04d}"
        save_surrogate(surrogate, self.directory / checkpoint, self.pool.feature_names)
        timings["train"] = time.perf_counter() - start

        start = time.perf_counter()
        observed = {result.candidate_id: result.values for result in results}
        name = self.config.policy_objective.name
        measured = [(self._sign * values[name], candidate) for candidate, values in observed.items() if name in values]
        ranked = [candidate for _, candidate in sorted(measured, key=lambda item: (-item[0], item[1]))]
        top_k = self.config.intervals.top_k
        best_rows = np.array([self._row_of[candidate] for candidate in ranked[:top_k]], dtype=np.int64)
        selected_rows = np.array(
            [self._row_of[entry.candidate_id] for entry in doc.selected if entry.candidate_id in observed],
            dtype=np.int64,
        )
        unmeasured = np.array([row for row, candidate in enumerate(self.pool.ids) if candidate not in observed])
        top_rows = np.array([], dtype=np.int64)
        if unmeasured.size:
            means = (
                surrogate.function_draws(
                    self.pool.features[unmeasured],
                    self.config.policy.mc_samples,
                    derive_seed(self.config.seed, doc.round, _DRAWS),
                )[..., self._objective_index].mean(dim=0)
                * self._sign
            )
            top_rows = unmeasured[torch.argsort(means, descending=True)[:top_k].numpy()]
        intervals = {
            "selected": self._candidate_intervals(surrogate, selected_rows, doc.round, observed),
            "best_observed": self._candidate_intervals(surrogate, best_rows, doc.round, observed),
            "top_predicted": self._candidate_intervals(surrogate, top_rows, doc.round, observed),
        }
        timings["intervals"] = time.perf_counter() - start
        best = next((entry for entry in intervals["best_observed"] if entry.objective == name), None)
        jobs = self.store.jobs()
        return self.store.update_round(
            doc,
            state="complete",
            n_evaluations=len(results),
            n_failed=sum(job.state == "failed" for job in jobs),
            best_observed=best,
            intervals=intervals,
            training={
                "n_train": report.n_train,
                "steps": report.steps,
                "final_nll": report.final_nll,
                "final_kl_per_datum": report.final_kl_per_datum,
                "seconds": report.seconds,
            },
            checkpoint=str(checkpoint),
            timings=timings,
        )

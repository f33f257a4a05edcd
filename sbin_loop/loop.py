"""The campaign loop: one round at a time, every step persisted, resumable after any interruption.

A round goes through these stored states:

1. ``proposed``: candidates picked (round 0 at random, later rounds by the policy on the previous round's model) and
   the round document written, with the prediction made for each pick before its result exists.
2. ``launched``: one job document per pick written (the intent), then the jobs submitted to the first oracle.
   With several oracles (``config.oracles``) the round runs them as stages, in order: once every job of a stage is
   completed or failed, the next stage's jobs are written and submitted and the round is stored ``launched`` again
   with that ``stage``. A later stage evaluates the picks its previous stage completed, or the ``select.top_k`` best
   of them by ``select.rank_by`` (see ``Campaign._promoted``).
3. ``ingested``: every job of the last stage completed or failed (failures retried up to the stage's
   ``max_attempts``, then recorded as failed and never ingested).
4. ``trained`` and ``complete``: the model retrained on every result (where stages measured the same value of a
   candidate, the latest stage's), its checkpoint saved, and Monte Carlo intervals stored for the picks, the best
   measured and the best predicted candidates.

A restarted campaign continues the last round from its stored state with the stored picks, so it neither re-picks
nor re-labels anything. All randomness derives from the campaign seed and the round number.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError

from sbin_loop import __version__
from sbin_loop.candidates import CandidatePool, pool_feature_names, reuse_pool, space_fingerprint
from sbin_loop.config import (
    CampaignConfig,
    ConfigError,
    DatasetOracleConfig,
    PoolSpaceConfig,
    explicit_fields,
    stored_model_config,
)
from sbin_loop.features.structure_inputs import StructureInputs, relaxed_structure
from sbin_loop.integrity import (
    check_campaign,
    check_directory,
    check_pool_candidates,
    save_checkpoint_once,
)
from sbin_loop.measurements import ingestible_outcome, usable_values
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.checkpoint import load_surrogate, save_surrogate
from sbin_loop.model.intervals import candidate_intervals
from sbin_loop.model.surrogate import BNNSurrogate, ModelOutputError
from sbin_loop.oracles import JobRequest, OracleOutcome, OracleStage, build_oracles, dataset_table
from sbin_loop.policies import PoolScores, RandomPolicy, Selection, build_policy, draw_pool_scores
from sbin_loop.policies.screening import RunningTop, chunk_size, screen
from sbin_loop.space import FormulaTable, read_formula_table, sample_rows
from sbin_loop.space.pool_perovskites import pool_candidates
from sbin_loop.space.spaces import CandidateSpace, open_space
from sbin_loop.status import read_marker, write_marker
from sbin_loop.stores import CampaignDoc, CampaignStore, CandidateInterval, JobDoc, ResultDoc, RoundDoc, SelectionEntry
from sbin_loop.stores.documents import elapsed_seconds, merged_values, utc_now

logger = logging.getLogger(__name__)

_SELECT, _DRAWS, _TRAIN, _INTERVALS, _POOL, _SCREEN = range(6)
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


_RESUMABLE_SECTIONS = ("budget", "store")
"""Config sections that may change when a campaign resumes: its budget, and how its store is reached."""


def _config_differences(old: object, new: object, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        differences = []
        for key in sorted(set(old) | set(new)):
            differences += _config_differences(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return differences
    return [] if old == new else [path]


def _within(path: str, settings: set[str]) -> bool:
    """Whether the dotted ``path`` is one of ``settings`` or lies inside one."""
    return any(path == setting or path.startswith(f"{setting}.") for setting in settings)


def _value_at(config: dict, path: str) -> object:
    """The value at the dotted ``path`` of a nested dict (None where a key is missing)."""
    for key in path.split("."):
        config = config.get(key) if isinstance(config, dict) else None
    return config


class Campaign:
    """A campaign bound to its directory and store.

    Args:
        config: The validated campaign config.
        directory: Campaign directory (created if needed); holds the embedded store, pool cache, checkpoints, log.
        base_dir: Directory that relative paths in the config are resolved against.

    Attributes:
        stages: The oracle stages of every round, in ``config.oracles`` order (the first evaluates every pick).

    Raises:
        ConfigError: If the directory holds a campaign started with a different config (other than its budget).
    """

    def __init__(self, config: CampaignConfig, directory: Path, base_dir: Path | None = None) -> None:
        self.config = config
        self.directory = Path(directory)
        self.base_dir = base_dir or Path.cwd()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._check_directory_belongs_to(config.name)
        self.store = CampaignStore.open(config.name, config.store, self.directory)
        check_directory(self.directory, read_marker(self.directory), self.store, config.name, config.store.uri is None)
        stored = self.store.campaign_doc()
        if stored is not None:
            check_campaign(self.store, self.directory, stored.config)
            self._check_config_unchanged(stored)
        # Pool and oracles are built (and so validated) before a new campaign writes anything to its store.
        self.pool = self._load_or_build_pool()
        check_pool_candidates(self.directory, {job.candidate_id for job in self.store.jobs()}, self.pool.rows_of)
        self.stages = self._build_stages()
        if stored is None:
            current = config.model_dump(mode="json")
            self.store.put_campaign(CampaignDoc(campaign=config.name, config=current, sbin_version=__version__))
        write_marker(self.directory, config.name, config.store)
        self.policy = build_policy(config.policy)
        self.objective_names = tuple(objective.name for objective in config.objectives)
        self._objective_index = self.objective_names.index(config.policy_objective.name)
        self._sign = 1.0 if config.policy_objective.goal == "maximize" else -1.0
        self._signs = tuple(1.0 if objective.goal == "maximize" else -1.0 for objective in config.objectives)
        self._stop = threading.Event()
        self._structure_inputs = StructureInputs(config.features.structure)
        self._structure_cache: dict[str, np.ndarray | None] = {}

    # Set-up -----------------------------------------------------------------------------------------------------
    def _check_directory_belongs_to(self, name: str) -> None:
        marker = read_marker(self.directory)
        if marker is not None and marker["campaign"] != name:
            raise ConfigError(
                f"name: {self.directory} holds campaign {marker['campaign']!r}, not {name!r}; use another --dir"
            )

    def _check_config_unchanged(self, stored: CampaignDoc) -> None:
        """Refuse to resume under a config that differs from the campaign's own, but for its budget.

        A setting the config file leaves out keeps the value the campaign started with, not today's default: a
        default that sbin changed since (e.g. ``model.likelihood``) does not change the model of a running campaign.
        Settings added to sbin since the campaign started take the value that meant its behaviour then. The
        ``store`` section is how to reach the documents, not what the campaign is (a new password or host is no
        change of campaign); the campaign document keeps it without credentials.
        """
        current = self.config.model_dump(mode="json")
        stored_dump = dict(stored.config)
        if isinstance(stored_dump.get("model"), dict):
            stored_dump["model"] = stored_model_config(stored_dump["model"])
        explicit: set[str] | None = explicit_fields(self.config)
        try:
            stored_config = CampaignConfig.model_validate(stored_dump).model_dump(mode="json")
        except ValidationError:
            stored_config, explicit = stored_dump, None  # unreadable today: every difference counts
        old = {key: value for key, value in stored_config.items() if key not in _RESUMABLE_SECTIONS}
        new = {key: value for key, value in current.items() if key not in _RESUMABLE_SECTIONS}
        differences = _config_differences(old, new)
        changed = [path for path in differences if explicit is None or _within(path, explicit)]
        if changed:
            raise ConfigError(
                f"{self.directory} holds campaign {self.config.name!r} started with a different config; "
                f"changed fields: {', '.join(changed)}. Only budget.* may change on resume; "
                "use a new --dir for a new campaign."
            )
        if differences:
            logger.warning(
                "kept the campaign's own %s: not set in the config file, and sbin's default has changed since the "
                "campaign started",
                ", ".join(f"{path}={_value_at(stored_config, path)!r}" for path in differences),
            )
            kept = CampaignConfig.model_validate({**stored_config, "budget": current["budget"]})
            self.config = kept.model_copy(update={"store": self.config.store})
            current = self.config.model_dump(mode="json")
        if stored.config != current:
            self.store.put_campaign(stored.model_copy(update={"config": current}))

    @property
    def _pool_fingerprint(self) -> str:
        columns = [objective.data_column for objective in self.config.objectives]
        return space_fingerprint(self.config.space.model_dump(mode="json"), self.config.seed, columns)

    def _load_or_build_pool(self) -> CandidatePool:
        """The cached pool if it was built from this config's space, else a pool built (and cached) now."""
        pool_dir = self.directory / "pool"
        if (pool_dir / "pool.json").is_file():
            has_rounds = bool(self.store.rounds() or self.store.jobs())
            if reuse_pool(self.directory, CandidatePool.fingerprint(pool_dir), self._pool_fingerprint, has_rounds):
                return CandidatePool.load(pool_dir, pool_feature_names(self._space.extra_names))
            shutil.rmtree(pool_dir)
        if isinstance(self.config.space, PoolSpaceConfig):
            table = self._oracle_table if self._oracle_reads_pool_source else self._read_pool_source()
            logger.info("%s", table.summary())
            candidates = pool_candidates(table, self.config.space)
            frame = sample_rows(candidates, self.config.space.sample, derive_seed(self.config.seed, _POOL))
            self._require_initial(len(frame), f"{len(table.rejected)} rows rejected")
            pool = CandidatePool.from_frame(frame)
            pool.save(pool_dir, self._pool_fingerprint)
        else:
            rejected: Counter = Counter()
            sizes = CandidatePool.write_chunks(self._space.chunks(rejected=rejected), pool_dir)
            self._require_initial(sum(sizes), f"rejected by rule: {dict(rejected)}")
            feature_names = pool_feature_names(self._space.extra_names)
            CandidatePool.write_meta(pool_dir, sizes, feature_names, self._pool_fingerprint)
            pool = CandidatePool.load(pool_dir, feature_names)
            logger.info("perovskite space: %d candidates kept, rejected %s", len(pool), dict(rejected))
        logger.info("pool of %d candidates with %d descriptors", len(pool), len(pool.feature_names))
        return pool

    def _require_initial(self, n_candidates: int, why: str) -> None:
        if n_candidates < self.config.budget.initial:
            raise ConfigError(
                f"space: {n_candidates} usable candidates ({why}), fewer than budget.initial="
                f"{self.config.budget.initial}"
            )

    @cached_property
    def _space(self) -> CandidateSpace:
        return open_space(self.config.space, self.base_dir)

    @property
    def _oracle_reads_pool_source(self) -> bool:
        oracle, space = self.config.oracle, self.config.space
        return (
            isinstance(space, PoolSpaceConfig)
            and isinstance(oracle, DatasetOracleConfig)
            and oracle.where is None
            and oracle.source in (None, space.source)
            and oracle.formula_column in (None, space.formula_column)
        )

    def _read_pool_source(self) -> FormulaTable:
        space = self.config.space
        return read_formula_table(space.source, space.formula_column, base_dir=self.base_dir)

    @cached_property
    def _oracle_table(self) -> FormulaTable:
        """The replayed table, read once per process (also serves as the pool source when they are the same)."""
        return dataset_table(self.config.oracle, self.config, self.base_dir)

    def _build_stages(self) -> list[OracleStage]:
        table = self._oracle_table if isinstance(self.config.oracle, DatasetOracleConfig) else None
        return build_oracles(self.config, self.base_dir, self.directory, table=table)

    # Round bookkeeping ------------------------------------------------------------------------------------------
    @property
    def last_round(self) -> int:
        """Index of the last round (``budget.rounds``); round 0 is the random initial design."""
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
        name = self.config.policy_objective.name
        if budget.target is not None:
            hits = [r for r in results if name in r.values and self._sign * (r.values[name] - budget.target) >= 0]
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
        """
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
            for stage in self.stages:
                close = getattr(stage.oracle, "close", None)
                if close is not None:
                    close()
        return summaries

    def _record_stop_reason(self) -> None:
        campaign = self.store.campaign_doc()
        reason = self.stop_reason()
        if campaign is not None and campaign.stop_reason != reason:
            self.store.put_campaign(campaign.model_copy(update={"stop_reason": reason}))
            if reason:
                logger.info("campaign finished: %s", reason)

    def run_round(self, index: int) -> RoundSummary | None:
        """Carry one round from wherever it stands to ``complete``; ``None`` if a stop was requested first."""
        start = time.perf_counter()
        existing = [doc for doc in self.store.rounds() if doc.round == index]
        doc = existing[0] if existing else self._propose(index)
        steps = {"proposed": self._launch, "launched": self._ingest, "ingested": self._train, "trained": self._finish}
        while doc.state != "complete":
            if self._stop.is_set():
                logger.info("stop requested: round %d left in state %s", index, doc.state)
                return None
            doc = steps[doc.state](doc)
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

    # Model inputs -----------------------------------------------------------------------------------------------
    def _measured_structures(self, results: list[ResultDoc]) -> dict[int, np.ndarray]:
        """Pool row -> structural descriptors of the relaxed cell the latest stage returned, where any stage did.

        Descriptors are computed once per result (results never change) and kept for the process's lifetime.
        """
        latest: dict[str, np.ndarray] = {}
        for result in sorted(results, key=lambda result: (result.stage, result.round)):
            structure = relaxed_structure(result.document)
            if structure is None:
                continue
            if result.job_id not in self._structure_cache:
                self._structure_cache[result.job_id] = self._structure_inputs.featurize(result.formula, structure)
            values = self._structure_cache[result.job_id]
            if values is not None:
                latest[result.candidate_id] = values
        rows = self.pool.rows_of(latest)
        return {rows[candidate]: values for candidate, values in latest.items()}

    def _structures_for(self, surrogate: BNNSurrogate, results: list[ResultDoc]) -> dict[int, np.ndarray] | None:
        """The measured structures to feed ``surrogate``, or ``None`` if it was trained without structural inputs."""
        if surrogate.n_features == len(self.pool.feature_names):
            return None
        return self._measured_structures(results)

    def _inputs(self, rows: np.ndarray, features: np.ndarray, structures: dict[int, np.ndarray] | None) -> np.ndarray:
        """``n x d'`` model inputs of pool ``rows``: descriptors, then structural inputs if ``structures`` is given.

        ``structures`` is ``None`` for a model trained without structural inputs (see
        ``sbin_loop.features.structure_inputs``).
        """
        if structures is None:
            return features
        return np.concatenate([features, self._structure_inputs.block(rows, structures)], axis=1)

    # Step 1: propose --------------------------------------------------------------------------------------------
    def _propose(self, index: int) -> RoundDoc:
        start = time.perf_counter()
        available = self._available()
        n_available = int(available.sum())
        if n_available == 0:
            raise CampaignError(f"round {index}: every candidate of the pool has been evaluated; nothing left to pick")
        rng = np.random.default_rng(derive_seed(self.config.seed, index, _SELECT))
        candidates, predictions, screening = np.flatnonzero(available), None, {}
        if index == 0:
            selection = RandomPolicy(self.config.budget.initial).select(None, n_available, rng)
        else:
            surrogate = self._load_model(index - 1)
            scores = None
            if self.policy.needs_model:
                score = self._scorer(surrogate, index)
                if n_available > self.config.policy.shortlist:
                    candidates = self._screen(score, available, index)
                    screening = {"screened": float(n_available), "shortlist": float(candidates.size)}
                shortlist = self.pool.take(candidates)
                scores = score(shortlist.rows, shortlist.features)
            selection = self.policy.select(scores, candidates.size, rng)
            predictions = self._intervals(surrogate, candidates[selection.indices], index)
        doc = RoundDoc(
            campaign=self.config.name,
            round=index,
            state="proposed",
            seed=self.config.seed,
            selected=self._selection_entries(selection, candidates, predictions, screening),
            timings={"select": time.perf_counter() - start},
        )
        self.store.put_round(doc)
        logger.info("round %d: picked %s", index, ", ".join(entry.candidate_id for entry in doc.selected))
        return doc

    def _selection_entries(
        self, selection: Selection, candidates: np.ndarray, predictions: list[list] | None, screening: dict
    ) -> list[SelectionEntry]:
        """The picks as stored, with the intervals predicted for them (per objective, then per pick) if any.

        Args:
            selection: Picks as positions in ``candidates``.
            candidates: Pool rows the policy picked from.
            predictions: Intervals per objective, then per pick.
            screening: Added to every pick's details: ``screened`` (available candidates) and ``shortlist`` (those
                the batch was picked from) when the pool was screened; empty otherwise.
        """
        block = self.pool.take(candidates[selection.indices])
        entries = []
        for position in range(len(selection.indices)):
            predicted = {}
            if predictions is not None:
                predicted = dict(zip(self.objective_names, (column[position] for column in predictions), strict=True))
            entries.append(
                SelectionEntry(
                    candidate_id=str(block.ids[position]),
                    formula=str(block.formulas[position]),
                    policy=selection.policies[position],
                    acquisition=selection.acquisitions[position],
                    acquisition_value=selection.acquisition_values[position],
                    reason=selection.reasons[position],
                    details={**selection.details[position], **screening},
                    prediction=predicted.get(self.config.policy_objective.name),
                    predicted_means={name: interval.mean for name, interval in predicted.items()},
                )
            )
        return entries

    def _available(self) -> np.ndarray:
        """``P`` mask of the pool rows no job has taken yet."""
        available = np.ones(len(self.pool), dtype=bool)
        taken = self.pool.rows_of({job.candidate_id for job in self.store.jobs()})
        available[np.fromiter(taken.values(), dtype=np.int64, count=len(taken))] = False
        return available

    def _posterior(self, surrogate: BNNSurrogate, index: int) -> BNNModel:
        """The round's ``S`` posterior functions: every scoring pass of the round evaluates these."""
        return BNNModel(surrogate, self.config.policy.mc_samples, derive_seed(self.config.seed, index, _DRAWS))

    def _scorer(self, surrogate: BNNSurrogate, index: int) -> Callable[[np.ndarray, np.ndarray], PoolScores]:
        """Draws of the round's posterior functions at any candidates (pool rows, descriptors), the measured ones too.

        Batch diversity is measured on the composition descriptors, which every candidate has.
        """
        evaluated, observed, results = self._training_data()
        structures = self._structures_for(surrogate, results)
        evaluated_inputs = self._inputs(evaluated, self.pool.take(evaluated).features, structures)
        model = self._posterior(surrogate, index)
        return lambda rows, features: draw_pool_scores(
            model, self._inputs(rows, features, structures), evaluated_inputs, observed, self._signs, features
        )

    def _screen(
        self, score: Callable[[np.ndarray, np.ndarray], PoolScores], available: np.ndarray, index: int
    ) -> np.ndarray:
        """Rows of the shortlist of a pool too large to score whole (``sbin_loop.policies.screening``)."""
        size = chunk_size(self.config.policy.mc_samples, len(self.objective_names))
        chunks = ((block.rows, block.features) for block in self.pool.blocks(size, available))
        rng = np.random.default_rng(derive_seed(self.config.seed, index, _SCREEN))
        shortlist = screen(chunks, score, self.config.policy, rng)
        logger.info("round %d: screened %d candidates to %d", index, int(available.sum()), shortlist.size)
        return shortlist

    def _load_model(self, index: int) -> BNNSurrogate:
        doc = next((doc for doc in self.store.rounds() if doc.round == index), None)
        if doc is None or doc.checkpoint is None:
            raise CampaignError(f"round {index} has no model checkpoint; the campaign store is incomplete")
        return load_surrogate(self.directory / doc.checkpoint)

    def _warm_start(self, index: int, surrogate: BNNSurrogate) -> BNNSurrogate | None:
        """Round ``index - 1``'s model for round ``index``'s fit to continue from (``model.warm_start_steps``), if any.

        None (train from scratch) when warm starts are off, the previous round kept no checkpoint (the first round),
        the last ``model.warm_start_rounds`` rounds all continued, or the previous model cannot be continued
        (structural descriptors appeared since, or the model section changed).
        """
        model = self.config.model
        if not model.warm_start_steps:
            return None
        earlier = [doc for doc in self.store.rounds() if doc.round < index]
        doc = earlier[-1] if earlier and earlier[-1].round == index - 1 and earlier[-1].checkpoint else None
        recent = earlier[-model.warm_start_rounds :]
        if doc is None or (
            len(recent) == model.warm_start_rounds and all((d.training or {}).get("warm_started") for d in recent)
        ):
            return None
        previous = load_surrogate(self.directory / doc.checkpoint)
        if not surrogate.continues(previous):
            logger.info("round %d: trains from scratch, round %d's model has other inputs or layers", index, index - 1)
            return None
        return previous

    # Step 2: launch ---------------------------------------------------------------------------------------------
    def _job_id(self, index: int, stage: int, candidate: str) -> str:
        """``campaign:rNNNN:candidate`` in stage 0 (ids from before stages), ``campaign:rNNNN:sK:candidate`` in K."""
        return f"{self.config.name}:r{index:04d}:{f's{stage}:' if stage else ''}{candidate}"

    def _stage_jobs(self, index: int, stage: int) -> list[JobDoc]:
        # Filtered here, not in the query: jobs stored before stages existed have no ``stage`` field in the backend.
        return [job for job in self.store.jobs(index) if job.stage == stage]

    def _launch(self, doc: RoundDoc, stage: int = 0) -> RoundDoc:
        """Write one ``pending`` job per pick the stage evaluates (the intent), submit them, store the round launched.

        Rewriting the intents after a restart is harmless: the picks of a stage are computed from stored documents
        only, the same every time, and jobs already written are kept as they are.
        """
        existing = {job.job_id for job in self._stage_jobs(doc.round, stage)}
        oracle = self.stages[stage].oracle
        for entry in doc.selected if stage == 0 else self._promoted(doc, stage):
            job_id = self._job_id(doc.round, stage, entry.candidate_id)
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
        self._submit_pending(doc.round, stage)
        if stage:
            logger.info("round %d: stage %d (%s) launched", doc.round, stage, oracle.name)
        return self.store.update_round(doc, state="launched", stage=stage)

    def _promoted(self, doc: RoundDoc, stage: int) -> list[SelectionEntry]:
        """The picks a later stage evaluates, best first.

        Only picks whose job in the previous stage completed are eligible. They are ranked by the ``select.rank_by``
        objective (the policy objective if not given) in its goal's direction: by the latest value an earlier stage of
        this round measured, else by the predicted mean stored with the pick; picks with neither come last; ties keep
        pick order. The first ``select.top_k`` are returned (all of them without ``top_k``).
        """
        select = self.stages[stage].select
        completed = {job.candidate_id for job in self._stage_jobs(doc.round, stage - 1) if job.state == "completed"}
        name = select.rank_by or self.config.policy_objective.name
        goal = next(objective.goal for objective in self.config.objectives if objective.name == name)
        sign = 1.0 if goal == "maximize" else -1.0
        measured = merged_values(result for result in self.store.results() if result.round == doc.round)

        def rank(entry: SelectionEntry) -> tuple[bool, float]:
            value = measured.get(entry.candidate_id, {}).get(name, entry.predicted_means.get(name))
            return value is None, 0.0 if value is None else -sign * value

        ranked = sorted((entry for entry in doc.selected if entry.candidate_id in completed), key=rank)
        return ranked[: select.top_k]

    @staticmethod
    def _request(job: JobDoc) -> JobRequest:
        return JobRequest(
            job_id=job.job_id, candidate_id=job.candidate_id, formula=job.formula, round=job.round, attempt=job.attempts
        )

    def _submit_pending(self, index: int, stage: int) -> None:
        """Submit the stage's ``pending`` attempts its oracle does not already know, then record them submitted."""
        pending = [job for job in self._stage_jobs(index, stage) if job.state == "pending"]
        if not pending:
            return
        oracle = self.stages[stage].oracle
        known = oracle.known([self._request(job) for job in pending])
        fresh = [job for job in pending if job.job_id not in known]
        if fresh:
            oracle.submit([self._request(job) for job in fresh])
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

    # Step 3: collect outcomes -----------------------------------------------------------------------------------
    def _ingest(self, doc: RoundDoc) -> RoundDoc:
        """Poll the launched stage until each of its jobs is completed or failed; then launch the next stage.

        Failures are retried and each result is ingested exactly once. After the last stage the round is stored
        ``ingested``.
        """
        start = time.perf_counter()
        stage = self.stages[doc.stage]
        self._submit_pending(doc.round, doc.stage)
        running = {job.job_id: job for job in self._stage_jobs(doc.round, doc.stage) if job.state == "submitted"}
        known = stage.oracle.known([self._request(job) for job in running.values()])
        lost = [job for job in running.values() if job.job_id not in known]
        if lost:
            logger.warning("round %d, stage %d: %d submitted attempts lost", doc.round, doc.stage, len(lost))
            stage.oracle.submit([self._request(job) for job in lost])
        while running:
            if self._stop.is_set():
                return doc
            outcomes = stage.oracle.poll([self._request(job) for job in running.values()])
            for job_id, job in list(running.items()):
                outcome = outcomes.get(job_id) or self._timeout(job)
                if outcome is None:
                    continue
                del running[job_id]
                retry = self._record_outcome(job, ingestible_outcome(outcome, tuple(self.config.objectives)))
                if retry is not None:
                    running[job_id] = retry
            if running and not outcomes:
                self._stop.wait(stage.poll_seconds)
        timer = f"oracle_s{doc.stage}" if doc.stage else "oracle"
        timings = {**doc.timings, timer: doc.timings.get(timer, 0.0) + time.perf_counter() - start}
        if doc.stage + 1 < len(self.stages):
            return self._launch(doc.model_copy(update={"timings": timings}), doc.stage + 1)
        return self.store.update_round(doc, state="ingested", timings=timings)

    def _timeout(self, job: JobDoc) -> OracleOutcome | None:
        """A failure outcome if the job's current attempt has run longer than its stage's ``timeout_seconds``."""
        limit = self.stages[job.stage].timeout_seconds
        if job.submitted_at is None or elapsed_seconds(job.submitted_at) <= limit:
            return None
        return OracleOutcome(job_id=job.job_id, status="failed", error=f"timed out after {limit:g} s")

    def _record_outcome(self, job: JobDoc, outcome: OracleOutcome) -> JobDoc | None:
        """Store a result (then mark the job completed), or a failure; return the retried job if any."""
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
            self.store.put_job(job.model_copy(update={"state": "completed"}))
            return None
        errors = [*job.errors, outcome.error or "unknown failure"]
        logger.warning("job %s failed (attempt %d): %s", job.job_id, job.attempts, errors[-1])
        if job.attempts >= self.stages[job.stage].max_attempts:
            self.store.put_job(job.model_copy(update={"state": "failed", "errors": errors}))
            return None
        self.store.put_job(job.model_copy(update={"attempts": job.attempts + 1, "errors": errors, "state": "pending"}))
        self._submit_pending(job.round, job.stage)
        return next(retry for retry in self.store.jobs(job.round) if retry.job_id == job.job_id)

    # Step 4: retrain --------------------------------------------------------------------------------------------
    def _training_data(self) -> tuple[np.ndarray, np.ndarray, list[ResultDoc]]:
        """Pool rows and targets (``NaN`` where not measured), one row per measured candidate, and every result.

        A value that several stages measured trains with the latest stage's (``merged_values``); a stored value the
        model cannot learn (``sbin_loop.measurements``) is left out.
        """
        results = self.store.results()
        objectives = tuple(self.config.objectives)
        measured = {
            candidate: usable
            for candidate, values in merged_values(results).items()
            if (usable := usable_values(values, objectives, candidate))
        }
        row_of = self.pool.rows_of(measured)
        rows = np.array([row_of[candidate] for candidate in measured], dtype=np.int64)
        targets = np.array(
            [[values.get(name, np.nan) for name in self.objective_names] for values in measured.values()],
            dtype=np.float64,
        ).reshape(len(measured), len(self.objective_names))
        return rows, targets, results

    def _train(self, doc: RoundDoc) -> RoundDoc:
        """Retrain on every result so far and save the checkpoint the next round will pick with."""
        start = time.perf_counter()
        rows, targets, results = self._training_data()
        if not results:
            raise CampaignError(f"round {doc.round}: no successful evaluation so far; check the oracle's failures")
        structures = self._measured_structures(results) if self.config.features.structure.enabled else {}
        structures = structures or None  # no structural inputs until some result has a structure
        features, targets, groups = self._training_inputs(rows, targets, structures)
        feature_names = [*self.pool.feature_names, *(self._structure_inputs.names() if structures else [])]
        surrogate = BNNSurrogate(
            len(feature_names),
            self.objective_names,
            tuple(objective.transform for objective in self.config.objectives),
            self.config.model,
            tuple(objective.bounds for objective in self.config.objectives),
        )
        seed = derive_seed(self.config.seed, doc.round, _TRAIN)
        try:
            report = surrogate.fit(features, targets, seed, groups, warm_start=self._warm_start(doc.round, surrogate))
        except ModelOutputError as error:
            raise CampaignError(f"round {doc.round}: {error}; no checkpoint was stored") from None
        checkpoint = Path("checkpoints") / f"round_{doc.round:04d}"
        save_checkpoint_once(self.directory / checkpoint, lambda path: save_surrogate(surrogate, path, feature_names))
        return self.store.update_round(
            doc,
            state="trained",
            n_evaluations=len(results),
            training=asdict(report),
            checkpoint=str(checkpoint),
            timings={**doc.timings, "train": time.perf_counter() - start},
        )

    def _training_inputs(
        self, rows: np.ndarray, targets: np.ndarray, structures: dict[int, np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Model inputs, targets and validation groups of the measured pool ``rows``.

        With structural inputs, each row that has a structure is also given once with its structure missing, so the
        network learns the composition-only prediction that every unevaluated candidate gets, not only the
        structure-aware one. A row and its twin share a validation group, so they are held out together.
        """
        features = self.pool.take(rows).features
        if structures is None:
            return features, targets, None
        inputs = self._inputs(rows, features, structures)
        twins = np.flatnonzero(inputs[:, -1] == 1.0)
        return (
            np.concatenate([inputs, self._inputs(rows[twins], features[twins], {})]),
            np.concatenate([targets, targets[twins]]),
            np.concatenate([np.arange(len(rows)), twins]),
        )

    # Step 5: intervals ------------------------------------------------------------------------------------------
    def _intervals(self, surrogate: BNNSurrogate, rows: np.ndarray, index: int) -> list[list]:
        """Intervals per objective (outer list) for pool rows (inner list)."""
        block = self.pool.take(rows)
        draws = surrogate.predictive_draws(
            self._inputs(rows, block.features, self._structures_for(surrogate, self.store.results())),
            self.config.intervals.n_draws,
            derive_seed(self.config.seed, index, _INTERVALS),
        ).numpy()  # S x n x m
        level = self.config.intervals.level
        return [candidate_intervals(draws[..., j], level, surrogate.bounds[j]) for j in range(draws.shape[-1])]

    def _candidate_intervals(
        self, surrogate: BNNSurrogate, rows: np.ndarray, index: int, observed: dict[str, dict[str, float]]
    ) -> list[CandidateInterval]:
        if rows.size == 0:
            return []
        per_objective = self._intervals(surrogate, rows, index)
        block = self.pool.take(rows)
        return [
            CandidateInterval(
                candidate_id=str(candidate),
                formula=str(block.formulas[position]),
                objective=name,
                interval=per_objective[j][position],
                observed=observed.get(str(candidate), {}).get(name),
            )
            for position, candidate in enumerate(block.ids)
            for j, name in enumerate(self.objective_names)
        ]

    def _top_predicted_rows(self, surrogate: BNNSurrogate, observed: dict, index: int) -> np.ndarray:
        """The ``intervals.top_k`` unmeasured rows of highest posterior mean of the policy objective, best first.

        The pool is streamed in chunks through the round's posterior functions, keeping a running top.
        """
        unmeasured = np.ones(len(self.pool), dtype=bool)
        unmeasured[list(self.pool.rows_of(observed).values())] = False
        model = self._posterior(surrogate, index)
        structures = self._structures_for(surrogate, self.store.results())
        top = RunningTop(self.config.intervals.top_k)
        for block in self.pool.blocks(chunk_size(self.config.policy.mc_samples, len(self.objective_names)), unmeasured):
            inputs = torch.as_tensor(self._inputs(block.rows, block.features, structures))
            with torch.no_grad():
                draws = model.posterior(inputs).values  # S x n x m
            top.update(draws[..., self._objective_index].mean(dim=0)[None] * self._sign, block.rows)
        if top.rows is None:
            return np.array([], dtype=np.int64)
        return top.rows[0].numpy()

    def _finish(self, doc: RoundDoc) -> RoundDoc:
        """Store Monte Carlo intervals for the picks, the best measured and the best predicted candidates."""
        start = time.perf_counter()
        surrogate = self._load_model(doc.round)
        observed = merged_values(self.store.results())
        name = self.config.policy_objective.name
        measured = [(self._sign * values[name], candidate) for candidate, values in observed.items() if name in values]
        ranked = [candidate for _, candidate in sorted(measured, key=lambda item: (-item[0], item[1]))]
        row_of = self.pool.rows_of(observed)
        best_rows = np.array([row_of[c] for c in ranked[: self.config.intervals.top_k]], dtype=np.int64)
        selected_rows = np.array(
            [row_of[entry.candidate_id] for entry in doc.selected if entry.candidate_id in observed], dtype=np.int64
        )
        intervals = {
            "selected": self._candidate_intervals(surrogate, selected_rows, doc.round, observed),
            "best_observed": self._candidate_intervals(surrogate, best_rows, doc.round, observed),
            "top_predicted": self._candidate_intervals(
                surrogate, self._top_predicted_rows(surrogate, observed, doc.round), doc.round, observed
            ),
        }
        best = next((entry for entry in intervals["best_observed"] if entry.objective == name), None)
        return self.store.update_round(
            doc,
            state="complete",
            n_failed=sum(job.state == "failed" for job in self.store.jobs()),
            best_observed=best,
            intervals=intervals,
            timings={**doc.timings, "intervals": time.perf_counter() - start},
        )

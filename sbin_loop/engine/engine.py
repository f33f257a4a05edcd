"""The in-memory engine: fit a surrogate on measured candidates, propose a batch, predict intervals.

The engine owns no files and no store: it is given the candidate pool, the results measured so far and a round index
(from which every seed is derived), and returns a fitted surrogate, picks with their predictions and reasons, or
intervals. The persistent campaign (``sbin_loop.campaign``) decides when each happens and stores what comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from botorch.models.ensemble import EnsembleModel

from sbin_loop.candidates import CandidatePool
from sbin_loop.config import CampaignConfig
from sbin_loop.engine.errors import CampaignError
from sbin_loop.engine.training import TrainingInputs
from sbin_loop.model.intervals import candidate_intervals
from sbin_loop.model.surrogate import BNNSurrogate, ModelOutputError, TrainingReport
from sbin_loop.policies import Policy, PoolScores, RandomPolicy, Selection, build_policy, draw_pool_scores
from sbin_loop.policies.screening import RunningTop, chunk_size, screen
from sbin_loop.seeds import DRAWS, INTERVALS, SCREEN, SELECT, derive_seed, derived_rng
from sbin_loop.stores import CandidateInterval, ResultDoc, SelectionEntry
from sbin_loop.surrogates.registry import make_surrogate, posterior_model

logger = logging.getLogger(__name__)

SurrogateFactory = Callable[[int], BNNSurrogate]
"""Makes an untrained surrogate for a number of model inputs."""

Scorer = Callable[[np.ndarray, np.ndarray], PoolScores]
"""Posterior draws at candidates given as (pool rows, composition descriptors)."""


@dataclass(frozen=True)
class Fit:
    """A fitted surrogate, its fit report and the names of its inputs."""

    surrogate: BNNSurrogate
    report: TrainingReport
    feature_names: list[str]


class Engine:
    """Fits, proposes and predicts for one campaign's pool, in memory.

    Args:
        config: The campaign config (objectives, model, policy, intervals, features and the master seed).
        pool: The candidate pool.
        policy: The acquisition policy (``build_policy(config.policy)`` by default).
        surrogate_factory: Makes the untrained surrogate of a fit (the one ``config.surrogate`` names by default: a
            ``BNNSurrogate`` of ``config.model``, or a peer of ``sbin_loop.surrogates``).
    """

    def __init__(
        self,
        config: CampaignConfig,
        pool: CandidatePool,
        policy: Policy | None = None,
        surrogate_factory: SurrogateFactory | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.policy = policy if policy is not None else build_policy(config.policy)
        self.surrogate_factory = surrogate_factory or self._default_surrogate
        self.inputs = TrainingInputs(pool, tuple(config.objectives), config.features.structure)
        self.objective_names = tuple(objective.name for objective in config.objectives)
        self._objective_index = self.objective_names.index(config.policy_objective.name)
        self.sign = 1.0 if config.policy_objective.goal == "maximize" else -1.0
        self._signs = tuple(1.0 if objective.goal == "maximize" else -1.0 for objective in config.objectives)

    def _default_surrogate(self, n_features: int) -> BNNSurrogate:
        return make_surrogate(self.config, n_features)

    # Fitting ----------------------------------------------------------------------------------------------------
    def fit(
        self,
        results: list[ResultDoc],
        seed: int,
        warm_start: Callable[[BNNSurrogate], BNNSurrogate | None] | None = None,
        what: str = "fit",
    ) -> Fit:
        """Fit a fresh surrogate on every usable measured value of ``results``.

        Args:
            results: Every result so far.
            seed: Seed of the fit.
            warm_start: Given the fresh surrogate, the model its fit continues from (or ``None``).
            what: Names the fit in errors (``round 3``).

        Raises:
            CampaignError: If no result is usable, or the model produced a non-finite value.
        """
        rows, targets = self.inputs.training_data(results)
        if rows.size == 0:
            raise CampaignError(f"{what}: no successful evaluation so far; check the oracle's failures")
        structures = self.inputs.fitting_structures(results)
        features, targets, groups = self.inputs.fitting_inputs(rows, targets, structures)
        feature_names = self.inputs.feature_names(structures)
        surrogate = self.surrogate_factory(len(feature_names))
        previous = warm_start(surrogate) if warm_start is not None else None
        try:
            report = surrogate.fit(features, targets, seed, groups, warm_start=previous)
        except ModelOutputError as error:
            raise CampaignError(f"{what}: {error}; no checkpoint was stored") from None
        return Fit(surrogate, report, feature_names)

    # Proposing --------------------------------------------------------------------------------------------------
    def posterior(self, surrogate: BNNSurrogate, index: int) -> EnsembleModel:
        """Round ``index``'s ``S`` posterior functions: every scoring pass of the round evaluates these."""
        return posterior_model(surrogate, self.config.policy.mc_samples, derive_seed(self.config.seed, index, DRAWS))

    def scorer(self, surrogate: BNNSurrogate, index: int, results: list[ResultDoc]) -> Scorer:
        """Draws of the round's posterior functions at any candidates (pool rows, descriptors), measured ones too.

        Batch diversity is measured on the composition descriptors, which every candidate has.
        """
        evaluated, observed = self.inputs.training_data(results)
        structures = self.inputs.structures_for(surrogate, results)
        evaluated_inputs = self.inputs.inputs(evaluated, self.pool.take(evaluated).features, structures)
        model = self.posterior(surrogate, index)
        return lambda rows, features: draw_pool_scores(
            model, self.inputs.inputs(rows, features, structures), evaluated_inputs, observed, self._signs, features
        )

    def screen(self, score: Scorer, available: np.ndarray, index: int) -> np.ndarray:
        """Rows of the shortlist of a pool too large to score whole (``sbin_loop.policies.screening``)."""
        size = chunk_size(self.config.policy.mc_samples, len(self.objective_names))
        chunks = ((block.rows, block.features) for block in self.pool.blocks(size, available))
        shortlist = screen(chunks, score, self.config.policy, derived_rng(self.config.seed, index, SCREEN))
        logger.info("round %d: screened %d candidates to %d", index, int(available.sum()), shortlist.size)
        return shortlist

    def _policy(self, n: int | None) -> Policy:
        if n is None or n == self.config.policy.batch_size:
            return self.policy
        if self.config.policy.kind == "composite":
            raise CampaignError(
                f"policy: a composite policy picks batch_size={self.config.policy.batch_size} at a time, not {n}"
            )
        return build_policy(self.config.policy.model_copy(update={"batch_size": n}))

    def propose(
        self,
        surrogate: BNNSurrogate | None,
        available: np.ndarray,
        index: int,
        results: list[ResultDoc],
        n: int | None = None,
        extension: int = 0,
    ) -> list[SelectionEntry]:
        """Pick a batch among the ``available`` pool rows, with the prediction made for each pick.

        Args:
            surrogate: The model to pick with; ``None`` picks ``n`` at random (round 0 without measurements).
            available: ``P`` mask of the rows that may be picked.
            index: Round index (seeds derive from it).
            results: Every result so far (the policy's incumbent, structural inputs).
            n: Batch size; the policy's ``batch_size`` if not given.
            extension: How many picks the round already has, when more are asked for while those are pending
                (a different random stream for each extension; 0 for a round's first batch).
        """
        n_available = int(available.sum())
        if n_available == 0:
            raise CampaignError(f"round {index}: every candidate of the pool has been evaluated; nothing left to pick")
        rng = derived_rng(self.config.seed, index, SELECT, *((extension,) if extension else ()))
        candidates, predictions, screening = np.flatnonzero(available), None, {}
        if surrogate is None:
            selection = RandomPolicy(n or self.config.policy.batch_size).select(None, n_available, rng)
        else:
            policy, scores = self._policy(n), None
            if policy.needs_model:
                score = self.scorer(surrogate, index, results)
                if n_available > self.config.policy.shortlist:
                    candidates = self.screen(score, available, index)
                    screening = {"screened": float(n_available), "shortlist": float(candidates.size)}
                shortlist = self.pool.take(candidates)
                scores = score(shortlist.rows, shortlist.features)
            selection = policy.select(scores, candidates.size, rng)
            predictions = self.intervals(surrogate, candidates[selection.indices], index, results)
        return self._entries(selection, candidates, predictions, screening)

    def _entries(
        self, selection: Selection, candidates: np.ndarray, predictions: list[list] | None, screening: dict
    ) -> list[SelectionEntry]:
        """The picks with the intervals predicted for them (per objective, then per pick) if any.

        ``screening`` is added to every pick's details: ``screened`` (available candidates) and ``shortlist`` (those
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
                    predictions=predicted,
                )
            )
        return entries

    # Intervals --------------------------------------------------------------------------------------------------
    def intervals(self, surrogate: BNNSurrogate, rows: np.ndarray, index: int, results: list[ResultDoc]) -> list[list]:
        """Monte Carlo intervals per objective (outer list) for pool rows (inner list)."""
        block = self.pool.take(rows)
        draws = surrogate.predictive_draws(
            self.inputs.inputs(rows, block.features, self.inputs.structures_for(surrogate, results)),
            self.config.intervals.n_draws,
            derive_seed(self.config.seed, index, INTERVALS),
        ).numpy()  # S x n x m
        level = self.config.intervals.level
        return [candidate_intervals(draws[..., j], level, surrogate.bounds[j]) for j in range(draws.shape[-1])]

    def candidate_intervals(
        self,
        surrogate: BNNSurrogate,
        rows: np.ndarray,
        index: int,
        observed: dict[str, dict[str, float]],
        results: list[ResultDoc],
    ) -> list[CandidateInterval]:
        """Intervals of pool ``rows`` for every objective, with the measured value where there is one."""
        if rows.size == 0:
            return []
        per_objective = self.intervals(surrogate, rows, index, results)
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

    def top_predicted_rows(
        self, surrogate: BNNSurrogate, observed: dict, index: int, results: list[ResultDoc]
    ) -> np.ndarray:
        """The ``intervals.top_k`` unmeasured rows of highest posterior mean of the policy objective, best first.

        The pool is streamed in chunks through the round's posterior functions, keeping a running top.
        """
        unmeasured = np.ones(len(self.pool), dtype=bool)
        unmeasured[list(self.pool.rows_of(observed).values())] = False
        model = self.posterior(surrogate, index)
        structures = self.inputs.structures_for(surrogate, results)
        top = RunningTop(self.config.intervals.top_k)
        for block in self.pool.blocks(chunk_size(self.config.policy.mc_samples, len(self.objective_names)), unmeasured):
            inputs = torch.as_tensor(self.inputs.inputs(block.rows, block.features, structures))
            with torch.no_grad():
                draws = model.posterior(inputs).values  # S x n x m
            top.update(draws[..., self._objective_index].mean(dim=0)[None] * self.sign, block.rows)
        if top.rows is None:
            return np.array([], dtype=np.int64)
        return top.rows[0].numpy()

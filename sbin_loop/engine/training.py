"""Training inputs: which pool rows and targets a model learns from, and the input matrix of any pool rows.

Inputs are the pool's composition descriptors, then (once some oracle returned a relaxed cell) the structural
descriptors of the measured cells and a ``structure present`` input (``sbin_loop.features.structure_inputs``).
Everything here is computed from results passed in; nothing is read from a store.
"""

from __future__ import annotations

import numpy as np

from sbin_loop.candidates import CandidatePool
from sbin_loop.config import ObjectiveConfig
from sbin_loop.features.config import StructureFeaturesConfig
from sbin_loop.features.structure_inputs import StructureInputs, relaxed_structure
from sbin_loop.measurements import usable_values
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.stores import ResultDoc
from sbin_loop.stores.documents import merged_values

Structures = dict[int, np.ndarray]
"""Pool row -> structural descriptors of its measured relaxed cell."""


class TrainingInputs:
    """Model inputs and targets of a pool's candidates, given the results measured so far.

    Args:
        pool: The candidate pool.
        objectives: The campaign's objectives (targets are columns in this order).
        structure: Structural descriptor settings (``features.structure``).
    """

    def __init__(
        self, pool: CandidatePool, objectives: tuple[ObjectiveConfig, ...], structure: StructureFeaturesConfig
    ) -> None:
        self.pool = pool
        self.objectives = objectives
        self.names = tuple(objective.name for objective in objectives)
        self.structure_enabled = structure.enabled
        self._structure_inputs = StructureInputs(structure)
        self._cache: dict[str, np.ndarray | None] = {}

    def training_data(self, results: list[ResultDoc]) -> tuple[np.ndarray, np.ndarray]:
        """Pool rows and targets (``NaN`` where not measured), one row per measured candidate.

        A value that several stages measured trains with the latest stage's (``merged_values``); a stored value the
        model cannot learn (``sbin_loop.measurements``) is left out.
        """
        measured = {
            candidate: usable
            for candidate, values in merged_values(results).items()
            if (usable := usable_values(values, self.objectives, candidate))
        }
        row_of = self.pool.rows_of(measured)
        rows = np.array([row_of[candidate] for candidate in measured], dtype=np.int64)
        targets = np.array(
            [[values.get(name, np.nan) for name in self.names] for values in measured.values()], dtype=np.float64
        ).reshape(len(measured), len(self.names))
        return rows, targets

    def measured_structures(self, results: list[ResultDoc]) -> Structures:
        """Pool row -> descriptors of the relaxed cell the latest stage returned, where any stage did.

        Descriptors are computed once per result (results never change) and kept for the object's lifetime.
        """
        latest: dict[str, np.ndarray] = {}
        for result in sorted(results, key=lambda result: (result.stage, result.round)):
            structure = relaxed_structure(result.document)
            if structure is None:
                continue
            if result.job_id not in self._cache:
                self._cache[result.job_id] = self._structure_inputs.featurize(result.formula, structure)
            values = self._cache[result.job_id]
            if values is not None:
                latest[result.candidate_id] = values
        rows = self.pool.rows_of(latest)
        return {rows[candidate]: values for candidate, values in latest.items()}

    def fitting_structures(self, results: list[ResultDoc]) -> Structures | None:
        """The structures a new model trains with, or ``None`` (no structural inputs) until some result has one."""
        return (self.measured_structures(results) if self.structure_enabled else {}) or None

    def structures_for(self, surrogate: BNNSurrogate, results: list[ResultDoc]) -> Structures | None:
        """The measured structures to feed ``surrogate``, or ``None`` if it was trained without structural inputs."""
        if surrogate.n_features == len(self.pool.feature_names):
            return None
        return self.measured_structures(results)

    def feature_names(self, structures: Structures | None) -> list[str]:
        """Names of the model inputs, with the structural ones when ``structures`` is given."""
        return [*self.pool.feature_names, *(self._structure_inputs.names() if structures is not None else [])]

    def inputs(self, rows: np.ndarray, features: np.ndarray, structures: Structures | None) -> np.ndarray:
        """``n x d'`` model inputs of pool ``rows``: descriptors, then structural inputs if ``structures`` is given."""
        if structures is None:
            return features
        return np.concatenate([features, self._structure_inputs.block(rows, structures)], axis=1)

    def fitting_inputs(
        self, rows: np.ndarray, targets: np.ndarray, structures: Structures | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Model inputs, targets and validation groups of the measured pool ``rows``.

        With structural inputs, each row that has a structure is also given once with its structure missing, so the
        network learns the composition-only prediction that every unevaluated candidate gets, not only the
        structure-aware one. A row and its twin share a validation group, so they are held out together.
        """
        features = self.pool.take(rows).features
        if structures is None:
            return features, targets, None
        inputs = self.inputs(rows, features, structures)
        twins = np.flatnonzero(inputs[:, -1] == 1.0)
        return (
            np.concatenate([inputs, self.inputs(rows[twins], features[twins], {})]),
            np.concatenate([targets, targets[twins]]),
            np.concatenate([np.arange(len(rows)), twins]),
        )

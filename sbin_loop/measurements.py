"""Which measured values a campaign may learn from: finite, inside the objective's support, representable.

Every outcome of every oracle passes ``ingestible_outcome`` before it reaches the store. A value the model cannot
use (NaN, infinite, outside the objective's declared ``bounds``, below -1 under a ``log1p`` transform, or too large
for the float32 network, e.g. 1e39 K from a typo in a table or a lab) turns the job into a failed one with the reason,
so it is never trained on and the campaign goes on. ``usable_values`` applies the same rule to results already stored
(by an sbin that let such values through), so they can never make a resume fail for good.
"""

from __future__ import annotations

import logging

import numpy as np

from sbin_loop.config import ObjectiveConfig
from sbin_loop.oracles import OracleOutcome, checked_outcome

logger = logging.getLogger(__name__)

REPRESENTABLE = float(np.finfo(np.float32).max) * 1e-8
"""Largest magnitude (about 3.4e30) a value may have: the network computes in float32 (largest about 3.4e38), and
standardising, squaring and sampling around a value must stay finite with a wide margin."""


def value_problem(objective: ObjectiveConfig, value: float) -> str | None:
    """Why ``value`` cannot be learnt as a measurement of ``objective``, or None if it can."""
    support = objective.support_violation(value)
    if support is not None:
        return support
    if abs(value) > REPRESENTABLE:
        return f"{objective.name} = {value:g} is too large for the model (|value| above {REPRESENTABLE:.1e})"
    if objective.transform == "log1p" and value <= -1:
        return f"{objective.name} = {value:g} is outside the domain of its log1p transform (must be above -1)"
    return None


def ingestible_outcome(outcome: OracleOutcome, objectives: tuple[ObjectiveConfig, ...]) -> OracleOutcome:
    """An oracle's outcome as it may be stored: a completed one with any unusable value becomes a failure naming it.

    Args:
        outcome: Raw outcome from an oracle.
        objectives: The campaign's objectives; at least one must be present, and every present one usable.
    """
    outcome = checked_outcome(outcome, tuple(objective.name for objective in objectives))
    if outcome.status != "completed":
        return outcome
    problems = [
        problem
        for objective in objectives
        if objective.name in outcome.values
        and (problem := value_problem(objective, outcome.values[objective.name])) is not None
    ]
    if not problems:
        return outcome
    return outcome.model_copy(update={"status": "failed", "values": {}, "document": None, "error": "; ".join(problems)})


def usable_values(values: dict[str, float], objectives: tuple[ObjectiveConfig, ...], source: str) -> dict[str, float]:
    """The values of a stored result the model may train on; each one left out is logged with its reason.

    Args:
        values: Values by objective name.
        objectives: The campaign's objectives.
        source: What the values belong to (a candidate id), for the log.
    """
    usable = {}
    for objective in objectives:
        if objective.name not in values:
            continue
        problem = value_problem(objective, values[objective.name])
        if problem is None:
            usable[objective.name] = values[objective.name]
        else:
            logger.warning("%s: stored value left out of training: %s", source, problem)
    return usable

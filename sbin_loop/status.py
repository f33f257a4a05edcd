"""Reading a campaign from its directory without running it: state, evaluations, best candidates, rounds.

The directory's ``campaign.json`` names the campaign and its store (never credentials: a MongoDB URI is read from
``SBIN_STORE_URI`` when the campaign uses MongoDB), so ``sbin status`` and notebooks can open any campaign directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sbin_loop.atomic import write_atomic
from sbin_loop.integrity import check_campaign, oracle_kinds
from sbin_loop.locking import lock_holder
from sbin_loop.stores import CampaignDoc, CampaignStore, CandidateInterval
from sbin_loop.stores.config import StoreConfig

MARKER = "campaign.json"
STORE_URI_VARIABLE = "SBIN_STORE_URI"


class NotACampaignError(FileNotFoundError):
    """A directory that holds no sbin campaign."""


def write_marker(directory: Path, name: str, store: StoreConfig) -> None:
    """Record which campaign and which kind of store a directory belongs to (no URI, so no credentials)."""
    marker = {"campaign": name, "backend": "mongodb" if store.uri else "embedded", "database": store.database}
    path = directory / MARKER
    if not path.is_file():
        write_atomic(path, json.dumps(marker, indent=2))


def read_marker(directory: Path) -> dict | None:
    """The directory's ``campaign.json`` (campaign name, backend, database), or ``None`` if it has none.

    Raises:
        NotACampaignError: If it is there but not a marker this sbin wrote (garbled, or not an object of strings).
    """
    path = Path(directory) / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotACampaignError(f"{path}: not a campaign marker: {error}") from None
    keys = ("campaign", "backend", "database")
    if not isinstance(marker, dict) or not all(isinstance(marker.get(key), str) for key in keys):
        raise NotACampaignError(f"{path}: not a campaign marker (needs string {', '.join(keys)})")
    return marker


def open_campaign(directory: Path, check: bool = True) -> tuple[CampaignStore, CampaignDoc]:
    """Open the store of a campaign directory, read-only, after checking that its parts agree.

    Args:
        directory: The campaign directory.
        check: Refuse a damaged campaign (``sbin_loop.integrity``); off only to inspect one.

    Raises:
        NotACampaignError: If the directory has no campaign, or its MongoDB URI is not in the environment.
        CampaignIntegrityError: If its store, ledgers and checkpoints disagree.
    """
    marker = read_marker(directory)
    if marker is None:
        if (Path(directory) / "store").is_dir():
            raise NotACampaignError(
                f"{directory}: {MARKER} is missing but the directory holds a campaign store (store/); restore "
                f"{MARKER} from a backup"
            )
        raise NotACampaignError(f"{directory}: not a sbin campaign directory (no {MARKER})")
    uri = None
    if marker["backend"] == "mongodb":
        uri = os.environ.get(STORE_URI_VARIABLE)
        if not uri:
            raise NotACampaignError(f"{directory}: campaign stored in MongoDB; set {STORE_URI_VARIABLE} to its URI")
    store = CampaignStore.open(
        marker["campaign"], StoreConfig(uri=uri, database=marker["database"]), Path(directory), read_only=True
    )
    try:
        doc = store.campaign_doc()
        if doc is None:
            raise NotACampaignError(
                f"{directory}: campaign {marker['campaign']!r} has no document in its store (campaigns collection); "
                "restore the store from a backup or start a new --dir"
            )
        if check:
            check_campaign(store, Path(directory), doc.config)
    except BaseException:
        store.close()
        raise
    return store, doc


def _interval_row(entry: CandidateInterval) -> dict:
    return {
        "candidate_id": entry.candidate_id,
        "formula": entry.formula,
        "objective": entry.objective,
        "observed": entry.observed,
        "mean": entry.interval.mean,
        "lower": entry.interval.lower,
        "upper": entry.interval.upper,
        "level": entry.interval.level,
    }


def _policy_objective(config: dict) -> tuple[str, str]:
    """Name and goal of the objective the policy acts on, from a stored config dump."""
    objectives = config.get("objectives") or [{}]
    name = (config.get("policy") or {}).get("objective") or objectives[0].get("name")
    goal = next((objective.get("goal", "maximize") for objective in objectives if objective.get("name") == name), "")
    return str(name), goal or "maximize"


def ranked_by_mean(rows: list[dict], objective: str, goal: str) -> list[dict]:
    """Interval rows of several candidates, candidates ordered best first by the ``mean`` shown for ``objective``.

    Rows of one candidate (one per objective) stay together, in their stored order; a candidate without a row for
    ``objective`` comes last. The order is the one a reader checks against the numbers shown.
    """
    sign = -1.0 if goal == "maximize" else 1.0
    shown = {row["candidate_id"]: row["mean"] for row in rows if row["objective"] == objective}
    first = {candidate: position for position, candidate in enumerate(dict.fromkeys(r["candidate_id"] for r in rows))}

    def key(row: dict) -> tuple[bool, float, int]:
        mean = shown.get(row["candidate_id"])
        return mean is None, 0.0 if mean is None else sign * mean, first[row["candidate_id"]]

    return sorted(rows, key=key)


def _state(rounds: list, stop_reason: str | None, driven_by: int | None, manual: bool = False) -> str:
    """The campaign's state in one word.

    ``finished``, ``running`` (a process holds the campaign lock), ``waiting`` (a manual campaign's proposals await
    their measurements), ``stopped`` (resumable) or ``new``.
    """
    if rounds and stop_reason is not None and rounds[-1].state == "complete":
        return "finished"
    if driven_by is not None:
        return "running"
    if manual and rounds and rounds[-1].state != "complete":
        return "waiting"
    return "stopped" if rounds else "new"


def campaign_status(directory: Path) -> dict:
    """Everything ``sbin status`` shows, as plain JSON-ready data.

    Keys: ``campaign``, ``state`` (``new``, ``running`` while a process drives it, ``waiting`` while a manual
    campaign's proposals await ``sbin tell``, ``stopped`` when none does and it is not finished, or ``finished``),
    ``driven_by`` (the pid holding the campaign lock, or None),
    ``stop_reason``, ``rounds_planned``, ``rounds_complete``, ``n_evaluations``, ``n_failed``, ``interval_level``
    (central level of the intervals shown), ``best`` (best measured candidates with model intervals),
    ``top_predicted`` (best unmeasured candidates with intervals, best first by the mean shown) and ``rounds`` (each
    with its ``selected`` ids in pick order).

    Raises:
        NotACampaignError: If the directory holds no campaign.
        CampaignIntegrityError: If the campaign's parts disagree (``sbin_loop.integrity``).
    """
    driven_by = lock_holder(directory) if Path(directory).is_dir() else None
    store, doc = open_campaign(directory)
    try:
        rounds = store.rounds()
        jobs = store.jobs()
    finally:
        store.close()
    planned = doc.config["budget"]["rounds"] + 1
    complete = [round_doc for round_doc in rounds if round_doc.state == "complete"]
    state = _state(rounds, doc.stop_reason, driven_by, oracle_kinds(doc.config) == ["manual"])
    last = complete[-1] if complete else None
    best = [_interval_row(entry) for entry in (last.intervals.get("best_observed", []) if last else [])]
    predicted = [_interval_row(entry) for entry in (last.intervals.get("top_predicted", []) if last else [])]
    levels = [row["level"] for row in best + predicted]
    return {
        "campaign": doc.campaign,
        "state": state,
        "driven_by": driven_by,
        "stop_reason": doc.stop_reason if state == "finished" else None,
        "rounds_planned": planned,
        "rounds_complete": len(complete),
        "n_evaluations": sum(job.state == "completed" for job in jobs),
        "n_failed": sum(job.state == "failed" for job in jobs),
        "interval_level": levels[0] if levels else (doc.config.get("intervals") or {}).get("level", 0.95),
        "best": best,
        "top_predicted": ranked_by_mean(predicted, *_policy_objective(doc.config)),
        "rounds": [
            {
                "round": round_doc.round,
                "state": round_doc.state,
                "selected": [entry.candidate_id for entry in round_doc.selected],
                "n_evaluations": round_doc.n_evaluations,
                "best_observed": round_doc.best_observed.observed if round_doc.best_observed else None,
                "best_candidate": round_doc.best_observed.candidate_id if round_doc.best_observed else None,
            }
            for round_doc in rounds
        ],
    }

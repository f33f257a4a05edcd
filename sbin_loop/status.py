"""Reading a campaign from its directory without running it: state, evaluations, best candidates, rounds.

The directory's ``campaign.json`` names the campaign and its store (never credentials: a MongoDB URI is read from
``SBIN_STORE_URI`` when the campaign uses MongoDB), so ``sbin status`` and notebooks can open any campaign directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sbin_loop.config import StoreConfig
from sbin_loop.stores import CampaignDoc, CampaignStore, CandidateInterval

MARKER = "campaign.json"
STORE_URI_VARIABLE = "SBIN_STORE_URI"


class NotACampaignError(FileNotFoundError):
    """A directory that holds no sbin campaign."""


def write_marker(directory: Path, name: str, store: StoreConfig) -> None:
    """Record which campaign and which kind of store a directory belongs to (no URI, so no credentials)."""
    marker = {"campaign": name, "backend": "mongodb" if store.uri else "embedded", "database": store.database}
    path = directory / MARKER
    if not path.is_file():
        temporary = directory / f".{MARKER}.tmp"
        temporary.write_text(json.dumps(marker, indent=2))
        os.replace(temporary, path)


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


def open_campaign(directory: Path) -> tuple[CampaignStore, CampaignDoc]:
    """Open the store of a campaign directory.

    Raises:
        NotACampaignError: If the directory has no campaign, or its MongoDB URI is not in the environment.
    """
    marker = read_marker(directory)
    if marker is None:
        raise NotACampaignError(f"{directory}: not a sbin campaign directory (no {MARKER})")
    uri = None
    if marker["backend"] == "mongodb":
        uri = os.environ.get(STORE_URI_VARIABLE)
        if not uri:
            raise NotACampaignError(f"{directory}: campaign stored in MongoDB; set {STORE_URI_VARIABLE} to its URI")
    store = CampaignStore.open(marker["campaign"], StoreConfig(uri=uri, database=marker["database"]), Path(directory))
    doc = store.campaign_doc()
    if doc is None:
        raise NotACampaignError(f"{directory}: campaign {marker['campaign']!r} has no document in its store")
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


def campaign_status(directory: Path) -> dict:
    """Everything ``sbin status`` shows, as plain JSON-ready data.

    Keys: ``campaign``, ``state`` (``new``, ``running`` or ``finished``), ``stop_reason``, ``rounds_planned``,
    ``rounds_complete``, ``n_evaluations``, ``n_failed``, ``best`` (best measured candidates with model intervals),
    ``top_predicted`` (best unmeasured candidates with intervals) and ``rounds`` (each with its ``selected`` ids in
    pick order).
    """
    store, doc = open_campaign(directory)
    try:
        rounds = store.rounds()
        jobs = store.jobs()
    finally:
        store.close()
    planned = doc.config["budget"]["rounds"] + 1
    complete = [round_doc for round_doc in rounds if round_doc.state == "complete"]
    if not rounds:
        state = "new"
    elif doc.stop_reason is not None and rounds[-1].state == "complete":
        state = "finished"
    else:
        state = "running"
    last = complete[-1] if complete else None
    return {
        "campaign": doc.campaign,
        "state": state,
        "stop_reason": doc.stop_reason if state == "finished" else None,
        "rounds_planned": planned,
        "rounds_complete": len(complete),
        "n_evaluations": sum(job.state == "completed" for job in jobs),
        "n_failed": sum(job.state == "failed" for job in jobs),
        "best": [_interval_row(entry) for entry in (last.intervals.get("best_observed", []) if last else [])],
        "top_predicted": [_interval_row(entry) for entry in (last.intervals.get("top_predicted", []) if last else [])],
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

"""Integrity of a campaign directory: its store, oracle ledgers, checkpoints, pool and ``campaign.json`` must agree.

The loop writes a round's parts in a fixed order: the round document (``proposed``), one job per pick (``pending``),
the oracle's ledger entry, the job ``submitted``, each result before its job is ``completed``, the round
``ingested``, the model checkpoint, the round ``trained`` and ``complete``. Every check here follows from that order,
so it holds after a crash at any moment, and while another process drives the campaign (the snapshot reads each part
before the parts written after it and after those written before it). A failed check means that something was
deleted, truncated or replaced: ``sbin run`` would redo rounds over stored checkpoints and ``sbin status`` would show
a damaged campaign as complete, so both refuse, naming what disagrees and how to recover.

Reading never writes: ledgers are read without the repair an oracle makes, so a read-only directory can be checked.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sbin_loop.stores import CampaignStore, JobDoc, ResultDoc, RoundDoc, StoreError
from sbin_loop.stores.documents import TOLD

logger = logging.getLogger(__name__)

RECOVERY = "restore the campaign directory from a backup, or start a new campaign with another --dir"
"""What a user can do about a damaged campaign: nothing here can recreate lost documents or results."""

LEDGERS = {"dataset": "oracle/dataset_ledger.jsonl", "vasp": "vasp/submitted.jsonl"}
"""Oracle kind -> its submission ledger (JSON lines with a ``key`` of ``job_id@attempt``), relative to the campaign."""

CHECKPOINTS = "checkpoints"
MARKER = "campaign.json"
TRAINED_STATES = ("trained", "complete")
LAUNCHED_STATES = ("launched", "ingested", "trained", "complete")


class CampaignIntegrityError(StoreError):
    """A campaign whose stored parts disagree; the message names them and says how to recover."""


def _refuse(directory: Path, problem: str) -> CampaignIntegrityError:
    return CampaignIntegrityError(f"{directory}: damaged campaign: {problem}; {RECOVERY}")


@dataclass(frozen=True)
class Snapshot:
    """Every part of a campaign, each read in the order that keeps the checks true while the campaign runs.

    Attributes:
        rounds_before: Round documents read first (a round's later parts are read after it).
        jobs_before: Jobs read after ``rounds_before``.
        results: Results read after ``jobs_before``.
        ledgers: Ledger path (relative) -> attempt keys it records, for the ledgers the config's oracles keep.
        checkpoints: Rounds that have a ``checkpoints/round_NNNN`` directory.
        jobs_after: Jobs read again after the results and ledgers (a result or ledger entry implies its job).
        rounds_after: Round documents read last (a job or a checkpoint implies its round).
    """

    rounds_before: list[RoundDoc]
    jobs_before: list[JobDoc]
    results: list[ResultDoc]
    ledgers: dict[str, list[str]]
    checkpoints: list[int]
    jobs_after: list[JobDoc]
    rounds_after: list[RoundDoc]


def ledger_keys(path: Path) -> list[str]:
    """Attempt keys a ledger records, read without repairing it (a line cut off by a crash is skipped)."""
    if not path.is_file():
        return []
    keys = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            keys.append(entry["key"])
    return keys


def checkpoint_rounds(directory: Path) -> list[int]:
    """Rounds with a checkpoint directory (``checkpoints/round_NNNN``)."""
    found = []
    root = directory / CHECKPOINTS
    for path in sorted(root.glob("round_*")) if root.is_dir() else []:
        suffix = path.name.removeprefix("round_")
        if path.is_dir() and suffix.isdigit():
            found.append(int(suffix))
    return found


def oracle_kinds(config: dict) -> list[str]:
    """Kind of each oracle stage of a stored config dump (``oracles``, or a single ``oracle``)."""
    stages = config.get("oracles") or [config.get("oracle") or {}]
    return [str(stage.get("kind", "dataset")) if isinstance(stage, dict) else "" for stage in stages]


def read_snapshot(store: CampaignStore, directory: Path, kinds: list[str]) -> Snapshot:
    """Read every part of a campaign for ``check_snapshot``.

    Args:
        store: The campaign's store.
        directory: The campaign directory.
        kinds: Oracle kind of each stage (``oracle_kinds``), which says which ledgers to read.
    """
    rounds_before = store.rounds()
    jobs_before = store.jobs()
    results = store.results()
    ledgers = {LEDGERS[kind]: ledger_keys(directory / LEDGERS[kind]) for kind in set(kinds) if kind in LEDGERS}
    checkpoints = checkpoint_rounds(directory)
    return Snapshot(rounds_before, jobs_before, results, ledgers, checkpoints, store.jobs(), store.rounds())


def _round_problems(snapshot: Snapshot) -> list[str]:
    """Rounds missing between others, or rounds whose jobs or results are gone."""
    problems = []
    numbers = [doc.round for doc in snapshot.rounds_after]
    if numbers != list(range(len(numbers))):
        missing = sorted(set(range(max(numbers, default=-1) + 1)) - set(numbers))
        problems.append(f"rounds collection lacks round(s) {missing} between stored rounds {numbers}")
    first_stage = {(job.round, job.candidate_id) for job in snapshot.jobs_before if job.stage == 0}
    for doc in snapshot.rounds_before:
        if doc.state not in LAUNCHED_STATES:
            continue
        lost = [entry.candidate_id for entry in doc.selected if (doc.round, entry.candidate_id) not in first_stage]
        if lost:
            problems.append(
                f"round {doc.round} is {doc.state} with {len(doc.selected)} picks but the jobs collection holds no job "
                f"for {len(lost)} of them ({', '.join(lost[:3])})"
            )
    trained = [doc for doc in snapshot.rounds_before if doc.state in TRAINED_STATES]
    if trained:
        last = max(trained, key=lambda doc: doc.n_evaluations)
        if len(snapshot.results) < last.n_evaluations:
            problems.append(
                f"results collection has {len(snapshot.results)} results but round {last.round} was trained on "
                f"{last.n_evaluations}"
            )
    return problems


def _job_problems(snapshot: Snapshot, kinds: list[str]) -> list[str]:
    """Jobs without their round, completed jobs without their result, results and ledger entries without their job."""
    problems = []
    rounds = {doc.round for doc in snapshot.rounds_after}
    told_round = len(snapshot.rounds_after)  # measurements told before the next round is proposed
    orphans = sorted(
        {
            job.round
            for job in snapshot.jobs_before
            if job.round not in rounds and not (job.oracle == TOLD and job.round == told_round)
        }
    )
    if orphans:
        problems.append(
            f"jobs collection holds jobs of round(s) {orphans} but the rounds collection has "
            f"{len(snapshot.rounds_after)} round(s)"
        )
    stored = {result.job_id for result in snapshot.results}
    unresulted = [job.job_id for job in snapshot.jobs_before if job.state == "completed" and job.job_id not in stored]
    if unresulted:
        completed = sum(job.state == "completed" for job in snapshot.jobs_before)
        problems.append(
            f"results collection has {len(snapshot.results)} results but the jobs collection records {completed} "
            f"completed jobs ({len(unresulted)} without a result, e.g. {unresulted[0]})"
        )
    attempts = {job.job_id: job.attempts for job in snapshot.jobs_after}
    jobless = [result.job_id for result in snapshot.results if result.job_id not in attempts]
    if jobless:
        problems.append(
            f"results collection holds {len(jobless)} results whose job is not in the jobs collection "
            f"(e.g. {jobless[0]})"
        )
    for ledger, keys in snapshot.ledgers.items():
        job_of = {key: key.rpartition("@")[0] for key in keys}
        unknown = [key for key, job_id in job_of.items() if job_id not in attempts]
        ahead = [key for key, job_id in job_of.items() if job_id in attempts and _attempt(key) > attempts[job_id]]
        if unknown or ahead:
            example = (unknown or ahead)[0]
            problems.append(
                f"{ledger} records {len(unknown) + len(ahead)} submissions the jobs collection does not hold "
                f"(e.g. {example})"
            )
        recorded = set(keys)
        unrecorded = [
            job.job_id
            for job in snapshot.jobs_before
            if job.state != "pending"
            and job.oracle != TOLD
            and job.stage < len(kinds)
            and LEDGERS.get(kinds[job.stage]) == ledger
            and f"{job.job_id}@{job.attempts}" not in recorded
        ]
        if unrecorded:
            problems.append(
                f"{ledger} records {len(recorded)} submissions but the jobs collection holds {len(unrecorded)} "
                f"submitted jobs it lacks (e.g. {unrecorded[0]})"
            )
    return problems


def _attempt(key: str) -> int:
    suffix = key.rpartition("@")[2]
    return int(suffix) if suffix.isdigit() else 0


def _checkpoint_problems(snapshot: Snapshot, directory: Path) -> list[str]:
    """Trained rounds without their checkpoint, checkpoints of rounds that were never trained."""
    problems = []
    state = {doc.round: doc.state for doc in snapshot.rounds_after}
    strays = [index for index in snapshot.checkpoints if state.get(index) not in ("ingested", *TRAINED_STATES)]
    if strays:
        problems.append(
            f"{CHECKPOINTS}/ holds checkpoints of round(s) {strays} that the rounds collection does not record as "
            f"trained ({len(snapshot.rounds_after)} round(s) stored)"
        )
    for doc in snapshot.rounds_before:
        if doc.state in TRAINED_STATES and doc.checkpoint and not (directory / doc.checkpoint).is_dir():
            problems.append(f"round {doc.round} is {doc.state} but its checkpoint {doc.checkpoint} is missing")
    return problems


def check_snapshot(snapshot: Snapshot, directory: Path, kinds: list[str]) -> list[str]:
    """Every disagreement between the parts of a campaign (empty for an intact one)."""
    return [
        *_round_problems(snapshot),
        *_job_problems(snapshot, kinds),
        *_checkpoint_problems(snapshot, directory),
    ]


def check_campaign(store: CampaignStore, directory: Path, config: dict) -> None:
    """Refuse a campaign whose store, ledgers and checkpoints disagree.

    Args:
        store: The campaign's store (its campaign document exists).
        directory: The campaign directory.
        config: The campaign's config as stored (a ``model_dump``), naming its oracles and so its ledgers.

    Raises:
        CampaignIntegrityError: Naming the first disagreements found and how to recover.
    """
    kinds = oracle_kinds(config)
    problems = check_snapshot(read_snapshot(store, Path(directory), kinds), Path(directory), kinds)
    if problems:
        raise _refuse(Path(directory), "; ".join(problems[:3]))


def check_directory(directory: Path, marker: dict | None, store: CampaignStore, name: str, embedded: bool) -> None:
    """Refuse to start or resume campaign ``name`` where ``campaign.json`` and the store disagree.

    ``campaign.json`` is written right after the campaign document, so a directory that has one names a campaign
    whose document the store must hold; a directory without one may hold at most what a failed first start leaves.

    Args:
        directory: The campaign directory.
        marker: Its ``campaign.json`` (None if missing); its campaign name was checked against ``name`` already.
        store: The store opened for campaign ``name`` with the config's store settings.
        name: The campaign the config names.
        embedded: The config keeps the store inside the directory.

    Raises:
        CampaignIntegrityError: Naming what disagrees and how to recover.
    """
    if marker is None:
        check_unmarked_directory(directory, store, name, embedded)
        return
    if store.campaign_doc() is not None:
        return
    backend = marker.get("backend", "embedded")
    configured = "embedded" if embedded else "mongodb"
    if backend != configured:
        raise CampaignIntegrityError(
            f"{directory}: {MARKER} says campaign {name!r} is stored in the {backend} store but the config's store "
            f"section names the {configured} one; set store.uri as the campaign was started, or use a new --dir"
        )
    raise _refuse(
        Path(directory),
        f"{MARKER} names campaign {name!r} but its store (database {marker.get('database')!r}) holds no campaign "
        "document for it (campaigns collection)",
    )


def check_unmarked_directory(directory: Path, store: CampaignStore, name: str, embedded: bool) -> None:
    """Refuse to start or resume campaign ``name`` in a directory that holds a campaign but no ``campaign.json``.

    A first start writes the campaign document, then ``campaign.json``; a directory left by a start that failed or
    was killed before either (a store without documents, a pool cache) may be used. Anything more (rounds, jobs,
    results, ledger entries, checkpoints, or another campaign's documents in the embedded store) means that
    ``campaign.json`` was removed, and another config must not take the campaign over.

    Args:
        directory: The campaign directory, which has no ``campaign.json``.
        store: The store opened for campaign ``name``.
        name: The campaign the config names.
        embedded: The store lives inside the directory (its other campaigns belong to the directory too).

    Raises:
        CampaignIntegrityError: Naming what the directory holds.
    """
    found = []
    others = sorted(set(store.campaign_names()) - {name}) if embedded else []
    if others:
        found.append(f"the store holds campaign(s) {others}")
    counts = {"rounds": len(store.rounds()), "jobs": len(store.jobs()), "results": len(store.results())}
    found += [f"{count} {what} of campaign {name!r}" for what, count in counts.items() if count]
    checkpoints = checkpoint_rounds(directory)
    if checkpoints:
        found.append(f"{CHECKPOINTS}/ holds {len(checkpoints)} round checkpoint(s)")
    found += [
        f"{ledger} records submissions" for ledger in sorted(set(LEDGERS.values())) if ledger_keys(directory / ledger)
    ]
    if found:
        raise CampaignIntegrityError(
            f"{directory}: {MARKER} is missing but the directory holds a campaign ({'; '.join(found)}); restore "
            f"{MARKER} from a backup, or start the new campaign in another --dir"
        )


def check_pool_candidates(directory: Path, picked: set[str], rows_of: Callable[[set[str]], dict[str, int]]) -> None:
    """Refuse a cached pool that lacks candidates the campaign has picked (``pool/`` was replaced).

    Args:
        directory: The campaign directory.
        picked: Candidate ids of every stored job.
        rows_of: The pool's lookup of candidate ids (``CandidatePool.rows_of``).
    """
    missing = sorted(picked - set(rows_of(picked)))
    if missing:
        raise _refuse(
            Path(directory),
            f"pool/ lacks {len(missing)} candidate(s) the jobs collection picked (e.g. {missing[0]}); pool/ belongs "
            "to another campaign or space",
        )


def _same_file(new: Path, stored: Path) -> bool:
    return new.is_file() and new.read_bytes() == stored.read_bytes()


def save_checkpoint_once(directory: Path, save: Callable[[Path], object]) -> None:
    """Write a round's checkpoint with ``save``, never changing a checkpoint that is already stored.

    A checkpoint directory can exist already only where a run was killed after saving it and before storing the
    round as trained; retraining from the same stored results gives the same files, which complete it. A stored file
    that differs is refused and left as it is.

    Args:
        directory: ``checkpoints/round_NNNN``.
        save: Writes a checkpoint into the directory it is given.

    Raises:
        CampaignIntegrityError: If a stored file differs from the retrained one.
    """
    if not directory.exists():
        save(directory)
        return
    staging = directory.with_name(f".{directory.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    save(staging)
    try:
        stored = [path for path in directory.iterdir() if path.is_file() and not path.name.startswith(".")]
        differing = [path.name for path in stored if not _same_file(staging / path.name, path)]
        if differing:
            raise _refuse(
                directory.parents[1],
                f"{directory.relative_to(directory.parents[1])} exists and its {', '.join(differing)} differ from the "
                "model retrained on the stored results; the checkpoint is kept as it is",
            )
        for path in staging.iterdir():
            if not (directory / path.name).exists():
                path.replace(directory / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

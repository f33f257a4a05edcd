"""The campaign store: typed documents on top of interchangeable maggma stores.

Campaign documents (the campaign, jobs, results, rounds: thousands at most) live in maggma stores: an embedded
``MontyStore`` (sqlite engine, on disk inside the campaign directory, survives restarts) by default, or a
``MongoStore`` (by URI) when the config gives a URI. Candidate pools and feature matrices are not stored here (see
``sbin_loop.pool_cache``): a document store is the wrong tool for 10^5+ rows.

Every write is a pydantic document validated before it reaches the backend; every read is validated again, so a
document of a foreign schema version is reported rather than misread.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import TypeVar

from maggma.core import Store
from maggma.stores import MemoryStore, MongoStore, MontyStore
from pydantic import BaseModel, ValidationError
from pymongo.errors import PyMongoError

from sbin_loop.stores.config import StoreConfig
from sbin_loop.stores.documents import SCHEMA_VERSION, CampaignDoc, JobDoc, ResultDoc, RoundDoc, utc_now

DocumentT = TypeVar("DocumentT", bound=BaseModel)

COLLECTIONS: dict[str, tuple[type[BaseModel], list[str]]] = {
    "sbin_campaigns": (CampaignDoc, ["campaign"]),
    "sbin_jobs": (JobDoc, ["campaign", "job_id"]),
    "sbin_results": (ResultDoc, ["campaign", "job_id"]),
    "sbin_rounds": (RoundDoc, ["campaign", "round"]),
}
"""Collection name -> (document model, unique key fields)."""

_BACKEND_FIELDS = ("_id", "last_updated")


class StoreError(RuntimeError):
    """A store that cannot be opened or holds a document this version cannot read."""


def open_backend(collection: str, config: StoreConfig, directory: Path | None) -> Store:
    """A connected maggma store for one collection.

    Args:
        collection: Collection name.
        config: The campaign's store section: a MongoDB URI, or none for the embedded store.
        directory: Campaign directory holding the embedded store (``None`` gives an in-memory store, for tests).
    """
    key = COLLECTIONS[collection][1]
    if config.uri is not None:
        return _connected_mongo(collection, config, key)
    if directory is None:
        store: Store = MemoryStore(collection_name=collection, key=key)
    else:
        path = directory / "store"
        path.mkdir(parents=True, exist_ok=True)
        store = MontyStore(collection, database_path=str(path), database_name=config.database, key=key)
    store.connect()
    return store


def _connected_mongo(collection: str, config: StoreConfig, key: list[str]) -> Store:
    """A ``MongoStore`` whose server answered within ``server_selection_timeout_ms``.

    Raises:
        StoreError: Naming the server by its redacted URI, if it cannot be reached or refuses the connection.
    """
    timeout = config.server_selection_timeout_ms
    store = MongoStore.from_uri(
        config.secret_uri,
        collection_name=collection,
        database=config.database,
        key=key,
        mongoclient_kwargs={"serverSelectionTimeoutMS": timeout, "connectTimeoutMS": timeout},
    )
    try:
        store.connect()
        store._collection.database.client.admin.command("ping")
    except PyMongoError as error:
        store.close()
        reason = type(error).__name__
        raise StoreError(
            f"store.uri: cannot reach MongoDB at {config.redacted_uri} within {timeout / 1000:g} s ({reason}); "
            "check the server and store.uri, or raise store.server_selection_timeout_ms"
        ) from None
    return store


def _unwritable(path: Path) -> bool:
    """Whether ``path`` is an existing directory this process may not write (permissions, read-only mount)."""
    return path.is_dir() and not os.access(path, os.W_OK)


class CampaignStore:
    """Typed access to one campaign's documents.

    Args:
        campaign: Campaign name; every query is restricted to it.
        backends: Connected maggma stores by collection name (see ``COLLECTIONS``).
    """

    def __init__(self, campaign: str, backends: dict[str, Store], scratch: Path | None = None) -> None:
        self.campaign = campaign
        self._backends = backends
        self._scratch = scratch

    @classmethod
    def open(cls, campaign: str, config: StoreConfig, directory: Path | None, read_only: bool = False) -> CampaignStore:
        """Connect every collection of a campaign.

        Args:
            campaign: Campaign name.
            config: The campaign's store section.
            directory: Campaign directory holding the embedded store (``None``: in memory, for tests).
            read_only: The caller only reads. The embedded store's engine writes even to read (its settings file,
                the write-ahead log), so an embedded store in a directory this process cannot write is read from a
                private copy, removed on ``close``.
        """
        scratch = None
        if read_only and directory is not None and config.uri is None and _unwritable(Path(directory) / "store"):
            scratch = Path(tempfile.mkdtemp(prefix="sbin-store-"))
            shutil.copytree(Path(directory) / "store", scratch / "store")
        source = scratch if scratch is not None else directory
        try:
            return cls(campaign, {name: open_backend(name, config, source) for name in COLLECTIONS}, scratch)
        except BaseException:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            raise

    def close(self) -> None:
        """Close every backend connection (and remove a read-only store's private copy)."""
        for backend in self._backends.values():
            backend.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _put(self, collection: str, document: BaseModel) -> None:
        model, key = COLLECTIONS[collection]
        if not isinstance(document, model):
            raise TypeError(f"{collection} holds {model.__name__} documents, got {type(document).__name__}")
        if document.campaign != self.campaign:
            raise ValueError(f"document of campaign {document.campaign!r} written to campaign {self.campaign!r}")
        data = model.model_validate(document.model_dump()).model_dump(mode="json")
        self._backends[collection].update(data, key=key)

    def _read(self, collection: str, raw: dict) -> BaseModel:
        model = COLLECTIONS[collection][0]
        data = {name: value for name, value in raw.items() if name not in _BACKEND_FIELDS}
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{collection}: document {data.get('job_id') or data.get('round') or ''} has schema_version "
                f"{version!r}; this sbin reads version {SCHEMA_VERSION}"
            )
        try:
            return model.model_validate(data)
        except ValidationError as error:
            raise StoreError(f"{collection}: invalid stored document: {error}") from None

    def _query(self, collection: str, criteria: dict | None = None, sort: dict | None = None) -> list:
        backend = self._backends[collection]
        try:
            found = list(backend.query({"campaign": self.campaign, **(criteria or {})}, sort=sort))
        except sqlite3.OperationalError as error:
            # The embedded store creates a collection's file before its table: a reader (``sbin status`` while a
            # daemon writes its first job) can see the file in between. It holds no documents yet.
            if "no such table" not in str(error):
                raise
            found = []
        return [self._read(collection, raw) for raw in found]

    # Campaign -------------------------------------------------------------------------------------------------
    def campaign_names(self) -> list[str]:
        """Names of every campaign with a campaign document in this store (not only this one)."""
        try:
            found = self._backends["sbin_campaigns"].query({}, properties=["campaign"])
            return sorted({str(raw.get("campaign")) for raw in found})
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
            return []

    def campaign_doc(self) -> CampaignDoc | None:
        """The campaign document, or ``None`` for a campaign never started."""
        found = self._query("sbin_campaigns")
        return found[0] if found else None

    def put_campaign(self, document: CampaignDoc) -> None:
        """Write the campaign document."""
        self._put("sbin_campaigns", document)

    # Jobs -----------------------------------------------------------------------------------------------------
    def put_job(self, job: JobDoc) -> None:
        """Insert or replace a job (keyed by its id), stamping ``updated_at``."""
        self._put("sbin_jobs", job.model_copy(update={"updated_at": utc_now()}))

    def jobs(self, round_index: int | None = None) -> list[JobDoc]:
        """Jobs of one round, or of the whole campaign."""
        criteria = {} if round_index is None else {"round": round_index}
        return self._query("sbin_jobs", criteria, sort={"job_id": 1})

    # Results --------------------------------------------------------------------------------------------------
    def put_result(self, result: ResultDoc) -> bool:
        """Ingest a result once: returns ``False`` (and writes nothing) if its job's result is already stored."""
        if self._query("sbin_results", {"job_id": result.job_id}):
            return False
        self._put("sbin_results", result)
        return True

    def results(self) -> list[ResultDoc]:
        """Every result of the campaign, in the order of rounds and job ids."""
        return self._query("sbin_results", sort={"round": 1, "job_id": 1})

    # Rounds ---------------------------------------------------------------------------------------------------
    def put_round(self, round_doc: RoundDoc) -> None:
        """Insert or replace a round document, stamping ``updated_at``."""
        self._put("sbin_rounds", round_doc.model_copy(update={"updated_at": utc_now()}))

    def rounds(self) -> list[RoundDoc]:
        """Every round document, in round order."""
        return self._query("sbin_rounds", sort={"round": 1})

    def update_round(self, round_doc: RoundDoc, **changes: object) -> RoundDoc:
        """Store a copy of a round with some fields changed, validated, and return it."""
        updated = RoundDoc.model_validate({**round_doc.model_dump(), **changes})
        self.put_round(updated)
        return updated

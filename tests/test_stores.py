import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from sbin_loop.stores import CampaignDoc, CampaignStore, JobDoc, ResultDoc, StoreError, campaign_store, open_backend
from sbin_loop.stores.config import StoreConfig


def _result(job_id: str = "c:r0000:SrTiO3", value: float = 1.0) -> ResultDoc:
    return ResultDoc(
        campaign="c",
        job_id=job_id,
        round=0,
        candidate_id="SrTiO3",
        formula="SrTiO3",
        values={"y": value},
        oracle="dataset",
    )


MONGODB_URI = os.environ.get("SBIN_TEST_MONGODB_URI")
"""A reachable MongoDB for the backend tests (none can run on the development machines, so unset there)."""


@pytest.fixture(params=["embedded", "memory", "mongodb"])
def backend(request, tmp_path: Path) -> tuple[StoreConfig, Path | None]:
    """Store settings of each backend: MontyStore on disk, maggma's MemoryStore, and MongoDB when reachable."""
    if request.param == "mongodb":
        if not MONGODB_URI:
            pytest.skip("set SBIN_TEST_MONGODB_URI to run the store tests against MongoDB")
        return StoreConfig(uri=MONGODB_URI, database=f"sbin_test_{uuid.uuid4().hex[:12]}"), tmp_path
    return StoreConfig(), tmp_path if request.param == "embedded" else None


def test_result_ingestion_is_idempotent(backend):
    store = CampaignStore.open("c", *backend)
    assert store.put_result(_result())
    assert not store.put_result(_result(value=99.0))
    assert [result.values["y"] for result in store.results()] == [1.0]


def test_embedded_store_survives_reopening(tmp_path: Path):
    store = CampaignStore.open("c", StoreConfig(), tmp_path)
    store.put_job(
        JobDoc(campaign="c", job_id="j1", round=0, candidate_id="A", formula="A", oracle="dataset", state="submitted")
    )
    store.close()
    reopened = CampaignStore.open("c", StoreConfig(), tmp_path)
    assert [job.job_id for job in reopened.jobs()] == ["j1"]


def test_a_collection_another_process_is_still_creating_reads_as_empty(tmp_path: Path):
    store = CampaignStore.open("c", StoreConfig(), tmp_path)
    # The embedded engine creates a collection's file, then its table; a reader can land in between.
    (tmp_path / "store" / "sbin").mkdir(exist_ok=True)
    (tmp_path / "store" / "sbin" / "sbin_jobs.collection").touch()
    assert store.jobs() == []


def test_campaigns_are_isolated(backend):
    CampaignStore.open("c", *backend).put_result(_result())
    assert CampaignStore.open("other", *backend).results() == []


def test_foreign_schema_version_is_refused(tmp_path: Path):
    backend = open_backend("sbin_results", StoreConfig(), tmp_path)
    backend.update({**_result().model_dump(mode="json"), "schema_version": 99}, key=["campaign", "job_id"])
    with pytest.raises(StoreError, match="schema_version 99"):
        CampaignStore.open("c", StoreConfig(), tmp_path).results()


def test_wrong_document_type_is_refused(tmp_path: Path):
    store = CampaignStore.open("c", StoreConfig(), None)
    with pytest.raises(ValueError, match="campaign 'other'"):
        store.put_result(_result().model_copy(update={"campaign": "other"}))


def test_campaign_names_lists_every_campaign_of_the_store(tmp_path: Path):
    assert CampaignStore.open("c", StoreConfig(), tmp_path).campaign_names() == []
    for name in ("c", "other"):
        store = CampaignStore.open(name, StoreConfig(), tmp_path)
        store.put_campaign(CampaignDoc(campaign=name, config={}, sbin_version="test"))
        store.close()
    assert CampaignStore.open("c", StoreConfig(), tmp_path).campaign_names() == ["c", "other"]


def test_an_unwritable_embedded_store_is_read_from_a_private_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The embedded engine writes its settings and a write-ahead log even to read, so a read-only campaign directory
    is read from a copy (a real read-only mount is tested in tests/test_integrity.py)."""
    CampaignStore.open("c", StoreConfig(), tmp_path).put_result(_result())
    files = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    monkeypatch.setattr(campaign_store.os, "access", lambda path, mode: False)
    store = CampaignStore.open("c", StoreConfig(), tmp_path, read_only=True)
    copy = store._scratch
    assert copy is not None and copy.is_dir()
    assert [result.values["y"] for result in store.results()] == [1.0]
    store.close()
    assert not copy.exists()
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == files


def test_an_unreachable_mongodb_is_refused_quickly_with_the_uri_redacted():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = StoreConfig(uri=f"mongodb://alice:hunter2@127.0.0.1:{port}/sbin", server_selection_timeout_ms=300)
    start = time.monotonic()
    with pytest.raises(
        StoreError, match=rf"cannot reach MongoDB at mongodb://alice:\*\*\*@127\.0\.0\.1:{port}"
    ) as info:
        CampaignStore.open("c", config, None)
    assert time.monotonic() - start < 10 and "hunter2" not in str(info.value)

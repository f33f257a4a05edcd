import os
import uuid
from pathlib import Path

import pytest

from sbin_loop.config import StoreConfig
from sbin_loop.stores import CampaignStore, JobDoc, ResultDoc, StoreError, open_backend


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

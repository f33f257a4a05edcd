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


@pytest.mark.parametrize("embedded", [True, False])
def test_result_ingestion_is_idempotent(tmp_path: Path, embedded: bool):
    store = CampaignStore.open("c", StoreConfig(), tmp_path if embedded else None)
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


def test_campaigns_are_isolated(tmp_path: Path):
    CampaignStore.open("c", StoreConfig(), tmp_path).put_result(_result())
    assert CampaignStore.open("other", StoreConfig(), tmp_path).results() == []


def test_foreign_schema_version_is_refused(tmp_path: Path):
    backend = open_backend("sbin_results", StoreConfig(), tmp_path)
    backend.update({**_result().model_dump(mode="json"), "schema_version": 99}, key=["campaign", "job_id"])
    with pytest.raises(StoreError, match="schema_version 99"):
        CampaignStore.open("c", StoreConfig(), tmp_path).results()


def test_wrong_document_type_is_refused(tmp_path: Path):
    store = CampaignStore.open("c", StoreConfig(), None)
    with pytest.raises(ValueError, match="campaign 'other'"):
        store.put_result(_result().model_copy(update={"campaign": "other"}))

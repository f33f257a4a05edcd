"""A damaged campaign is refused, never redone or shown as complete; credentials and unusable values never stored.

Each damage case copies one small finished campaign, deletes or truncates one of its parts (a store collection, the
oracle ledger, a checkpoint, ``campaign.json``, the pool) and checks that ``sbin run`` (a real subprocess, see
``tests/hostile.py``), ``status`` and ``report`` refuse it with a one-line error naming the part, and that no stored
file changed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import campaign_config, write_pool
from hostile import Sandbox, check_refused, run_sbin, snapshot

from sbin_loop.cli import _format_status
from sbin_loop.inspection.frames import open_view
from sbin_loop.inspection.report import render_html
from sbin_loop.integrity import CampaignIntegrityError
from sbin_loop.locking import CampaignLock
from sbin_loop.loop import Campaign
from sbin_loop.status import NotACampaignError, campaign_status, open_campaign
from sbin_loop.stores import RoundDoc, campaign_store
from sbin_loop.stores.config import StoreConfig

USER_ERROR = 1
"""Exit code of a refused command on this branch (user errors)."""

COLLECTION_FILE = "store/sbin/{}.collection"
LEDGER = "oracle/dataset_ledger.jsonl"


def _config_file(campaign: Path, where: Path, **overrides: object) -> Path:
    """The finished campaign's config as a YAML file a user would pass to ``sbin run``."""
    config = campaign_config(campaign.parent / "pool.csv", **overrides)
    path = where / "campaign.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def _copy(campaign: Path, where: Path) -> Path:
    directory = where / "campaign"
    shutil.copytree(campaign, directory)
    return directory


def _remove_docs(directory: Path, collection: str, criteria: dict) -> None:
    store, _ = open_campaign(directory, check=False)
    try:
        store._backends[collection].remove_docs({"campaign": "test", **criteria})
    finally:
        store.close()


def _delete(relative: str) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        path = directory / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return damage


def _truncate(collection: str, criteria: dict) -> Callable[[Path], None]:
    return lambda directory: _remove_docs(directory, collection, criteria)


def _truncate_ledger(directory: Path) -> None:
    path = directory / LEDGER
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-4]))


DAMAGES = {
    "rounds deleted": (_delete(COLLECTION_FILE.format("sbin_rounds")), "rounds collection"),
    "rounds truncated": (_truncate("sbin_rounds", {"round": 2}), "round(s) [2]"),
    "results deleted": (_delete(COLLECTION_FILE.format("sbin_results")), "results collection has 0 results"),
    "results truncated": (_truncate("sbin_results", {"round": {"$gte": 1}}), "results collection has 6 results"),
    "jobs deleted": (_delete(COLLECTION_FILE.format("sbin_jobs")), "jobs collection"),
    "jobs truncated": (_truncate("sbin_jobs", {"round": 1}), "round 1"),
    "campaign deleted": (_delete(COLLECTION_FILE.format("sbin_campaigns")), "campaigns collection"),
    "ledger deleted": (_delete(LEDGER), LEDGER),
    "ledger truncated": (_truncate_ledger, LEDGER),
    "checkpoint deleted": (_delete("checkpoints/round_0001"), "checkpoints/round_0001"),
    "campaign.json deleted": (_delete("campaign.json"), "campaign.json"),
}


@pytest.mark.parametrize("case", list(DAMAGES))
def test_a_damaged_campaign_is_refused_by_run_status_and_report(case: str, finished_campaign: Path, tmp_path: Path):
    damage, names = DAMAGES[case]
    sandbox = Sandbox.make(tmp_path)
    directory = _copy(finished_campaign, sandbox.root)
    config = _config_file(finished_campaign, sandbox.root)
    damage(directory)
    checkpoints = snapshot(directory / "checkpoints")

    outcome = check_refused(sandbox, ["run", str(config), "--dir", str(directory)], code=USER_ERROR, mentions=(names,))
    assert "start a new" in outcome.stderr or "restore" in outcome.stderr, outcome.stderr
    with pytest.raises((CampaignIntegrityError, NotACampaignError), match=re.escape(names)):
        campaign_status(directory)
    with pytest.raises((CampaignIntegrityError, NotACampaignError)):
        open_view(directory)
    assert snapshot(directory / "checkpoints") == checkpoints


@pytest.mark.parametrize("command", ["status", "report"])
def test_status_and_report_refuse_truncated_results_on_the_command_line(
    command: str, finished_campaign: Path, tmp_path: Path
):
    sandbox = Sandbox.make(tmp_path)
    directory = _copy(finished_campaign, sandbox.root)
    _truncate("sbin_results", {"round": {"$gte": 1}})(directory)
    check_refused(sandbox, [command, str(directory)], code=USER_ERROR, mentions=("results collection has 6 results",))


def test_an_intact_copy_passes_every_check(finished_campaign: Path, tmp_path: Path):
    directory = _copy(finished_campaign, tmp_path)
    assert campaign_status(directory)["state"] == "finished"
    assert Campaign.from_config(campaign_config(finished_campaign.parent / "pool.csv"), directory).next_round() is None


def test_another_config_cannot_take_over_a_directory_without_campaign_json(finished_campaign: Path, tmp_path: Path):
    directory = _copy(finished_campaign, tmp_path)
    (directory / "campaign.json").unlink()
    before = snapshot(directory)
    with pytest.raises(CampaignIntegrityError, match=r"campaign.json is missing.*'test'"):
        Campaign.from_config(campaign_config(finished_campaign.parent / "pool.csv", name="other"), directory)
    assert snapshot(directory) == before


def test_a_stored_checkpoint_is_never_overwritten(finished_campaign: Path, tmp_path: Path):
    """A round stored ``ingested`` whose checkpoint exists (a kill between saving it and storing the round) is
    retrained; a stored file that differs from the retrained one is refused and kept."""
    directory = _copy(finished_campaign, tmp_path)
    weights = directory / "checkpoints" / "round_0002" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    store, _ = open_campaign(directory)
    try:
        last = store.rounds()[-1]
        store.update_round(last, state="ingested")
    finally:
        store.close()
    before = snapshot(directory / "checkpoints")
    campaign = Campaign.from_config(campaign_config(finished_campaign.parent / "pool.csv"), directory)
    with pytest.raises(CampaignIntegrityError, match="checkpoints/round_0002 exists"):
        campaign.run()
    assert snapshot(directory / "checkpoints") == before


def test_a_checkpoint_saved_before_a_kill_is_completed_by_the_same_retraining(finished_campaign: Path, tmp_path: Path):
    directory = _copy(finished_campaign, tmp_path)
    store, _ = open_campaign(directory)
    try:
        store.update_round(store.rounds()[-1], state="ingested")
    finally:
        store.close()
    (directory / "checkpoints" / "round_0002" / "metadata.json").unlink()  # killed between the two files
    before = snapshot(directory / "checkpoints")
    Campaign.from_config(campaign_config(finished_campaign.parent / "pool.csv"), directory).run()
    after = snapshot(directory / "checkpoints")
    assert {path: after[path] for path in before} == before
    assert "round_0002/metadata.json" in after
    assert campaign_status(directory)["state"] == "finished"


def test_a_pool_left_by_a_failed_first_start_is_rebuilt_for_a_corrected_space(tmp_path: Path, supercon: pd.DataFrame):
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    supercon.iloc[:40][["formula", "Tc_K"]].to_csv(first, index=False)
    supercon.iloc[40:80][["formula", "Tc_K"]].to_csv(second, index=False)
    directory = tmp_path / "campaign"
    missing = {"kind": "dataset", "source": str(tmp_path / "missing.csv"), "poll_seconds": 0.01}
    with pytest.raises(Exception, match=r"missing\.csv"):
        Campaign.from_config(campaign_config(first, oracle=missing), directory)
    assert (directory / "pool" / "pool.json").is_file() and not (directory / "campaign.json").exists()

    campaign = Campaign.from_config(campaign_config(second, budget={"initial": 6, "rounds": 1}), directory)
    expected = set(pd.read_csv(second)["formula"])
    assert set(campaign.pool.take(range(len(campaign.pool))).formulas) <= expected
    campaign.run()
    state = campaign_status(directory)
    assert state["state"] == "finished" and state["n_failed"] == 0 and state["n_evaluations"] == 10


def test_a_pool_from_another_space_is_refused_once_rounds_are_stored(finished_campaign: Path, tmp_path: Path):
    directory = _copy(finished_campaign, tmp_path)
    meta = json.loads((directory / "pool" / "pool.json").read_text())
    (directory / "pool" / "pool.json").write_text(json.dumps({**meta, "fingerprint": "0123456789abcdef"}))
    before = snapshot(directory)
    with pytest.raises(CampaignIntegrityError, match=r"pool/pool\.json was built from another space config"):
        Campaign.from_config(campaign_config(finished_campaign.parent / "pool.csv"), directory)
    assert snapshot(directory) == before


def _read_only(directory: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run ``sbin ARGS`` with ``directory`` mounted read-only in a private mount namespace (needs root)."""
    mount = f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory}"
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", f'{mount} && exec "$0" -m sbin_loop "$@"', sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        stdin=subprocess.DEVNULL,
    )


def _can_mount_read_only(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    if shutil.which("unshare") is None:
        return False
    command = f"mount --bind {probe} {probe} && mount -o remount,ro,bind {probe} && ! touch {probe}/x 2>/dev/null"
    return subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True).returncode == 0


def test_status_and_report_read_a_read_only_campaign(finished_campaign: Path, tmp_path: Path):
    if not _can_mount_read_only(tmp_path):
        pytest.skip("needs a private read-only bind mount (root in a mount namespace)")
    directory = _copy(finished_campaign, tmp_path)
    before = snapshot(directory)
    status = _read_only(directory, ["status", str(directory)])
    refused = _read_only(directory, ["report", str(directory)])
    elsewhere = _read_only(directory, ["report", str(directory), "--out", str(tmp_path / "out" / "report.html")])
    assert status.returncode == 0 and "finished" in status.stdout, status.stderr[-2000:]
    assert refused.returncode == USER_ERROR and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "--out" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]
    assert (tmp_path / "out" / "report.html").is_file()
    assert snapshot(directory) == before


# Credentials ----------------------------------------------------------------------------------------------------
SECRET = "s3cret-pw"


def test_store_uri_is_redacted_wherever_it_is_shown():
    store = StoreConfig(uri=f"mongodb://alice:{SECRET}@db.example:27017/sbin?authSource=admin&password={SECRET}")
    assert SECRET not in repr(store) and SECRET not in str(store.model_dump())
    assert store.model_dump(mode="json")["uri"] == "mongodb://alice:***@db.example:27017/sbin?***"
    assert store.secret_uri is not None and SECRET in store.secret_uri
    assert StoreConfig.redact("mongodb+srv://bob:pw@h1,h2/db") == "mongodb+srv://bob:***@h1,h2/db"
    assert StoreConfig.redact("mongodb://host:27017") == "mongodb://host:27017"
    assert StoreConfig.model_validate(store.model_dump(mode="json")).redacted_uri == store.redacted_uri


def test_credentials_never_reach_the_store_the_log_or_the_report_and_do_not_block_a_resume(
    tmp_path: Path, supercon: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """MongoDB is simulated by the embedded store: every other line of the campaign sees a ``mongodb://`` URI."""
    real = campaign_store.open_backend

    def embedded(collection: str, config: StoreConfig, directory: Path | None):
        return real(collection, config.model_copy(update={"uri": None}), directory)

    monkeypatch.setattr(campaign_store, "open_backend", embedded)
    caplog.set_level("INFO")
    pool = write_pool(tmp_path, supercon)
    directory = tmp_path / "campaign"
    first = {"uri": f"mongodb://alice:{SECRET}@db1.example:27017/sbin"}
    budget = {"initial": 6, "rounds": 1}
    Campaign.from_config(campaign_config(pool, store=first, budget=budget), directory).run(max_rounds=1)
    moved = {"uri": "mongodb://alice:new-pw@db2.example:27017/sbin", "server_selection_timeout_ms": 2000}
    Campaign.from_config(campaign_config(pool, store=moved, budget={"initial": 6, "rounds": 1}), directory).run()

    monkeypatch.setenv("SBIN_STORE_URI", "mongodb://alice:new-pw@db2.example:27017/sbin")
    assert campaign_status(directory)["state"] == "finished"
    view = open_view(directory)
    assert view.campaign.config["store"]["uri"] == "mongodb://alice:***@db2.example:27017/sbin"
    html = render_html(view, {})
    for secret in (SECRET, "new-pw"):
        assert secret not in html and secret not in caplog.text
        stored = [path for path in directory.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]
        assert stored == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_mongodb_is_one_line_naming_the_redacted_uri(tmp_path: Path, supercon: pd.DataFrame):
    sandbox = Sandbox.make(tmp_path)
    uri = f"mongodb://alice:{SECRET}@127.0.0.1:{_free_port()}/sbin"
    data = campaign_config(write_pool(sandbox.root, supercon)).model_dump(mode="json")
    data["store"] = {"uri": uri, "server_selection_timeout_ms": 500}
    path = sandbox.root / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    outcome = check_refused(
        sandbox, ["run", str(path), "--dir", "campaign"], code=USER_ERROR, mentions=("alice:***@127.0.0.1",), timeout=60
    )
    assert SECRET not in outcome.stdout + outcome.stderr


# Unusable values ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("objective", "bad", "reason"),
    [
        ({"transform": "log1p", "bounds": [0, None]}, -5.0, "below its lower bound 0"),
        ({"transform": "none"}, 1e39, "too large for the model"),
    ],
)
def test_unusable_measured_values_become_failed_jobs_and_the_campaign_finishes(
    objective: dict, bad: float, reason: str, tmp_path: Path, supercon: pd.DataFrame
):
    rows = supercon.iloc[:10][["formula", "Tc_K"]].reset_index(drop=True)
    rows.loc[3, "Tc_K"] = bad
    pool = tmp_path / "pool.csv"
    rows.to_csv(pool, index=False)
    config = campaign_config(
        pool, objectives=[{"name": "Tc_K", "unit": "K", **objective}], budget={"initial": 6, "rounds": 1}
    )
    campaign = Campaign.from_config(config, tmp_path / "campaign")
    campaign.run()
    failed = [job for job in campaign.store.jobs() if job.state == "failed"]
    assert [job.formula for job in failed] == [rows.loc[3, "formula"]]
    assert reason in failed[0].errors[-1]
    assert all(abs(result.values["Tc_K"]) < 1e30 for result in campaign.store.results())
    assert campaign_status(tmp_path / "campaign")["state"] == "finished"


def test_a_stored_value_the_model_cannot_use_does_not_stop_a_resume(finished_campaign: Path, tmp_path: Path):
    """A value stored before ingestion checked it (1e39 K) is left out of training instead of failing every resume."""
    directory = _copy(finished_campaign, tmp_path)
    store, _ = open_campaign(directory)
    try:
        result = store.results()[0]
        huge = result.model_copy(update={"values": {"Tc_K": 1e39}}).model_dump(mode="json")
        store._backends["sbin_results"].update(huge, key=["campaign", "job_id"])
    finally:
        store.close()
    campaign = Campaign.from_config(
        campaign_config(finished_campaign.parent / "pool.csv", budget={"initial": 6, "rounds": 3}), directory
    )
    assert len(campaign.run()) == 1
    assert campaign_status(directory)["rounds_complete"] == 4


# Status ---------------------------------------------------------------------------------------------------------
def test_status_state_follows_the_campaign_lock(finished_campaign: Path, tmp_path: Path):
    directory = _copy(finished_campaign, tmp_path)
    store, doc = open_campaign(directory)
    try:
        store.put_campaign(doc.model_copy(update={"stop_reason": None}))
    finally:
        store.close()
    assert campaign_status(directory)["state"] == "stopped"
    with CampaignLock(directory):
        state = campaign_status(directory)
    assert state["state"] == "running" and state["driven_by"] is not None


def test_status_ranks_predicted_candidates_by_the_mean_it_shows_at_the_configured_level(finished_campaign: Path):
    state = campaign_status(finished_campaign)
    means = [row["mean"] for row in state["top_predicted"] if row["objective"] == "Tc_K"]
    assert len(means) >= 2 and means == sorted(means, reverse=True)
    assert state["interval_level"] == 0.95
    assert "mean [90% interval]" in _format_status({**state, "interval_level": 0.9})


def test_sbin_status_on_the_command_line_shows_the_level_of_its_intervals(finished_campaign: Path, tmp_path: Path):
    directory = _copy(finished_campaign, tmp_path)
    store, _ = open_campaign(directory)
    try:
        data = store.rounds()[-1].model_dump()
        for entries in data["intervals"].values():
            for entry in entries:
                entry["interval"]["level"] = 0.9  # as if the campaign ran with intervals.level 0.9
        store.put_round(RoundDoc.model_validate(data))
    finally:
        store.close()
    outcome = run_sbin(["status", str(directory)], tmp_path)
    assert outcome.code == 0, outcome.stderr[-2000:]
    assert "mean [90% interval]" in outcome.stdout and "95%" not in outcome.stdout

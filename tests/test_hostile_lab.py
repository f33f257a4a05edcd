"""A hostile but fair lab: whatever it puts in its queue directories, sbin writes nothing outside the campaign.

Each case plants something in the file queue's inbox or outbox (a link to a bait file in a watched sibling directory,
a FIFO, a directory, a badly named or badly typed result) and checks that the campaign carries on, that the entry is
refused with a reason that names it but holds none of the bytes it points to, and that the bait is byte-identical.
Cases that could block (a FIFO) run under a deadline, so a hang fails instead of stalling the suite.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hostile import Sandbox, run_sbin, snapshot

from sbin_loop.config import ConfigError, ObjectiveConfig, parse_config
from sbin_loop.measurements import ingestible_outcome
from sbin_loop.oracles import JobRequest
from sbin_loop.oracles.config import FileQueueConfig, SynthesisConditions
from sbin_loop.oracles.file_queue import FileQueueBackend, campaign_file_queue
from sbin_loop.oracles.synthesis import SynthesisOracle, SynthesisRequest

JOB = JobRequest(job_id="c:r1:MgB2", candidate_id="MgB2", formula="MgB2", round=1)
REQUEST_ID = "c:r1:MgB2@1"
SAFE_ID = "c_r1_MgB2_1"
GOOD = {"request_id": REQUEST_ID, "status": "completed", "measurements": {"Tc_K": 39.0}}


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise ``TimeoutError`` in the block if it runs longer than ``seconds`` (a blocking ``open`` included)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Lab:
    """A campaign directory with a file queue, beside a watched directory holding a bait file."""

    sandbox: Sandbox
    oracle: SynthesisOracle
    backend: FileQueueBackend
    watched_before: dict[str, str]

    @property
    def bait(self) -> Path:
        return self.sandbox.watched / "bait.txt"

    @property
    def outbox(self) -> Path:
        return self.backend.outbox

    @property
    def inbox(self) -> Path:
        return self.backend.inbox

    def drop(self, name: str, result: dict | str) -> None:
        """Drop a result file the way a lab should: written aside, then renamed."""
        partial = self.inbox / ".drop.tmp"
        partial.write_text(result if isinstance(result, str) else json.dumps(result))
        partial.replace(self.inbox / name)

    def poll(self) -> dict:
        with deadline(10.0):
            return self.oracle.poll([JOB])

    def reasons(self) -> dict[str, str]:
        """Rejected entry name -> its reason."""
        rejected = self.inbox / "rejected"
        return {path.name.removesuffix(".reason"): path.read_text() for path in rejected.glob("*.reason")}

    def check_outside_untouched(self) -> None:
        assert snapshot(self.sandbox.watched) == self.watched_before, "something outside the campaign changed"
        assert self.bait.read_text() == "do not touch\n"


def _open_lab(tmp_path: Path, submit: bool = True) -> Lab:
    sandbox = Sandbox.make(tmp_path)
    watched_before = snapshot(sandbox.watched)
    backend = campaign_file_queue(sandbox.root, FileQueueConfig(), "oracles.1.backend")
    oracle = SynthesisOracle(backend, SynthesisConditions(), {})
    if submit:
        oracle.submit([JOB])
    return Lab(sandbox, oracle, backend, watched_before)


@pytest.fixture()
def lab(tmp_path: Path) -> Lab:
    """A file queue that has sent the request for ``JOB``."""
    return _open_lab(tmp_path)


# Links planted where sbin writes ------------------------------------------------------------------------------------
def test_a_link_planted_at_a_reason_file_is_not_written_through(lab: Lab):
    (lab.inbox / "rejected" / "bad.json.reason").symlink_to(lab.bait)
    lab.drop("bad.json", "{not json")
    assert lab.poll() == {}
    lab.check_outside_untouched()
    reasons = lab.reasons()
    (name,) = [name for name in reasons if name != "bad.json"]
    assert "Invalid JSON" in reasons[name] and (lab.inbox / "rejected" / name).read_text() == "{not json"
    assert (lab.inbox / "rejected" / "bad.json.reason").is_symlink()  # left as planted, not replaced


def test_a_link_planted_at_a_partial_request_file_is_not_written_through(tmp_path: Path):
    lab = _open_lab(tmp_path, submit=False)
    (lab.outbox / f".{SAFE_ID}.partial").symlink_to(lab.bait)
    (lab.outbox / f"{SAFE_ID}.json").symlink_to(lab.bait)  # even the request's own name
    lab.oracle.submit([JOB])
    lab.check_outside_untouched()
    request = lab.outbox / f"{SAFE_ID}.json"
    assert not request.is_symlink() and json.loads(request.read_text())["request_id"] == REQUEST_ID
    assert not [path for path in lab.outbox.iterdir() if path.name.endswith(".tmp")]


def _request_line() -> str:
    request = SynthesisRequest(
        request_id=REQUEST_ID, job_id=JOB.job_id, candidate_id="MgB2", formula="MgB2", target_mmol={}, conditions={}
    )
    return request.model_dump_json() + "\n"


@pytest.mark.parametrize("target", ["bait.txt", "ledger.jsonl"])
def test_the_ledger_is_the_campaigns_and_a_linked_outbox_ledger_is_never_written_or_migrated(
    tmp_path: Path, target: str
):
    sandbox = Sandbox.make(tmp_path)
    (sandbox.watched / "ledger.jsonl").write_text(_request_line())  # a valid ledger, outside the campaign
    outbox = sandbox.root / "synthesis" / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "sent.jsonl").symlink_to(sandbox.watched / target)
    before = snapshot(sandbox.watched)
    backend = campaign_file_queue(sandbox.root, FileQueueConfig(), "oracles.1.backend")
    oracle = SynthesisOracle(backend, SynthesisConditions(), {})
    assert oracle.known([JOB]) == set()  # not migrated through the link
    oracle.submit([JOB])
    assert snapshot(sandbox.watched) == before
    assert backend.ledger.is_relative_to(sandbox.root / "oracle")
    assert json.loads(backend.ledger.read_text())["request_id"] == REQUEST_ID
    assert (outbox / "sent.jsonl").is_symlink()


def test_an_outbox_ledger_of_an_earlier_version_is_migrated_once(tmp_path: Path):
    sandbox = Sandbox.make(tmp_path)
    outbox = sandbox.root / "synthesis" / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "sent.jsonl").write_text(_request_line() + "{cut off")  # the lab took the request file
    backend = campaign_file_queue(sandbox.root, FileQueueConfig(), "oracles.1.backend")
    assert SynthesisOracle(backend, SynthesisConditions(), {}).known([JOB]) == {JOB.job_id}
    (outbox / "sent.jsonl").write_text("")  # read once: later changes to it are ignored
    again = campaign_file_queue(sandbox.root, FileQueueConfig(), "oracles.1.backend")
    assert SynthesisOracle(again, SynthesisConditions(), {}).known([JOB]) == {JOB.job_id}
    assert len(again.ledger.read_text().splitlines()) == 1


def test_a_link_planted_at_the_processed_name_is_neither_followed_nor_replaced(lab: Lab):
    planted = lab.inbox / "processed" / f"{SAFE_ID}.json"
    planted.symlink_to(lab.bait)
    lab.drop("ok.json", GOOD)
    assert lab.poll()[JOB.job_id].values == {"Tc_K": 39.0}
    assert planted.is_symlink() and len(list((lab.inbox / "processed").glob("*.json"))) == 2
    restarted = campaign_file_queue(lab.sandbox.root, FileQueueConfig(), "oracles.1.backend")
    assert restarted.results()[REQUEST_ID].measurements == {"Tc_K": 39.0}  # the planted link is skipped
    lab.check_outside_untouched()


# Queue directories -----------------------------------------------------------------------------------------------
def _with_queue(**backend: str) -> dict:
    synthesis = {"kind": "synthesis", "select": {"top_k": 1}, "backend": backend}
    return {"name": "x", "objectives": [{"name": "Tc_K"}], "oracles": [{"kind": "dataset"}, synthesis]}


@pytest.mark.parametrize(
    "inbox",
    [
        ".",
        "",
        "..",
        "../..",
        "../elsewhere",
        "synthesis/../..",
        "/tmp/inbox",
        "store",
        "store/inbox",
        "campaign.json",
        "oracle/synthesis",
        "checkpoints",
        "sbin.log",
        "sbin.log.1",
        "./pool",
    ],
)
def test_a_queue_directory_outside_the_campaign_or_on_its_own_entries_is_refused(inbox: str):
    with pytest.raises(ConfigError, match=r"oracles\.1\.backend\.inbox"):
        parse_config(_with_queue(inbox=inbox))


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ({"inbox": "lab", "outbox": "lab/"}, r"oracles\.1\.backend\.inbox: 'lab' is also oracles\.1\.backend\.outbox"),
        ({"inbox": "lab", "outbox": "lab/out"}, r"oracles\.1\.backend\.inbox: 'lab' and .* are nested"),
        ({"inbox": "lab/in/deeper", "outbox": "lab/in"}, r"oracles\.1\.backend\.inbox: .* are nested"),
    ],
)
def test_queue_directories_that_coincide_or_nest_are_refused(backend: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        parse_config(_with_queue(**backend))


def test_a_queue_directory_linked_outside_the_campaign_is_refused_before_anything_is_created(tmp_path: Path):
    sandbox = Sandbox.make(tmp_path)
    (sandbox.root / "synthesis").symlink_to(sandbox.watched)
    before = snapshot(sandbox.watched)
    with pytest.raises(ConfigError, match=r"oracles\.1\.backend\.outbox: 'synthesis/outbox' resolves to"):
        campaign_file_queue(sandbox.root, FileQueueConfig(), "oracles.1.backend")
    assert snapshot(sandbox.watched) == before


@pytest.mark.parametrize(
    ("link", "target", "inbox", "field"),
    [
        ("synthesis", "store", "synthesis/inbox", "outbox"),  # the default queue, linked into the store
        ("synthesis/inbox", "synthesis/outbox", "synthesis/inbox", "inbox"),  # inbox and outbox one directory
        ("lab", ".", "lab", "inbox"),  # the campaign directory itself
    ],
)
def test_a_queue_directory_linked_onto_the_campaigns_own_entries_or_the_other_queue_is_refused(
    tmp_path: Path, link: str, target: str, inbox: str, field: str
):
    root = tmp_path / "campaign"
    for directory in ("store", "synthesis/outbox"):
        (root / directory).mkdir(parents=True)
    if link == "synthesis":
        (root / "synthesis" / "outbox").rmdir()
        (root / "synthesis").rmdir()
    (root / link).symlink_to((root / target).resolve(), target_is_directory=True)
    with pytest.raises(
        ConfigError,
        match=rf"oracles\.1\.backend\.{field}: '{inbox if field == 'inbox' else 'synthesis/outbox'}' resolves to",
    ):
        campaign_file_queue(root, FileQueueConfig(inbox=inbox), "oracles.1.backend")


def test_a_file_where_a_queue_directory_should_be_is_a_config_error(tmp_path: Path):
    (tmp_path / "synthesis").write_text("not a directory")
    with pytest.raises(ConfigError, match=r"oracles\.1\.backend\.outbox: cannot make .*Not a directory"):
        campaign_file_queue(tmp_path, FileQueueConfig(), "oracles.1.backend")


@pytest.mark.parametrize("inbox", ["..", "."])
def test_sbin_run_refuses_a_queue_directory_outside_the_campaign(tmp_path: Path, inbox: str):
    sandbox = Sandbox.make(tmp_path)
    config = _with_queue(inbox=inbox)
    (sandbox.root / "campaign.yaml").write_text(json.dumps(config))
    before, watched_before = snapshot(sandbox.root), snapshot(sandbox.watched)
    outcome = run_sbin(["run", "campaign.yaml", "--dir", "."], sandbox.root)
    assert outcome.code == 1, outcome
    assert "Traceback" not in outcome.stderr and "oracles.1.backend.inbox" in outcome.stderr
    assert snapshot(sandbox.root) == before and snapshot(sandbox.watched) == watched_before


def test_sbin_run_refuses_a_queue_directory_linked_outside_the_campaign(tmp_path: Path, supercon: pd.DataFrame):
    sandbox = Sandbox.make(tmp_path)
    supercon.iloc[:12][["formula", "Tc_K"]].to_csv(sandbox.root / "pool.csv", index=False)
    config = {
        **_with_queue(),
        "space": {"kind": "pool", "source": "pool.csv"},
        "budget": {"initial": 4, "rounds": 1},
        "policy": {"batch_size": 2},
    }
    (sandbox.root / "campaign.yaml").write_text(json.dumps(config))
    (sandbox.root / "campaign").mkdir()
    (sandbox.root / "campaign" / "synthesis").symlink_to(sandbox.watched)
    watched_before = snapshot(sandbox.watched)
    outcome = run_sbin(["run", "campaign.yaml", "--dir", "campaign"], sandbox.root)
    assert outcome.code == 1, outcome
    assert "Traceback" not in outcome.stderr and "oracles.1.backend.outbox" in outcome.stderr
    assert "outside the campaign directory" in outcome.stderr
    assert snapshot(sandbox.watched) == watched_before


# Inbox entries that are not result files --------------------------------------------------------------------------
def test_a_link_in_the_inbox_to_an_outside_file_is_rejected_without_reading_it(lab: Lab):
    (lab.sandbox.watched / "secret.json").write_text('{"request_id": "TOP-SECRET-42", "status": "unknown"}')
    lab.watched_before = snapshot(lab.sandbox.watched)
    (lab.inbox / "leak.json").symlink_to(lab.sandbox.watched / "secret.json")
    (lab.inbox / "bait.json").symlink_to(lab.bait)
    lab.drop("ok.json", GOOD)
    assert lab.poll()[JOB.job_id].values == {"Tc_K": 39.0}
    reasons = lab.reasons()
    assert not any("TOP-SECRET" in text or "do not touch" in text for text in reasons.values())
    assert set(reasons) == {"leak.json", "bait.json"} and all("symbolic link" in text for text in reasons.values())
    assert (lab.inbox / "rejected" / "leak.json").is_symlink()
    lab.check_outside_untouched()


def test_a_line_break_in_a_file_name_cannot_forge_a_log_line(lab: Lab, caplog: pytest.LogCaptureFixture):
    name = "x.json\n2030-01-01 00:00:00 INFO campaign finished\r.json"
    lab.drop(name, {"request_id": "forged\nline", "status": "completed"})
    with caplog.at_level(logging.WARNING):
        lab.poll()
    messages = [record.getMessage() for record in caplog.records]
    assert messages and not any("\n" in message or "\r" in message for message in messages)
    assert any(repr(name) in message for message in messages)
    (reason,) = lab.reasons().values()
    assert reason.count("\n") == 1 and reason.endswith("\n") and "\r" not in reason
    lab.check_outside_untouched()


def test_a_line_break_in_a_failure_reason_cannot_forge_a_log_line(lab: Lab):
    lab.drop("failed.json", {"request_id": REQUEST_ID, "status": "failed", "failure_reason": "furnace\nINFO all good"})
    outcome = lab.poll()[JOB.job_id]
    assert outcome.status == "failed" and outcome.error == "furnace\\nINFO all good"


@pytest.mark.parametrize("kind", ["directory", "dangling link", "fifo", "oversized"])
def test_an_inbox_entry_that_is_not_a_regular_file_is_moved_aside_without_a_crash_or_a_hang(lab: Lab, kind: str):
    entry = lab.inbox / "odd.json"
    if kind == "directory":
        entry.mkdir()
        (entry / "inside.txt").write_text("kept")
    elif kind == "dangling link":
        entry.symlink_to(lab.sandbox.watched / "missing.json")
    elif kind == "fifo":
        os.mkfifo(entry)
    else:
        entry.write_bytes(b" " * (2 << 20))
    lab.drop("ok.json", GOOD)
    assert lab.poll()[JOB.job_id].values == {"Tc_K": 39.0}  # the campaign carries on
    words = {"directory": "a directory", "dangling link": "a symbolic link", "fifo": "a FIFO", "oversized": "larger"}
    assert words[kind] in lab.reasons()["odd.json"]
    moved = lab.inbox / "rejected" / "odd.json"
    assert moved.is_symlink() if kind == "dangling link" else moved.exists()
    assert not entry.exists() and not entry.is_symlink()
    assert lab.poll()[JOB.job_id].values == {"Tc_K": 39.0}
    lab.check_outside_untouched()


def test_a_fifo_in_the_outbox_or_processed_does_not_block_opening_the_queue(tmp_path: Path):
    lab = _open_lab(tmp_path)
    os.mkfifo(lab.outbox / "odd.json")
    os.mkfifo(lab.inbox / "processed" / "odd.json")
    with deadline(10.0):
        restarted = campaign_file_queue(lab.sandbox.root, FileQueueConfig(), "oracles.1.backend")
    assert REQUEST_ID in restarted.sent()
    lab.check_outside_untouched()


def test_a_link_planted_in_place_of_the_rejected_directory_is_moved_aside(lab: Lab):
    rejected = lab.inbox / "rejected"
    rejected.rmdir()
    rejected.symlink_to(lab.sandbox.watched, target_is_directory=True)
    lab.drop("bad.json", "{not json")
    assert lab.poll() == {}
    lab.check_outside_untouched()
    (aside,) = lab.inbox.glob("rejected.*.aside")
    assert aside.is_symlink() and rejected.is_dir() and not rejected.is_symlink()
    assert "Invalid JSON" in lab.reasons()["bad.json"]


# Result documents ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [True, "12.5", None, [12.5]])
def test_a_measurement_that_is_not_a_json_number_is_rejected_naming_it(lab: Lab, value: object):
    lab.drop("typed.json", {**GOOD, "measurements": {"Tc_K": value}})
    assert lab.poll() == {}
    reason = lab.reasons()["typed.json"]
    assert "measurement 'Tc_K' must be a JSON number" in reason


@pytest.mark.parametrize("text", ["1e39", "-1e39", "1e400", "NaN", "9" * 400])
def test_a_huge_or_non_finite_measurement_fails_the_job(lab: Lab, text: str):
    lab.drop(
        "huge.json", f'{{"request_id": "{REQUEST_ID}", "status": "completed", "measurements": {{"Tc_K": {text}}}}}'
    )
    outcome = lab.poll()[JOB.job_id]
    assert outcome.status == "failed" and "Tc_K" in outcome.error and outcome.values == {}


def test_notes_are_kept_with_the_result_and_bounded(lab: Lab):
    lab.drop("long.json", {**GOOD, "notes": "x" * 2001})
    assert lab.poll() == {} and "notes" in lab.reasons()["long.json"]
    lab.drop("ok.json", {**GOOD, "notes": "pellet cracked; measured on the largest piece"})
    outcome = lab.poll()[JOB.job_id]
    assert outcome.document["notes"] == outcome.provenance["notes"] == "pellet cracked; measured on the largest piece"


def test_a_measured_objective_outside_its_bounds_fails_the_job(tmp_path: Path):
    lab = _open_lab(tmp_path)
    lab.drop("hot.json", {**GOOD, "measurements": {"Tc_K": 250.0}, "notes": "suspicious"})
    objectives = (ObjectiveConfig(name="Tc_K", bounds=(0.0, 200.0)),)
    outcome = ingestible_outcome(lab.poll()[JOB.job_id], objectives)  # what the loop does with every outcome
    assert outcome.status == "failed" and "above its upper bound" in outcome.error
    assert outcome.provenance["notes"] == "suspicious"

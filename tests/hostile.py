"""Harness for the bad-input corpus: run ``sbin`` as a user would and check that it fails well.

Each case runs the real command in a subprocess (``python -m sbin_loop``) under a timeout, inside a sandbox directory
that sits beside a watched sibling directory. ``check_refused`` asserts what every bad input must give:

- a one-line error on stderr (or a JSON error on stdout with ``--json``), the expected exit code, and no traceback;
- the files that were there before (the campaign) byte-identical afterwards;
- nothing created or changed outside the sandbox (the watched sibling stays as it was);
- no hang (the subprocess is killed at the timeout, and the case fails).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_SECONDS = 120.0
"""Longest a refused command may take; a hang fails the case instead of the suite."""


@dataclass(frozen=True)
class Outcome:
    """What one ``sbin`` invocation did."""

    code: int
    stdout: str
    stderr: str


def run_sbin(
    args: list[str], cwd: Path, timeout: float = TIMEOUT_SECONDS, env: dict[str, str] | None = None
) -> Outcome:
    """Run ``python -m sbin_loop ARGS`` in ``cwd``; a run past ``timeout`` seconds is killed and raises."""
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "sbin_loop", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        stdin=subprocess.DEVNULL,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``root`` (links and other entries by their kind)."""
    found: dict[str, str] = {}
    if not root.exists():
        return found
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            found[relative] = f"link:{os.readlink(path)}"
        elif path.is_file():
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif not path.is_dir():
            found[relative] = "special"
    return found


@dataclass
class Sandbox:
    """A working directory for one case, with a watched sibling directory that nothing may touch.

    Attributes:
        root: Where the case runs and may write.
        watched: A sibling of ``root`` holding a bait file; it must be byte-identical after the case.
    """

    root: Path
    watched: Path

    @classmethod
    def make(cls, tmp_path: Path) -> Sandbox:
        root, watched = tmp_path / "work", tmp_path / "watched"
        root.mkdir()
        watched.mkdir()
        (watched / "bait.txt").write_text("do not touch\n")
        return cls(root, watched)


def check_refused(
    sandbox: Sandbox,
    args: list[str],
    *,
    code: int = 1,
    mentions: tuple[str, ...] = (),
    keep: Path | None = None,
    json_output: bool = False,
    timeout: float = TIMEOUT_SECONDS,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Run ``sbin ARGS`` in ``sandbox.root`` and assert that it is refused cleanly.

    Args:
        sandbox: The case's directories.
        args: Command-line arguments after ``sbin``.
        code: Expected exit code (1: user or data error; 2: usage error).
        mentions: Substrings the error message must contain (the field, row or composition it names).
        keep: A directory (a campaign) whose files must be byte-identical afterwards; the whole sandbox root when
            None, except that new files inside it are allowed.
        json_output: The error is expected as a JSON object on stdout (``--json``) instead of a line on stderr.
        timeout: Seconds before the command counts as hung.
        env: Extra environment variables.
    """
    protected = keep if keep is not None else sandbox.root
    before, watched_before = snapshot(protected), snapshot(sandbox.watched)
    outcome = run_sbin(args, sandbox.root, timeout=timeout, env=env)
    text = outcome.stdout + outcome.stderr
    assert outcome.code == code, f"exit {outcome.code}, expected {code}: {text[-2000:]}"
    assert "Traceback" not in text, text[-4000:]
    message = outcome.stdout if json_output else outcome.stderr
    error_lines = [line for line in message.strip().splitlines() if line.strip()]
    assert len(error_lines) == 1, f"expected a one-line error, got: {message[-2000:]}"
    for needle in mentions:
        assert needle in message, f"{needle!r} not in {message!r}"
    after = snapshot(protected)
    if keep is not None:
        assert after == before, "stored files changed"
    else:
        assert {path: after.get(path) for path in before} == before, "existing files changed"
    assert snapshot(sandbox.watched) == watched_before, "something outside the sandbox changed"
    return outcome

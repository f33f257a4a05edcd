"""Detached campaigns: ``sbin daemon start/stop/status``.

``start`` launches ``python -m sbin_loop.daemon CONFIG --dir DIR`` in a new session (it survives the terminal), and
returns once the child holds the campaign lock and has opened the campaign (config, pool and oracles validated), so
bad input is reported by ``start`` itself rather than only in the log. The child logs to ``sbin.log`` (rotated) in
the campaign directory; on SIGTERM or SIGINT it asks the loop to stop at the next step boundary, so the current step
finishes, the round stays resumable and nothing is half-written. ``stop`` sends SIGTERM and waits for the lock to be
released.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sbin_loop.config import load_config
from sbin_loop.locking import CampaignLock, lock_holder
from sbin_loop.logs import LOG_FILE, configure_logging

logger = logging.getLogger(__name__)

DAEMON_OUTPUT = "daemon.out"
"""Where the detached process's own stdout/stderr go (tracebacks of crashes before logging is set up)."""

ERROR_PREFIX = "error: "
"""Start of the one line a detached process writes to its output when it stops on bad input."""

READY_PREFIX = "driving campaign: "
"""Start of the line a detached process writes to its output once it holds the lock and has opened the campaign."""


class DaemonError(RuntimeError):
    """A daemon that could not be started or stopped; the message says why."""


def start_daemon(config: Path, directory: Path, wait_seconds: float = 120.0) -> int:
    """Start a detached campaign process and return its pid once it holds the lock and has opened the campaign.

    A child that holds the lock but is still opening the campaign after ``wait_seconds`` (a large pool being built)
    is left running and its pid returned; what goes wrong after that is in its log.

    Raises:
        DaemonError: If a process already drives the campaign, or the child exits before it is ready (bad input: the
            reason is its one error line).
    """
    directory.mkdir(parents=True, exist_ok=True)
    holder = lock_holder(directory)
    if holder is not None:
        raise DaemonError(f"{directory} is already driven by process {holder}")
    with (directory / DAEMON_OUTPUT).open("ab") as output:
        start = output.tell()
        child = subprocess.Popen(
            [sys.executable, "-m", "sbin_loop.daemon", str(config), "--dir", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            reason = _exit_reason(directory / DAEMON_OUTPUT, start)
            raise DaemonError(f"the campaign process exited with code {child.returncode}: {reason}")
        if lock_holder(directory) == child.pid and _announced_ready(directory / DAEMON_OUTPUT, start):
            return child.pid
        time.sleep(0.1)
    if lock_holder(directory) == child.pid:  # still opening a large pool: it runs; later errors go to its log
        return child.pid
    raise DaemonError(f"the campaign process {child.pid} did not take the lock within {wait_seconds:g} s")


def _announced_ready(output: Path, start: int) -> bool:
    """Whether the child wrote its ready line to ``output`` after byte ``start``."""
    with output.open("rb") as handle:
        handle.seek(start)
        return any(line.startswith(READY_PREFIX.encode()) for line in handle.read().splitlines())


def _exit_reason(output: Path, start: int, max_bytes: int = 65536) -> str:
    """Why a child exited, from what it wrote to ``output`` after byte ``start``.

    A child that failed on bad input writes one ``error: ...`` line (see ``main``); that line is the reason. Anything
    else (a crash) is a bug: its last line is given, with where to read the whole traceback.
    """
    with output.open("rb") as handle:
        handle.seek(max(start, output.stat().st_size - max_bytes))
        lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    errors = [line.removeprefix(ERROR_PREFIX) for line in lines if line.startswith(ERROR_PREFIX)]
    if errors:
        return errors[-1]
    return f"{lines[-1] if lines else 'no output'} (full output in {output})"


def stop_daemon(directory: Path, wait_seconds: float = 600.0) -> int | None:
    """Ask the process driving a campaign to stop after its current step; wait until it has.

    Returns:
        The pid that was stopped, or ``None`` if no process was driving the campaign.

    Raises:
        DaemonError: If it is still running after ``wait_seconds``.
    """
    pid = lock_holder(directory)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if lock_holder(directory) is None:
            return pid
        time.sleep(0.2)
    raise DaemonError(f"process {pid} is still finishing its step after {wait_seconds:g} s; try again later")


def run_campaign_process(config_path: Path, directory: Path) -> int:
    """Body of the detached process: lock, handle signals, run the campaign to its end or a stop request."""
    from sbin_loop.loop import Campaign  # imported here so `sbin daemon stop/status` stay fast

    configure_logging(directory / LOG_FILE, console_level=None)
    config, base_dir = load_config(config_path)
    with CampaignLock(directory):
        campaign = Campaign.from_config(config, directory, base_dir)

        def request_stop(signum: int, _frame: object) -> None:
            logger.info("received signal %d: stopping after the current step", signum)
            campaign.request_stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        logger.info("daemon %d driving campaign %s", os.getpid(), config.name)
        print(f"{READY_PREFIX}{config.name}", flush=True)
        objective = config.policy_objective
        campaign.run(on_round=lambda summary: logger.info("%s", summary.line(objective.name, objective.unit)))
        logger.info("daemon %d exiting: %s", os.getpid(), campaign.stop_reason() or "stop requested")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m sbin_loop.daemon``."""
    parser = argparse.ArgumentParser(description="Drive one sbin campaign in the background.")
    parser.add_argument("config", type=Path)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    from sbin_loop.cli_errors import naming_path, user_error_message  # they import this module: not at the top

    try:
        with naming_path(args.dir):
            return run_campaign_process(args.config, args.dir)
    except Exception as error:
        message = user_error_message(error)
        if message is None:
            raise
        logger.error("%s", message)
        print(f"{ERROR_PREFIX}{message}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())

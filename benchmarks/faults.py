"""Crash-safety benchmark: kill -9 a running campaign many times and count what was lost or launched twice.

A small campaign (80 real SuperCon compositions, replay oracle with latency so kills land inside the oracle phase) is
run once uninterrupted as the reference, then again under ``--kills`` SIGKILLs at seeded random moments, restarting
after each. Printed and written to JSON (``--json``, by default ``benchmarks/results/faults.json``): the kills asked
for and the kills that landed (the campaign may finish before the last ones are due), restarts, the campaign state
at each kill, lost results, duplicate launches, and rounds that differ from the reference (all three must be 0).

    python benchmarks/faults.py --kills 100
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from sbin_loop.data import bundled_path
from sbin_loop.faults import FaultReport, check_invariants, run_uninterrupted, run_with_kills

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "faults.json"


def write_campaign(directory: Path, rounds: int) -> Path:
    """A small, fast campaign config and its pool in ``directory``."""
    pool = directory / "pool.csv"
    pd.read_csv(bundled_path("supercon")).iloc[: 6 + 4 * rounds + 50][["formula", "Tc_K"]].to_csv(pool, index=False)
    config = {
        "name": "faults",
        "seed": 5,
        "space": {"kind": "pool", "source": str(pool)},
        "objectives": [{"name": "Tc_K", "unit": "K"}],
        "model": {"hidden": [32, 32], "epochs": 20, "min_steps": 150, "max_steps": 400, "ensemble_size": 1},
        "policy": {"batch_size": 4, "mc_samples": 32},
        "oracle": {"poll_seconds": 0.05, "latency_seconds": 0.3},
        "budget": {"initial": 6, "rounds": rounds},
        "intervals": {"n_draws": 200},
    }
    path = directory / "faults.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def summary(report: FaultReport, kills_requested: int, command: str) -> dict:
    """JSON-ready figures of a fault run.

    ``ok`` means nothing was lost, launched twice or changed; ``kills`` counts the kills that landed, which may be
    fewer than ``kills_requested`` when the campaign finished first (reported, not a failure).
    """
    return {
        "command": command,
        "kills_requested": kills_requested,
        "kills": report.kills,
        "restarts": report.restarts,
        "states_at_kill": dict(report.states_at_kill),
        "lost_results": len(report.lost_results),
        "duplicate_launches": len(report.duplicate_launches),
        "rounds_differing": len(report.round_differences),
        "details": report.lost_results + report.duplicate_launches + report.round_differences,
        "seconds": round(report.seconds, 1),
        "ok": report.ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument(
        "--rounds",
        type=int,
        help="acquisition rounds of the test campaign (default: one per kill, so it outlasts them)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--max-delay", type=float, default=6.0, help="latest kill after a start, seconds")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="write the figures here (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sbin-faults-") as scratch:
        directory = Path(scratch)
        config = write_campaign(directory, args.rounds or args.kills)
        run_uninterrupted(config, directory / "reference")
        report = run_with_kills(config, directory / "killed", args.kills, args.seed, args.max_delay)
        command = "python benchmarks/faults.py " + " ".join(sys.argv[1:])
        result = summary(check_invariants(directory / "killed", directory / "reference", report), args.kills, command)
    landed = "" if result["kills"] == args.kills else " (the campaign finished before the rest were due)"
    print(f"kills landed {result['kills']} of {args.kills} asked for{landed}, restarts {result['restarts']}, ", end="")
    print(f"{result['seconds']} s")
    print("campaign state at the kills: " + ", ".join(f"{k} x{v}" for k, v in sorted(result["states_at_kill"].items())))
    print(f"lost results {result['lost_results']}, duplicate launches {result['duplicate_launches']}")
    print(f"rounds differing from the uninterrupted run {result['rounds_differing']}")
    print("PASS" if result["ok"] else "FAIL: " + "; ".join(result["details"][:10]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

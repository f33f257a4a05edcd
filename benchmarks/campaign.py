"""Retrospective discovery benchmark: how fast does a campaign find the top 1% (and 5%) of a measured pool?

Protocol (after Liang et al. 2021, npj Comput. Mater. 7:188): each seed is one campaign over the whole pool. Round 0
picks ``--initial`` compositions at random, then rounds of ``--batch`` picks follow until ``--budget`` evaluations;
the oracle replays the pool's measured values.

Every method is a campaign of the product's engine (``sbin_loop.engine.Engine``), built from a campaign config with
the product's defaults, that differs only in its ``surrogate``:

- ``sbin``: the default variational BNN (``surrogate: bnn``), exactly what ``sbin run`` fits and picks with;
- ``gp_ei``: the exact ARD Gaussian process peer (``surrogate: gp``) with the same batch expected improvement;
- ``forest_ei``: the random-forest peer with split-conformal uncertainty (``surrogate: forest``), same policy;
- ``random``: the analytic baseline (``n`` random picks out of ``N`` find on average ``n / N`` of any target set).

A seed's config seed is the benchmark seed, so every method starts from the same random round 0, and each round fits
and picks with the seeds the campaign derives (``sbin_loop.seeds``). The picks' predicted intervals are kept, so the
benchmark also reports how often the picks fell inside the interval predicted for them, and how wide it was.

Example: ``python benchmarks/campaign.py --quick --json out/campaign.json``; the summary is in ``discovery.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from discovery import plot, print_table, summarise

from sbin_loop import __version__
from sbin_loop.campaign.resume import PoolLoader
from sbin_loop.candidates import CandidatePool
from sbin_loop.config import CampaignConfig
from sbin_loop.engine.engine import Engine
from sbin_loop.features.config import FeaturesConfig
from sbin_loop.oracles.dataset import table_values
from sbin_loop.seeds import TRAIN, derive_seed
from sbin_loop.space import FormulaTable, read_formula_table
from sbin_loop.space.pool import composition_key_of
from sbin_loop.stores import ResultDoc

METHODS = {"sbin": "bnn", "gp_ei": "gp", "forest_ei": "forest"}
"""Benchmark method -> the campaign config's ``surrogate``."""


@dataclass(frozen=True)
class Protocol:
    """What every method's campaign shares: the pool, the target and the evaluation schedule."""

    pool: str
    target: str
    formula_column: str
    initial: int
    batch: int
    budget: int
    non_negative: bool


PRODUCT_FRACTIONS = FeaturesConfig().element_fractions
"""Whether a campaign's pool holds the element fractions by default (``--element-fractions``)."""


def campaign_config(
    protocol: Protocol, method: str, seed: int, element_fractions: bool = PRODUCT_FRACTIONS
) -> CampaignConfig:
    """The campaign one method runs on one seed: product defaults, the method's surrogate, a replayed pool.

    ``element_fractions`` sets ``features.element_fractions`` (``--element-fractions``); every method's pool then
    holds the fractions.
    """
    objective = {"name": protocol.target, "goal": "maximize"}
    if protocol.non_negative:
        objective["bounds"] = [0, None]
    return CampaignConfig.model_validate(
        {
            "name": f"discovery-{method}",
            "seed": seed,
            "space": {"kind": "pool", "source": protocol.pool, "formula_column": protocol.formula_column},
            "objectives": [objective],
            "policy": {"kind": "expected_improvement", "batch_size": protocol.batch},
            "oracle": {"kind": "dataset"},
            "budget": {"initial": protocol.initial, "max_evaluations": protocol.budget},
            "surrogate": METHODS[method],
            "features": {"element_fractions": element_fractions},
        }
    )


@dataclass(frozen=True)
class Pool:
    """The pool, cached where worker processes read it, and its measured values by pool row."""

    directory: Path
    feature_names: tuple[str, ...]
    values: np.ndarray

    def load(self) -> CandidatePool:
        """The candidate pool (read from the cache the parent process wrote)."""
        return CandidatePool.load(self.directory, list(self.feature_names))


def build_pool(
    protocol: Protocol, directory: Path, table: FormulaTable | None = None, element_fractions: bool = PRODUCT_FRACTIONS
) -> Pool:
    """Build the campaign's pool once (as ``sbin run`` does) and read each row's measured value from the same table.

    Args:
        protocol: The benchmark's pool, target and schedule.
        directory: Where the pool is cached for the worker processes.
        table: The pool's table with the target column, if already read.
        element_fractions: Whether the pool's inputs hold the element fractions.

    Raises:
        SystemExit: If a composition of the pool has no finite measured value.
    """
    config = campaign_config(protocol, "sbin", 0, element_fractions=element_fractions)
    pool = PoolLoader(config, directory, Path.cwd()).load(False)
    if table is None:
        table = read_formula_table(protocol.pool, protocol.formula_column, (protocol.target,))
    by_key = table_values(table, {protocol.target: protocol.target})
    ids = pool.take(np.arange(len(pool))).ids
    values = np.array([by_key.get(composition_key_of(str(i)), {}).get(protocol.target, np.nan) for i in ids])
    if not np.isfinite(values).all():
        missing = [str(i) for i, v in zip(ids, values, strict=True) if not np.isfinite(v)][:5]
        raise SystemExit(f"--pool: {protocol.target} is missing or not finite for {missing} (and maybe more)")
    return Pool(directory / "pool", tuple(pool.feature_names), values)


@dataclass(frozen=True)
class Job:
    """One method on one seed; ``record`` is where the finished run is kept (``--runs-dir``), if anywhere."""

    method: str
    seed: int
    protocol: Protocol
    pool: Pool
    record: Path | None
    fingerprint: str
    element_fractions: bool = PRODUCT_FRACTIONS


def fingerprint(protocol: Protocol, method: str, seed: int, element_fractions: bool = PRODUCT_FRACTIONS) -> str:
    """Hash of everything that decides a seed's run, so a kept run is reused only for the same product.

    It covers the full campaign config (model and policy defaults included) and the sbin version, except the BNN's
    ``model`` section for a peer surrogate (GP, forest), which never reads it: a change of the BNN's settings re-runs
    sbin's seeds only.
    """
    config = campaign_config(protocol, method, seed, element_fractions=element_fractions).model_dump(mode="json")
    if config["surrogate"] != "bnn":
        config.pop("model")
    document = {"protocol": asdict(protocol), "config": config, "sbin": __version__}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def kept_run(job: Job) -> dict | None:
    """The run kept at ``job.record`` under the same settings, or None (absent, other settings, or unreadable)."""
    if job.record is None or not job.record.exists():
        return None
    try:
        run = json.loads(job.record.read_text())
    except json.JSONDecodeError:
        return None
    return run if run.get("fingerprint") == job.fingerprint else None


def complete_kept_seeds(jobs: list[Job]) -> list[dict]:
    """The kept runs of the seeds that every method has finished (``--kept-only``: summarise, compute nothing)."""
    kept = [(job, kept_run(job)) for job in jobs]
    incomplete = {job.seed for job, run in kept if run is None}
    runs = [run for job, run in kept if job.seed not in incomplete]
    if not runs:
        raise SystemExit("--kept-only: no seed has a kept run of every method under these settings in --runs-dir")
    return runs


def run_seed(job: Job) -> dict:
    """One method on one seed: the evaluated rows in order and per-round wall times (kept if ``job.record``)."""
    run = kept_run(job)
    if run is None:
        run = {**fresh_run(job), "fingerprint": job.fingerprint}
        if job.record is not None:
            partial = job.record.with_suffix(".part")
            partial.write_text(json.dumps(run))
            partial.replace(job.record)
    return run


def fresh_run(job: Job) -> dict:
    """Run one method's campaign on one seed, from its random round 0 to the budget, through the engine.

    Round ``r`` picks with the model fitted after round ``r - 1``'s results, seeded as the campaign seeds it, on the
    results in the order the campaign store returns them (round, then job id), as the fit's folds follow row order.
    """
    torch.set_num_threads(1)
    protocol, started = job.protocol, time.perf_counter()
    pool = job.pool.load()
    config = campaign_config(protocol, job.method, job.seed, element_fractions=job.element_fractions)
    engine = Engine(config, pool)
    available = np.ones(len(pool), dtype=bool)
    evaluated: list[int] = []
    results: list[ResultDoc] = []
    picks: list[dict] = []
    timings: list[dict] = []
    surrogate, index = None, 0
    while len(evaluated) < protocol.budget:
        n = protocol.initial if surrogate is None else min(protocol.batch, protocol.budget - len(evaluated))
        start = time.perf_counter()
        entries = engine.propose(surrogate, available, index, results, n)
        propose_seconds = time.perf_counter() - start
        rows = pool.rows_of([entry.candidate_id for entry in entries])
        for entry in entries:
            row = rows[entry.candidate_id]
            value = float(job.pool.values[row])
            available[row] = False
            evaluated.append(row)
            results.append(_result(config.name, index, entry.candidate_id, entry.formula, protocol.target, value))
            if entry.prediction is not None:
                interval = entry.prediction
                picks.append(
                    {"round": index, "row": row, "value": value, "mean": interval.mean}
                    | {"lower": interval.lower, "upper": interval.upper}
                )
        results.sort(key=lambda result: (result.round, result.job_id))  # the store's order: folds follow it
        timing = {"round": index, "n_train": len(evaluated), "propose": propose_seconds, "fit": 0.0}
        if len(evaluated) < protocol.budget:
            start = time.perf_counter()
            seed = derive_seed(config.seed, index, TRAIN)
            surrogate = engine.fit(results, seed, what=f"seed {job.seed} round {index}").surrogate
            timing["fit"] = time.perf_counter() - start
        timings.append(timing)
        index += 1
    return {
        "method": job.method,
        "seed": job.seed,
        "evaluated": evaluated,
        "timings": timings,
        "picks": picks,
        "seconds": time.perf_counter() - started,
    }


def _result(campaign: str, index: int, candidate: str, formula: str, target: str, value: float) -> ResultDoc:
    return ResultDoc(
        campaign=campaign,
        job_id=f"{campaign}:r{index:04d}:{candidate}",  # the campaign's job id of stage 0
        round=index,
        candidate_id=candidate,
        formula=formula,
        values={target: value},
        oracle="dataset",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", default="bundled:supercon", help="CSV of measured compositions (or bundled:NAME)")
    parser.add_argument("--target", default="Tc_K", help="column of the measured value to maximise")
    parser.add_argument("--formula-column", default="formula")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed ... first-seed + seeds - 1")
    parser.add_argument("--budget", type=int, default=500, help="total evaluations per seed, initial ones included")
    parser.add_argument("--initial", type=int, default=50)
    parser.add_argument(
        "--batch",
        type=int,
        default=50,
        help="picks per round (50: 9 model rounds to 500 keep 20 seeds of 3 methods within 45 min on 2 cores)",
    )
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (one seed of one method each)")
    parser.add_argument("--quick", action="store_true", help="CI size: 2 seeds, 150 evaluations")
    parser.add_argument(
        "--element-fractions",
        action=argparse.BooleanOptionalAction,
        default=PRODUCT_FRACTIONS,
        help="every method's campaign sets features.element_fractions (the pool's inputs hold the element fractions; "
        "default: the product's default, on)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="keep each finished seed here and reuse it when run again with the same config and sbin version",
    )
    parser.add_argument(
        "--kept-only",
        action="store_true",
        help="summarise the seeds of --runs-dir that every method has finished; compute nothing",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--png", type=Path, default=None, help="plot path (default: next to --json)")
    args = parser.parse_args(argv)
    if args.kept_only and args.runs_dir is None:
        parser.error("--kept-only needs --runs-dir")
    unknown = set(args.methods.split(",")) - set(METHODS)
    if unknown:
        parser.error(f"--methods: unknown {sorted(unknown)}; choose from {', '.join(METHODS)}")
    if args.quick:
        args.seeds, args.budget = min(args.seeds, 2), min(args.budget, 150)
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, write JSON and PNG, print the table."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sbin-discovery-") as scratch:
        table = read_formula_table(args.pool, args.formula_column, (args.target,))
        values = table.frame[args.target]
        protocol = Protocol(
            args.pool,
            args.target,
            args.formula_column,
            args.initial,
            args.batch,
            args.budget,
            bool((values.dropna() >= 0).all()),
        )
        pool = build_pool(protocol, Path(scratch), table, args.element_fractions)
        if args.runs_dir is not None:
            args.runs_dir.mkdir(parents=True, exist_ok=True)
        methods = args.methods.split(",")
        jobs = [  # the slowest method first, so the workers finish together
            Job(
                method,
                seed,
                protocol,
                pool,
                args.runs_dir and args.runs_dir / f"{method}_seed{seed}.json",
                fingerprint(protocol, method, seed, args.element_fractions),
                args.element_fractions,
            )
            for method in methods
            for seed in range(args.first_seed, args.first_seed + args.seeds)
        ]
        if args.kept_only:
            runs = complete_kept_seeds(jobs)
        else:
            with ProcessPoolExecutor(max_workers=args.workers) as executor:
                runs = list(executor.map(run_seed, jobs))
    summary = summarise(runs, pool.values, args.initial, args.batch, args.budget)
    summary["settings"] = {
        **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "configs": {
            m: campaign_config(protocol, m, args.first_seed, args.element_fractions).model_dump(mode="json")
            for m in methods
        },
        "sbin": __version__,
    }
    summary["wall_seconds"] = time.perf_counter() - start
    summary["cpu_seconds"] = sum(run.get("seconds", 0.0) for run in runs)
    print_table(summary)
    print(f"{len(runs)} runs on {len(pool.values)} compositions in {summary['wall_seconds']:.0f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
        plot(summary, args.png or args.json.with_suffix(".png"))
    return summary


if __name__ == "__main__":
    main()

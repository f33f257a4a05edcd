"""Retrospective discovery benchmark: how fast does the loop find the top 1% (and 5%) of a measured pool?

Protocol (after Liang et al. 2021, npj Comput. Mater. 7:188): each seed starts from ``--initial`` random compositions,
then rounds of ``--batch`` picks until ``--budget`` evaluations; the oracle replays the pool's measured values.

Methods, on the same seeds, initial sets and descriptors:

- ``sbin``: the campaign's code path in-process: ``BNNSurrogate.fit`` on everything measured, ``draw_pool_scores``
  (posterior draws of the pool cached once per round) and the ``BatchPolicy`` built from a ``PolicyConfig``
  (default qLogEI on the target, batch filled sequentially on the cached draws).
- ``gp_ei``: BoTorch ``SingleTaskGP`` (log1p target for non-negative targets, standardised descriptors, hyperparameters
  warm-started from the previous round, whose fit then runs at most ``--gp-maxiter`` L-BFGS iterations) + expected
  improvement: analytic LogEI screens the pool, then the joint GP posterior of the ``--gp-screen`` best candidates is
  sampled and the batch chosen by the same qLogEI greedy policy.
- ``random``: the analytic baseline; ``n`` random picks out of ``N`` find on average ``n / N`` of any target set.

Reported per method and budget: mean (and std over seeds) fraction of the top-1% and top-5% found; enhancement factor
``EF(n) = f(n) / (n / N)``; acceleration factor ``AF = n_random / n_method`` for the fraction reached at the final
budget (``n_random = f N`` is what random search needs, ``n_method`` the first budget where the mean curve reaches
``f``); per-round wall time (fit, score, select). Targets: ``AF_top1(sbin) >= 10`` and ``sbin >= gp_ei`` at every
budget.

Example: ``python benchmarks/campaign.py --quick --json out/campaign.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError

from sbin_loop.config import ModelConfig, PolicyConfig
from sbin_loop.features import featurize_compositions
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.policies import PoolScores, build_policy, draw_pool_scores
from sbin_loop.space import parse_formula, read_formula_table

METHODS = ("sbin", "gp_ei")

SCREEN_CHUNK = 512
"""Candidates per GP posterior call of the LogEI screen: 0.29 s for 12,596 candidates at 300 results, against 1.03 s
in chunks of 2,048 (one thread); the values are the same."""


@dataclass(frozen=True)
class Settings:
    """Everything a seed's run needs besides the pool."""

    initial: int
    batch: int
    budget: int
    mc_samples: int
    model: ModelConfig
    policy: PolicyConfig
    gp_screen: int
    gp_max_train: int
    gp_maxiter: int


@dataclass(frozen=True)
class Pool:
    """Descriptors and measured values of the benchmark pool."""

    features: np.ndarray
    values: np.ndarray
    transform: str


def load_pool(source: str, target: str, formula_column: str) -> tuple[Pool, list[str]]:
    """Unique compositions with a measured target, featurised with the campaign's descriptors."""
    frame = read_formula_table(source, formula_column, (target,), require_values=True).frame
    frame = frame[np.isfinite(frame[target].to_numpy(dtype=float))].reset_index(drop=True)
    features = featurize_compositions([parse_formula(formula) for formula in frame["formula"]])
    values = frame[target].to_numpy(dtype=float)
    transform = "log1p" if (values >= 0).all() else "none"
    return Pool(features, values, transform), frame["formula"].tolist()


def top_set(values: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the ``ceil(fraction * N)`` largest values."""
    k = max(1, math.ceil(fraction * len(values)))
    return np.argsort(-values, kind="stable")[:k]


class BNNMethod:
    """The campaign's model step: fit the BNN on the measured rows and draw the pool's posterior once per round.

    With ``warm_start_steps`` set, a round's fit continues from the previous round's model, as the campaign loop's,
    except after ``warm_start_rounds`` such rounds in a row.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.previous: BNNSurrogate | None = None
        self.warm_rounds = 0

    def round(self, evaluated: np.ndarray, available: np.ndarray, settings: Settings, seed: int):
        """Fit, then score every available candidate on cached posterior draws (the campaign's ``_pool_scores``)."""
        pool = self.pool
        surrogate = BNNSurrogate(pool.features.shape[1], ("target",), (pool.transform,), settings.model)
        start = time.perf_counter()
        warm_start = self.previous if self.warm_rounds < settings.model.warm_start_rounds else None
        report = surrogate.fit(pool.features[evaluated], pool.values[evaluated, None], seed=seed, warm_start=warm_start)
        self.previous = surrogate
        self.warm_rounds = self.warm_rounds + 1 if report.warm_started else 0
        fitted = time.perf_counter()
        model = BNNModel(surrogate, settings.mc_samples, seed)
        scores = draw_pool_scores(
            model, pool.features[available], pool.features[evaluated], pool.values[evaluated, None], (1.0,)
        )
        return scores, available, fitted - start, time.perf_counter() - fitted


def log_expected_improvement(model, x: torch.Tensor, best_f: float) -> torch.Tensor:
    """BoTorch's analytic LogEI of each row of ``x`` (``n x d``), from the marginals of one joint posterior.

    ``LogExpectedImprovement`` takes ``n x 1 x d`` and so evaluates ``n`` one-point posteriors, each of which copies the
    training inputs (11 of a round's 14 s at 300 results); the marginals of one ``n``-point posterior are the same
    numbers. The formula is BoTorch's own, so the screen stays the textbook baseline.
    """
    from botorch.acquisition.analytic import _log_ei_helper, _scaled_improvement

    posterior = model.posterior(x)  # n x 1 marginals; the joint covariance is never formed
    mean = posterior.mean  # n x 1
    sigma = posterior.variance.clamp_min(1e-12).sqrt()  # n x 1
    u = _scaled_improvement(mean, sigma, best_f, True)
    return (_log_ei_helper(u) + sigma.log()).squeeze(-1)  # n


class GPBaseline:
    """SingleTaskGP + expected improvement, refitted every round from the previous round's hyperparameters."""

    def __init__(self, pool: Pool) -> None:
        x = torch.as_tensor(pool.features, dtype=torch.float64)
        std = x.std(dim=0)
        self.x = (x - x.mean(dim=0)) / torch.where(std > 1e-12, std, torch.ones_like(std))
        self.transform = pool.transform
        self.values = pool.values
        self.state: dict | None = None

    def _targets(self, rows: np.ndarray) -> torch.Tensor:
        y = torch.as_tensor(self.values[rows], dtype=torch.float64).unsqueeze(-1)
        return torch.log1p(y) if self.transform == "log1p" else y

    def round(self, evaluated: np.ndarray, available: np.ndarray, settings: Settings, seed: int):
        """Fit, screen the pool by analytic LogEI, and draw the joint posterior of the best ``gp_screen``."""
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        start = time.perf_counter()
        train = evaluated
        if len(train) > settings.gp_max_train:  # keep the best and a random rest
            ranked = train[np.argsort(-self.values[train])]
            keep = settings.gp_max_train // 2
            rest = np.random.default_rng(seed).choice(ranked[keep:], settings.gp_max_train - keep, replace=False)
            train = np.concatenate([ranked[:keep], rest])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # descriptors are standardised, not scaled to the unit cube
            model = SingleTaskGP(self.x[train], self._targets(train), outcome_transform=Standardize(m=1))
            options = {}
            if self.state is not None:
                model.load_state_dict(self.state, strict=False)
                options = {"options": {"maxiter": settings.gp_maxiter}}
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model), optimizer_kwargs=options)
        self.state = {k: v for k, v in model.state_dict().items() if not k.startswith("outcome_transform")}
        fitted = time.perf_counter()
        best = float(self._targets(evaluated).max())
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jitter added to the joint covariance of near-duplicate compositions
            log_ei = torch.cat(
                [log_expected_improvement(model, chunk, best) for chunk in self.x[available].split(SCREEN_CHUNK)]
            )
            screened = available[torch.topk(log_ei, min(settings.gp_screen, len(available))).indices.numpy()]
            posterior = model.posterior(self.x[screened])
            torch.manual_seed(seed)
            draws = posterior.rsample(torch.Size([settings.mc_samples]))  # S x M x 1
        if self.transform == "log1p":
            draws = torch.expm1(draws)
        observed = torch.as_tensor(self.values[evaluated, None])
        scores = PoolScores(draws, ("target",), observed=observed)
        return scores, screened, fitted - start, time.perf_counter() - fitted


@dataclass(frozen=True)
class Job:
    """One method on one seed; ``record`` is where the finished run is kept (``--runs-dir``), if anywhere."""

    method: str
    seed: int
    pool: Pool
    settings: Settings
    record: Path | None
    fingerprint: str


def fingerprint(settings: Settings, source: str, target: str, method: str) -> str:
    """Hash of everything that decides a seed's run of ``method``, so a kept run is reused only under the same settings.

    The BNN settings do not enter a ``gp_ei`` run, so they are left out of its hash: a new BNN setting is compared with
    the kept GP runs without recomputing them.
    """
    document = {
        "source": source,
        "target": target,
        **{k: v for k, v in vars(settings).items() if k not in ("model", "policy")},
        "policy": settings.policy.model_dump(mode="json"),
    }
    if method != "gp_ei":
        document["model"] = settings.model.model_dump(mode="json")
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
        run = {**fresh_run(job.method, job.seed, job.pool, job.settings), "fingerprint": job.fingerprint}
        if job.record is not None:
            partial = job.record.with_suffix(".part")
            partial.write_text(json.dumps(run))
            partial.replace(job.record)
    return run


def fresh_run(method: str, seed: int, pool: Pool, settings: Settings) -> dict:
    """Run one method on one seed from its random initial set to the budget."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    n = len(pool.values)
    evaluated = rng.choice(n, settings.initial, replace=False)
    policy = build_policy(settings.policy)
    method_state = GPBaseline(pool) if method == "gp_ei" else BNNMethod(pool)
    timings = []
    round_index = 0
    while len(evaluated) < settings.budget:
        round_index += 1
        mask = np.ones(n, dtype=bool)
        mask[evaluated] = False
        available = np.flatnonzero(mask)
        model_seed = seed * 1000 + round_index
        scores, rows, fit_s, score_s = method_state.round(evaluated, available, settings, model_seed)
        start = time.perf_counter()
        selection = policy.select(scores, len(rows), rng)
        select_s = time.perf_counter() - start
        picks = rows[selection.indices][: settings.budget - len(evaluated)]
        evaluated = np.concatenate([evaluated, picks])
        timings.append(
            {"n_train": int(len(evaluated) - len(picks)), "fit": fit_s, "score": score_s, "select": select_s}
        )
    return {"method": method, "seed": seed, "evaluated": evaluated.tolist(), "timings": timings}


def found_counts(runs: list[dict], targets: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """``seeds x budgets``: how many of ``targets`` each run had evaluated after each budget."""
    target_set = set(targets.tolist())
    return np.array([[len(target_set.intersection(run["evaluated"][:b])) for b in budgets] for run in runs])


def curves(runs: list[dict], targets: np.ndarray, budgets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over seeds of the fraction of ``targets`` found after each budget."""
    found = found_counts(runs, targets, budgets) / len(targets)
    return found.mean(axis=0), found.std(axis=0)


def paired_difference(runs: list[dict], targets: np.ndarray, budgets: np.ndarray) -> dict | None:
    """Targets found by sbin minus those by GP-EI, seed by seed, per budget (None without common seeds).

    Both methods start from the same random initial set on a seed, so the per-seed difference removes the luck of
    the draw that the two mean curves share; its standard error says whether a gap at one budget is more than noise.
    """
    by_method = {m: {run["seed"]: run for run in runs if run["method"] == m} for m in ("sbin", "gp_ei")}
    seeds = sorted(set(by_method["sbin"]) & set(by_method["gp_ei"]))
    if not seeds:
        return None
    sbin, gp = (found_counts([by_method[m][s] for s in seeds], targets, budgets) for m in ("sbin", "gp_ei"))
    difference = sbin - gp  # seeds x budgets
    stderr = difference.std(axis=0, ddof=1) / math.sqrt(len(seeds)) if len(seeds) > 1 else np.full(len(budgets), np.nan)
    return {
        "seeds": seeds,
        "mean": difference.mean(axis=0).tolist(),
        "stderr": stderr.tolist(),
        "wins": (difference > 0).sum(axis=0).tolist(),
        "ties": (difference == 0).sum(axis=0).tolist(),
        "losses": (difference < 0).sum(axis=0).tolist(),
    }


def acceleration(mean: np.ndarray, budgets: np.ndarray, n: int) -> float:
    """Evaluations random search needs for the fraction reached at the final budget, over those the method needed."""
    reached = mean[-1]
    if reached <= 0:
        return 0.0
    needed = budgets[int(np.argmax(mean >= reached - 1e-12))]
    return float(reached * n / needed)


def summarise(runs: list[dict], pool: Pool, settings: Settings) -> dict:
    """Per-method curves, factors and timings, plus the target checks."""
    n = len(pool.values)
    budgets = np.arange(settings.initial, settings.budget + 1, settings.batch)
    if budgets[-1] != settings.budget:
        budgets = np.append(budgets, settings.budget)
    tops = {"top1": top_set(pool.values, 0.01), "top5": top_set(pool.values, 0.05)}
    result: dict = {"n_pool": n, "budgets": budgets.tolist(), "n_targets": {k: len(v) for k, v in tops.items()}}
    methods: dict = {"random": {}}
    for key in tops:
        random_mean = budgets / n
        methods["random"][f"fraction_{key}"] = random_mean.tolist()
        methods["random"][f"acceleration_factor_{key}"] = 1.0
    for method in sorted({run["method"] for run in runs}):
        mine = [run for run in runs if run["method"] == method]
        entry: dict = {"seeds": len(mine)}
        for key, targets in tops.items():
            mean, std = curves(mine, targets, budgets)
            entry[f"fraction_{key}"] = mean.tolist()
            entry[f"fraction_{key}_std"] = std.tolist()
            entry[f"enhancement_factor_{key}"] = (mean / (budgets / n)).tolist()
            entry[f"acceleration_factor_{key}"] = acceleration(mean, budgets, n)
        rounds = [t for run in mine for t in run["timings"]]
        entry["round_seconds"] = {
            step: float(np.mean([t[step] for t in rounds])) for step in ("fit", "score", "select")
        }
        entry["round_seconds"]["total"] = sum(entry["round_seconds"].values())
        entry["round_seconds_by_train_size"] = _timing_by_size(rounds)
        methods[method] = entry
    result["methods"] = methods
    paired = paired_difference(runs, tops["top1"], budgets)
    if paired is not None:
        result["paired_top1_sbin_minus_gp_ei"] = paired
    result["targets"] = _targets(methods)
    result["behind_gp_ei"] = _behind(result)
    return result


def _timing_by_size(rounds: list[dict]) -> dict[str, float]:
    sizes = sorted({t["n_train"] for t in rounds})
    return {
        str(s): float(np.mean([t["fit"] + t["score"] + t["select"] for t in rounds if t["n_train"] == s]))
        for s in sizes
    }


def _targets(methods: dict) -> dict:
    checks = {}
    if "sbin" in methods:
        checks["acceleration_top1_at_least_10x"] = methods["sbin"]["acceleration_factor_top1"] >= 10
    if "sbin" in methods and "gp_ei" in methods:
        sbin, gp = np.array(methods["sbin"]["fraction_top1"]), np.array(methods["gp_ei"]["fraction_top1"])
        checks["at_least_gp_ei_at_every_budget"] = bool((sbin >= gp - 1e-12).all())
    return checks


def _behind(summary: dict) -> list[dict]:
    """Budgets at which sbin's mean top-1% curve is below GP-EI's, with the paired gap and whether it exceeds noise.

    A gap counts as significant when the paired mean is more than two standard errors below zero.
    """
    methods = summary["methods"]
    if "sbin" not in methods or "gp_ei" not in methods:
        return []
    sbin, gp = np.array(methods["sbin"]["fraction_top1"]), np.array(methods["gp_ei"]["fraction_top1"])
    paired = summary.get("paired_top1_sbin_minus_gp_ei")
    rows = []
    for i in np.flatnonzero(sbin < gp - 1e-12):
        row = {"budget": summary["budgets"][i], "sbin": float(sbin[i]), "gp_ei": float(gp[i])}
        if paired is not None:
            mean, stderr = paired["mean"][i], paired["stderr"][i]
            row |= {"paired_mean": mean, "paired_stderr": stderr, "significant": bool(mean + 2 * stderr < 0)}
        rows.append(row)
    return rows


def plot(summary: dict, path: Path) -> None:
    """Fraction of top-1% / top-5% found vs evaluations, and per-round wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = np.array(summary["budgets"])
    colors = {method: f"C{i}" for i, method in enumerate(summary["methods"])}  # one colour per method in all panels
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key in zip(axes[:2], ("top1", "top5"), strict=True):
        for method, entry in summary["methods"].items():
            mean = np.array(entry[f"fraction_{key}"])
            label = f"{method} (AF {entry[f'acceleration_factor_{key}']:.1f}x)"
            ax.plot(budgets, mean, label=label, color=colors[method], linestyle="--" if method == "random" else "-")
            if f"fraction_{key}_std" in entry:
                std = np.array(entry[f"fraction_{key}_std"])
                ax.fill_between(budgets, mean - std, mean + std, alpha=0.2, color=colors[method])
        ax.set(xlabel="evaluations", ylabel=f"fraction of {key} found", title=f"{key} ({summary['n_targets'][key]})")
        ax.legend()
    for method, entry in summary["methods"].items():
        if "round_seconds_by_train_size" in entry:
            sizes = entry["round_seconds_by_train_size"]
            axes[2].plot([int(s) for s in sizes], list(sizes.values()), label=method, color=colors[method])
    axes[2].set(xlabel="training-set size", ylabel="seconds per round (fit + score + select)", title="wall time")
    axes[2].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def print_table(summary: dict) -> None:
    """Fraction found at a few budgets, factors, timings and the target checks."""
    budgets = summary["budgets"]
    shown = sorted({0, len(budgets) // 4, len(budgets) // 2, len(budgets) - 1})
    header = "method   " + "".join(f"  top1@{budgets[i]:<5}" for i in shown) + "  AF_top1  AF_top5  s/round"
    print(header)
    for method, entry in summary["methods"].items():
        cells = "".join(f"  {entry['fraction_top1'][i]:<10.3f}" for i in shown)
        seconds = entry.get("round_seconds", {}).get("total", float("nan"))
        print(
            f"{method:<9}{cells}  {entry['acceleration_factor_top1']:<7.1f}  {entry['acceleration_factor_top5']:<7.1f}"
            f"  {seconds:.2f}"
        )
    paired = summary.get("paired_top1_sbin_minus_gp_ei")
    if paired is not None:
        print(f"sbin - gp_ei, top-1% compositions per seed (paired over {len(paired['seeds'])} seeds):")
        for i in shown:
            print(
                f"  at {budgets[i]:<5} {paired['mean'][i]:+7.2f} ± {paired['stderr'][i]:.2f} (standard error); "
                f"{paired['wins'][i]} wins, {paired['ties'][i]} ties, {paired['losses'][i]} losses"
            )
    for name, held in summary["targets"].items():
        print(f"target {name}: {'HOLDS' if held else 'MISSED'}")
    for row in summary.get("behind_gp_ei", []):
        gap = (
            f"; paired {row['paired_mean']:+.2f} ± {row['paired_stderr']:.2f} per seed, "
            + ("more than two standard errors" if row["significant"] else "within two standard errors (noise)")
            if "paired_mean" in row
            else ""
        )
        print(f"  behind gp_ei at {row['budget']}: {row['sbin']:.4f} vs {row['gp_ei']:.4f}{gap}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", default="bundled:supercon", help="CSV of measured compositions (or bundled:NAME)")
    parser.add_argument("--target", default="Tc_K", help="column of the measured value to maximise")
    parser.add_argument("--formula-column", default="formula")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed ... first-seed + seeds - 1")
    parser.add_argument("--budget", type=int, default=500, help="total evaluations per seed, initial ones included")
    parser.add_argument("--initial", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of sbin,gp_ei")
    parser.add_argument(
        "--policy",
        default="expected_improvement",
        help="sbin policy: one rule (e.g. thompson), or a batch split as RULE:COUNT,... (e.g. thompson:5,"
        "expected_improvement:5; counts add up to --batch)",
    )
    parser.add_argument("--mc-samples", type=int, default=64)
    parser.add_argument("--hidden", default="64,64", help="BNN hidden widths")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--min-steps",
        type=int,
        default=1000,
        help="optimiser steps per member at least (200 underfits below 200 results: see benchmarks/README.md)",
    )
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument(
        "--warm-start-steps",
        type=int,
        default=0,
        help="steps per member of a round's fit that continues from the previous round's model (0: every fit fresh)",
    )
    parser.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other BNN setting (a model field of the campaign config), e.g. ensemble_size=5; repeatable",
    )
    parser.add_argument("--gp-screen", type=int, default=256, help="GP candidates kept by analytic LogEI")
    parser.add_argument("--gp-max-train", type=int, default=500, help="GP training rows (best half + random rest)")
    parser.add_argument(
        "--gp-maxiter",
        type=int,
        default=50,
        help="L-BFGS iterations of a warm-started GP fit (the first round's fit runs to convergence)",
    )
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (one seed each)")
    parser.add_argument("--quick", action="store_true", help="CI size: 2 seeds, 100 evaluations")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="keep each finished seed here and reuse it when run again with the same settings (resumes a long run)",
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
    if args.quick:
        args.seeds, args.budget = min(args.seeds, 2), min(args.budget, 100)
    return args


def policy_config(spec: str, batch: int, mc_samples: int) -> PolicyConfig:
    """The sbin policy of ``--policy``: one rule, or ``RULE:COUNT,...`` for a composite batch."""
    try:
        if ":" not in spec:
            return PolicyConfig(kind=spec, batch_size=batch, mc_samples=mc_samples)
        return PolicyConfig(kind="composite", components=_components(spec), batch_size=batch, mc_samples=mc_samples)
    except ValidationError as error:
        raise SystemExit(f"--policy {spec!r}: {error}") from None


def _components(spec: str) -> list[dict]:
    """``RULE:COUNT,...`` as composite-policy components."""
    components = []
    for part in spec.split(","):
        kind, _, count = part.partition(":")
        if not count.strip().isdigit():
            raise SystemExit(f"--policy {spec!r}: {part!r} is not RULE:COUNT (e.g. thompson:5)")
        components.append({"kind": kind.strip(), "count": int(count)})
    return components


def model_options(options: list[str]) -> dict[str, str]:
    """``--model-option FIELD=VALUE`` pairs as a dict (``ModelConfig`` validates and converts the values)."""
    pairs = {}
    for option in options:
        field, sep, value = option.partition("=")
        if not sep or not field:
            raise SystemExit(f"--model-option {option!r}: expected FIELD=VALUE, e.g. ensemble_size=5")
        pairs[field.strip()] = value.strip()
    return pairs


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, write JSON and PNG, print the table."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        model = ModelConfig.model_validate(
            {
                "hidden": tuple(int(w) for w in args.hidden.split(",")),
                "epochs": args.epochs,
                "min_steps": args.min_steps,
                "max_steps": args.max_steps,
                # above 0, a round's fit continues from the previous round's model (the loop's model.warm_start_steps)
                "warm_start_steps": args.warm_start_steps,
                **model_options(args.model_option),
            }
        )
    except ValidationError as error:
        raise SystemExit(f"model settings: {error}") from None
    settings = Settings(
        initial=args.initial,
        batch=args.batch,
        budget=args.budget,
        mc_samples=args.mc_samples,
        model=model,
        policy=policy_config(args.policy, args.batch, args.mc_samples),
        gp_screen=args.gp_screen,
        gp_max_train=args.gp_max_train,
        gp_maxiter=args.gp_maxiter,
    )
    pool, _ = load_pool(args.pool, args.target, args.formula_column)  # after the settings: a typo fails at once
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.runs_dir is not None:
        args.runs_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        Job(
            method,
            seed,
            pool,
            settings,
            args.runs_dir and args.runs_dir / f"{method}_seed{seed}.json",
            fingerprint(settings, args.pool, args.target, method),
        )
        for seed in seeds
        for method in args.methods.split(",")
    ]
    if args.kept_only:
        runs = complete_kept_seeds(jobs)
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as executor:
            runs = list(executor.map(run_seed, jobs))
    summary = summarise(runs, pool, settings)
    summary["settings"] = {
        **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": model.model_dump(mode="json"),
        "transform": pool.transform,
    }
    summary["wall_seconds"] = time.perf_counter() - start
    print_table(summary)
    print(f"{len(runs)} runs on {len(pool.values)} compositions in {summary['wall_seconds']:.0f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
        plot(summary, args.png or args.json.with_suffix(".png"))
    return summary


if __name__ == "__main__":
    main()

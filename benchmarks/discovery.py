"""Summary of the discovery benchmark (``campaign.py``): curves, factors, paired gaps, pick intervals, plot, table.

Reported per method and budget: mean (and std over seeds) fraction of the top 1% and top 5% found; enhancement
factor ``EF(n) = f(n) / (n / N)``; acceleration factor ``AF = n_random / n_method`` for the fraction reached at the
final budget (``n_random = f N`` is what random search needs, ``n_method`` the first budget where the mean curve
reaches ``f``); per-round wall time (fit, propose); and for the model-picked candidates the share inside the interval
predicted for them before they were measured, its mean width and the share of lower bounds below 0.

Target: sbin finds the most of the top 1% at every budget from ``TARGET_FROM`` evaluations on, against every peer.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

TARGET_FROM = 100
"""The first budget at which the target applies: before it, round 0's random picks dominate every method."""

PEERS = ("gp_ei", "forest_ei")


def top_set(values: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the ``ceil(fraction * N)`` largest values."""
    k = max(1, math.ceil(fraction * len(values)))
    return np.argsort(-values, kind="stable")[:k]


def budgets_of(initial: int, batch: int, budget: int) -> np.ndarray:
    """Evaluation counts after round 0 and after each later round."""
    budgets = np.arange(initial, budget + 1, batch)
    return budgets if budgets[-1] == budget else np.append(budgets, budget)


def found_counts(runs: list[dict], targets: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """``seeds x budgets``: how many of ``targets`` each run had evaluated after each budget."""
    target_set = set(targets.tolist())
    return np.array([[len(target_set.intersection(run["evaluated"][:b])) for b in budgets] for run in runs])


def paired_difference(runs: list[dict], targets: np.ndarray, budgets: np.ndarray, peer: str) -> dict | None:
    """Targets found by sbin minus those by ``peer``, seed by seed, per budget (None without common seeds).

    Both methods start from the same random round 0 on a seed, so the per-seed difference removes the luck of the
    draw that the two mean curves share; its standard error says whether a gap at one budget is more than noise.
    """
    by_method = {m: {run["seed"]: run for run in runs if run["method"] == m} for m in ("sbin", peer)}
    seeds = sorted(set(by_method["sbin"]) & set(by_method[peer]))
    if not seeds:
        return None
    sbin, other = (found_counts([by_method[m][s] for s in seeds], targets, budgets) for m in ("sbin", peer))
    difference = sbin - other  # seeds x budgets
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


def pick_intervals(runs: list[dict]) -> dict | None:
    """How the intervals predicted for the model's picks held once the picks were measured (None without picks).

    Misses are split by side, and the misses below are counted again where the measured value is 0 (a composition
    with no superconducting transition in the table): an EI pick is chosen for a high predicted Tc, and a pick that
    turns out not to superconduct at all falls below any interval whose lower bound is above 0.
    """
    picks = [pick for run in runs for pick in run.get("picks", [])]
    if not picks:
        return None
    value, lower, upper = (np.array([pick[key] for pick in picks]) for key in ("value", "lower", "upper"))
    below, above = value < lower, value > upper
    return {
        "n": len(picks),
        "inside": float((~below & ~above).mean()),
        "below": float(below.mean()),
        "above": float(above.mean()),
        "below_measured_zero": float((below & (value == 0)).mean()),
        "measured_zero": float((value == 0).mean()),
        "mean_width": float((upper - lower).mean()),
        "median_width": float(np.median(upper - lower)),
        "lower_below_zero": float((lower < 0).mean()),
    }


def _method_entry(mine: list[dict], tops: dict, budgets: np.ndarray, n: int) -> dict:
    entry: dict = {"seeds": len(mine)}
    for key, targets in tops.items():
        found = found_counts(mine, targets, budgets) / len(targets)
        mean = found.mean(axis=0)
        entry[f"fraction_{key}"] = mean.tolist()
        entry[f"fraction_{key}_std"] = found.std(axis=0).tolist()
        entry[f"enhancement_factor_{key}"] = (mean / (budgets / n)).tolist()
        entry[f"acceleration_factor_{key}"] = acceleration(mean, budgets, n)
    rounds = [t for run in mine for t in run["timings"]]
    entry["round_seconds"] = {step: float(np.mean([t[step] for t in rounds])) for step in ("fit", "propose")}
    entry["round_seconds"]["total"] = sum(entry["round_seconds"].values())
    entry["round_seconds_by_train_size"] = {
        str(s): float(np.mean([t["fit"] + t["propose"] for t in rounds if t["n_train"] == s]))
        for s in sorted({t["n_train"] for t in rounds})
    }
    entry["seconds_per_seed"] = float(np.mean([run.get("seconds", np.nan) for run in mine]))
    entry["pick_intervals"] = pick_intervals(mine)
    return entry


def summarise(runs: list[dict], values: np.ndarray, initial: int, batch: int, budget: int) -> dict:
    """Per-method curves, factors, timings and pick intervals, the paired gaps to each peer and the target check."""
    n = len(values)
    budgets = budgets_of(initial, batch, budget)
    tops = {"top1": top_set(values, 0.01), "top5": top_set(values, 0.05)}
    methods: dict = {"random": {}}
    for key in tops:
        methods["random"][f"fraction_{key}"] = (budgets / n).tolist()
        methods["random"][f"acceleration_factor_{key}"] = 1.0
    for method in sorted({run["method"] for run in runs}):
        methods[method] = _method_entry([run for run in runs if run["method"] == method], tops, budgets, n)
    result: dict = {
        "n_pool": n,
        "budgets": budgets.tolist(),
        "n_targets": {k: len(v) for k, v in tops.items()},
        "methods": methods,
    }
    paired = {peer: paired_difference(runs, tops["top1"], budgets, peer) for peer in PEERS}
    result["paired_top1_sbin_minus"] = {peer: gap for peer, gap in paired.items() if gap is not None}
    result["behind"] = behind(result)
    result["targets"] = {
        f"most_top1_from_{TARGET_FROM}_against_every_peer": "sbin" in methods
        and not any(row["budget"] >= TARGET_FROM for row in result["behind"])
        and all(peer in methods for peer in PEERS),
        "acceleration_top1_at_least_10x": bool(methods.get("sbin", {}).get("acceleration_factor_top1", 0) >= 10),
    }
    return result


def behind(summary: dict) -> list[dict]:
    """Every (peer, budget) at which sbin's mean top-1% curve is below the peer's or random's, with the paired gap.

    A gap counts as significant when the paired mean is more than two standard errors below zero.
    """
    methods = summary["methods"]
    if "sbin" not in methods:
        return []
    sbin = np.array(methods["sbin"]["fraction_top1"])
    rows = []
    for peer in (*PEERS, "random"):
        if peer not in methods:
            continue
        other = np.array(methods[peer]["fraction_top1"])
        paired = summary.get("paired_top1_sbin_minus", {}).get(peer)
        for i in np.flatnonzero(sbin[1:] < other[1:] - 1e-12) + 1:  # round 0 is random for every method
            row = {"peer": peer, "budget": summary["budgets"][i], "sbin": float(sbin[i]), peer: float(other[i])}
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
    axes[2].set(xlabel="evaluations so far", ylabel="seconds per round (fit + propose)", title="wall time, 1 thread")
    axes[2].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def print_table(summary: dict) -> None:
    """Fraction found at each budget, factors, timings, pick intervals, paired gaps and the target check."""
    budgets = summary["budgets"]
    print("method     " + "".join(f"{b:>7}" for b in budgets) + "  AF_top1  AF_top5  s/round")
    for method, entry in summary["methods"].items():
        cells = "".join(f"{value:>7.3f}" for value in entry["fraction_top1"])
        seconds = entry.get("round_seconds", {}).get("total", float("nan"))
        print(
            f"{method:<11}{cells}  {entry['acceleration_factor_top1']:<7.1f}  {entry['acceleration_factor_top5']:<7.1f}"
            f"  {seconds:.1f}"
        )
    for method, entry in summary["methods"].items():
        stats = entry.get("pick_intervals")
        if stats:
            print(
                f"{method}: {stats['inside']:.1%} of {stats['n']} picks inside their 95% interval; mean width "
                f"{stats['mean_width']:.1f}, median {stats['median_width']:.1f}; "
                f"lower < 0: {stats['lower_below_zero']:.1%}; below {stats['below']:.1%} (measured 0: "
                f"{stats['below_measured_zero']:.1%}), above {stats['above']:.1%}"
            )
    for peer, paired in summary.get("paired_top1_sbin_minus", {}).items():
        gaps = ", ".join(
            f"{b}: {m:+.1f} ± {s:.1f}" for b, m, s in zip(budgets, paired["mean"], paired["stderr"], strict=True)
        )
        print(f"sbin - {peer}, top-1% found per seed over {len(paired['seeds'])} seeds (± standard error): {gaps}")
    for name, held in summary["targets"].items():
        print(f"target {name}: {'HOLDS' if held else 'MISSED'}")
    for row in summary["behind"]:
        noise = ""
        if "paired_mean" in row:
            noise = "more than two standard errors" if row["significant"] else "within two standard errors (noise)"
        print(f"  behind {row['peer']} at {row['budget']}: {row['sbin']:.4f} vs {row[row['peer']]:.4f} {noise}")

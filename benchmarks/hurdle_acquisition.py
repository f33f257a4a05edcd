"""What expected improvement picks when the model's functions carry the probability of Tc = 0, and when they do not.

From ``model.boosted_input_rows`` (1,000) results of a bounded objective on, sbin fits a classifier of values at the
bound beside its networks (``sbin_loop.model.floor_mass``), and the function draws that acquisition scores are at the
bound with its probability. This benchmark measures what that does to a round's picks at those sizes: for each
training-set size and seed, ``ModelConfig()`` is fitted to that many random rows of the bundled SuperCon split (Tc on
``[0, inf)``, a campaign's default inputs), every other composition is the pool, and the product's policy
(each acquisition rule of ``--policies``, ``PolicyConfig()`` defaults otherwise, through ``draw_pool_scores`` and
``BatchPolicy`` as a campaign round calls them) picks a batch twice from the same fit: with the classifier's mass in
the functions (the default) and with the networks' functions alone. The two batches differ only in that; the fit, its
weight draws and the incumbent (the best training value) are shared.

Reported per rule and setting, mean over seeds: the share of picks measured at 0 K, the mean measured Tc of the
picks, how many beat the incumbent, and how many are in the top 1% of the whole split.

Usage: ``python benchmarks/hurdle_acquisition.py [--sizes 1000,3000] [--seeds 3] [--batch 50] [--policies ...]
[--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from model_accuracy import supercon_task

from sbin_loop.model.boosted_inputs import BoostedInputs
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.policies.batch import BatchPolicy
from sbin_loop.policies.config import PolicyConfig
from sbin_loop.policies.scoring import draw_pool_scores

POLICIES = ("expected_improvement", "noisy_expected_improvement", "upper_confidence_bound", "thompson", "greedy")
"""The model-based rules that pick by value (``uncertainty`` picks by spread, which the mass also changes)."""

SETTINGS = ("functions_with_mass", "network_functions")
"""The default (function draws at 0 K with the classifier's probability) and the networks' functions alone."""


def picks(
    policy: str,
    surrogate: BNNSurrogate,
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    pool: np.ndarray,
    batch: int,
    with_mass: bool,
) -> np.ndarray:
    """The pool rows one round of ``expected_improvement`` picks, with or without the classifier in the functions."""
    config = PolicyConfig(kind=policy, batch_size=batch)
    kept = surrogate.floor_mass
    if not with_mass:
        surrogate.floor_mass = BoostedInputs.empty(surrogate.n_outputs)
    try:
        model = BNNModel(surrogate, config.mc_samples, seed=1)
        scores = draw_pool_scores(model, x[pool], x[train], y[train, None], (1.0,))
    finally:
        surrogate.floor_mass = kept
    selection = BatchPolicy(config).select(scores, len(pool), np.random.default_rng(3))
    return pool[np.asarray(selection.indices, dtype=np.int64)]


def round_picks(
    x: np.ndarray,
    y: np.ndarray,
    bounds: tuple,
    fractions: tuple[int, ...],
    size: int,
    seed: int,
    policies: list[str],
    batch: int,
) -> list[dict]:
    """Fit ``ModelConfig()`` to ``size`` random rows (seeded) and score each rule's batch with and without the mass."""
    order = np.random.default_rng(2000 + seed).permutation(len(y))
    train, pool = order[:size], order[size:]
    start = time.perf_counter()
    surrogate = BNNSurrogate(x.shape[1], ("Tc_K",), ("none",), ModelConfig(), (bounds,), fractions)
    surrogate.fit(x[train], y[train, None], seed=seed)
    fit_seconds = time.perf_counter() - start
    if not any(surrogate.floor_mass.fitted):
        raise SystemExit(f"{size} rows, seed {seed}: no classifier was fitted; use sizes from 1,000")
    incumbent, top1 = float(y[train].max()), float(np.quantile(y, 0.99))
    rows = []
    for policy in policies:
        for setting in SETTINGS:
            chosen = y[picks(policy, surrogate, x, y, train, pool, batch, setting == SETTINGS[0])]
            rows.append(
                {
                    "policy": policy,
                    "setting": setting,
                    "n_train": size,
                    "seed": seed,
                    "n_picked": len(chosen),
                    "share_at_0K": float(np.mean(chosen == 0)),
                    "mean_tc": float(chosen.mean()),
                    "above_incumbent": int(np.sum(chosen > incumbent)),
                    "top1_found": int(np.sum(chosen >= top1)),
                    "fit_seconds": fit_seconds,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000", help="training-set sizes (from 1,000 the hurdle is fitted)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--policies", default=",".join(POLICIES), help="acquisition rules, comma-separated")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = supercon_task(False, 0, None, True)
    x, y = task.features, task.target
    top1 = np.quantile(y, 0.99)
    runs = []
    for size in (int(value) for value in args.sizes.split(",")):
        for seed in range(args.seeds):
            for row in round_picks(
                x, y, task.bounds, task.fraction_inputs, size, seed, args.policies.split(","), args.batch
            ):
                runs.append(row)
                print(
                    f"n={size:<5} seed {seed} {row['policy']:<27} {row['setting']:<20} "
                    f"at 0 K {row['share_at_0K']:.2f}  mean Tc {row['mean_tc']:5.1f} K  "
                    f"above incumbent {row['above_incumbent']:2d}  top 1% {row['top1_found']:2d}  "
                    f"(fit {row['fit_seconds']:.0f} s)",
                    flush=True,
                )
    summary = {}
    for size in sorted({row["n_train"] for row in runs}):
        for policy in args.policies.split(","):
            for setting in SETTINGS:
                rows = [r for r in runs if (r["n_train"], r["policy"], r["setting"]) == (size, policy, setting)]
                key = f"{policy}/{setting}@{size}"
                summary[key] = {
                    name: float(np.mean([r[name] for r in rows]))
                    for name in ("share_at_0K", "mean_tc", "above_incumbent", "top1_found")
                }
                print(f"{key:<60} " + "  ".join(f"{k} {v:.3f}" for k, v in summary[key].items()))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "batch": args.batch,
                    "seeds": args.seeds,
                    "top1_threshold_K": float(top1),
                    "runs": runs,
                    "summary": summary,
                },
                handle,
                indent=1,
            )


if __name__ == "__main__":
    main()

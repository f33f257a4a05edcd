"""How the BNN's KL weight trades accuracy for calibration on the full SuperCon Tc split (a probe, not a protocol).

Trains the product's ``BNNSurrogate`` (``ModelConfig()`` defaults but ``kl_weight``) on all but a fixed 2,000-row
holdout of the bundled SuperCon split, with the element-fraction inputs (``--element-fractions``) and Tc on ``[0,
inf)``, and prints MAE, 95% coverage and mean width on the holdout for each weight, held constant (``kl_rows:
None``). The default weight, 0.1, was chosen on 30-120 rows and falls above them (``ModelConfig.kl_rows``); this
shows what a constant weight does at 10^4.

Usage: ``PYTHONPATH=. python benchmarks/kl_weight_probe.py --weights 0.1,0.01,0.001``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sbin_loop.model.config import ModelConfig
from sbin_loop.model.sites import formula_inputs
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.space import read_formula_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="0.1,0.01,0.001", help="comma-separated kl_weight values")
    parser.add_argument("--holdout", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=12345, help="seed of the holdout permutation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    frame = read_formula_table("bundled:supercon", value_columns=("Tc_K",)).frame
    x, y = formula_inputs(frame["formula"], True), frame["Tc_K"].to_numpy(float)
    order = np.random.default_rng(args.seed).permutation(len(y))
    test, train = order[: args.holdout], order[args.holdout :]
    for weight in (float(value) for value in args.weights.split(",")):
        surrogate = BNNSurrogate(
            x.shape[1], ("Tc_K",), ("none",), ModelConfig(kl_weight=weight, kl_rows=None), ((0.0, None),)
        )
        start = time.perf_counter()
        surrogate.fit(x[train], y[train, None], seed=0)
        draws = surrogate.predictive_draws(x[test], 500, seed=1).numpy()[..., 0]  # S x n_test
        lower, upper = np.quantile(draws, [0.025, 0.975], axis=0)
        inside = ((y[test] >= lower) & (y[test] <= upper)).mean()
        print(
            f"kl_weight {weight}: MAE {np.abs(np.median(draws, axis=0) - y[test]).mean():.3f} K, 95% coverage "
            f"{inside:.3f}, mean width {(upper - lower).mean():.1f} K ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()

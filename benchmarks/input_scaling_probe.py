"""Standardised against quantile-scaled descriptors on SuperCon Tc, by training-set size (a probe, not a protocol).

Trains the product's ``BNNSurrogate`` (``ModelConfig()`` defaults, default composition inputs, Tc on ``[0, inf)``)
on disjoint training sets of each size drawn from all but a fixed 2,000-row holdout of the bundled SuperCon split
(``holdout.py``),
once with ``quantile_rows: 1`` (always quantile-scaled) and once with ``quantile_rows: null`` (always standardised),
and prints MAE of the median, 95% coverage, mean width and CRPS on the holdout. ``ModelConfig.quantile_rows`` was
chosen from its output.

Usage: ``PYTHONPATH=. python benchmarks/input_scaling_probe.py --rows 120,200,1000 --sets 2``.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.holdout import fit_and_score, supercon_holdout
from sbin_loop.model.config import ModelConfig

SETTINGS = {"quantile": 1, "standardise": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="30,120,200,300,1000,3000", help="comma-separated training-set sizes")
    parser.add_argument("--sets", type=int, default=2, help="disjoint training sets per size")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the holdout permutation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y, test, pool = supercon_holdout(args.seed, element_fractions=False)
    for n_rows in (int(value) for value in args.rows.split(",")):
        for index in range(min(args.sets, len(pool) // n_rows)):
            train = pool[index * n_rows : (index + 1) * n_rows]
            for name, quantile_rows in SETTINGS.items():
                scores = fit_and_score(ModelConfig(quantile_rows=quantile_rows), x, y, train, test)
                print(f"{n_rows} rows, set {index}, {name}: {scores}", flush=True)


if __name__ == "__main__":
    main()

"""What the boosted-tree inputs do at a given training size on the fixed SuperCon holdout (a probe, not a protocol).

Trains the product's ``BNNSurrogate`` with ``ModelConfig()`` defaults and with ``boosted_input_rows: null`` on the
same rows of the bundled SuperCon split outside a fixed 2,000-row holdout (``holdout.py``; the default inputs, Tc on
``[0, inf)``) and prints MAE, 95% coverage, mean width and CRPS on the holdout for each. Training sets of ``n`` rows
are the ``k``-th disjoint block of the remaining rows (``--sets``), the whole pool when ``n`` is larger than it.

Usage: ``PYTHONPATH=. python benchmarks/boosted_inputs_probe.py --rows 1000,3000,10896 --sets 2 --seed 0``.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.holdout import fit_and_score, supercon_holdout
from sbin_loop.model.config import ModelConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,3000,10896", help="comma-separated training sizes")
    parser.add_argument("--sets", type=int, default=1, help="disjoint training sets per size (as the pool allows)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fits")
    parser.add_argument("--holdout-seed", type=int, default=12345, help="seed of the holdout permutation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y, test, pool = supercon_holdout(args.holdout_seed, element_fractions=True)
    for n in (int(value) for value in args.rows.split(",")):
        for k in range(min(args.sets, max(1, len(pool) // n))):
            train = pool[k * n : (k + 1) * n]
            for name, config in (("boosted", ModelConfig()), ("plain", ModelConfig(boosted_input_rows=None))):
                scores = fit_and_score(config, x, y, train, test, seed=args.seed)
                print(f"{len(train)} rows, set {k}, {name}: {scores}", flush=True)


if __name__ == "__main__":
    main()

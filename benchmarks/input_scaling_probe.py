"""Two input choices on SuperCon Tc, by training-set size (a probe, not a protocol).

Trains the product's ``BNNSurrogate`` (Tc on ``[0, inf)``) on disjoint training sets of each size drawn from all but
a fixed 2,000-row holdout of the bundled SuperCon split (``holdout.py``) and prints MAE of the median, 95% coverage,
mean width and CRPS on the holdout, for each setting of one choice:

- ``--compare scaling`` (the default): the composition descriptors, once with ``quantile_rows: 1`` (always
  quantile-scaled) and once with ``quantile_rows: null`` (always standardised). ``ModelConfig.quantile_rows`` was
  chosen from its output.
- ``--compare fractions``: ``ModelConfig()`` defaults, with the element fractions after the composition descriptors
  as the product takes them (unscaled below ``quantile_rows``, ``BNNSurrogate``'s ``fraction_inputs``), with them
  scaled like every descriptor, and without them. The product's default inputs were chosen from its output.

Usage: ``PYTHONPATH=. python benchmarks/input_scaling_probe.py [--compare fractions] --rows 120,200,1000 --sets 2``
(``--first-set`` skips sets already run).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.holdout import fit_and_score, supercon_holdout
from sbin_loop.model.config import ModelConfig

SCALING = {"quantile": 1, "standardise": None}
"""``--compare scaling``: ``quantile_rows`` of each setting (element fractions off)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="30,120,200,300,1000,3000", help="comma-separated training-set sizes")
    parser.add_argument("--sets", type=int, default=2, help="disjoint training sets per size")
    parser.add_argument("--first-set", type=int, default=0, help="index of the first training set of each size")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the holdout permutation")
    parser.add_argument("--compare", choices=("scaling", "fractions"), default="scaling", help="the choice to probe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.compare == "scaling":
        x, y, test, pool = supercon_holdout(args.seed, element_fractions=False)
        settings = {name: (x, ModelConfig(quantile_rows=rows), ()) for name, rows in SCALING.items()}
    else:
        with_fractions, y, test, pool = supercon_holdout(args.seed, element_fractions=True)
        without = supercon_holdout(args.seed, element_fractions=False)[0]
        settings = {
            "with fractions": (with_fractions, ModelConfig(), None),
            "fractions scaled": (with_fractions, ModelConfig(), ()),
            "without": (without, ModelConfig(), ()),
        }
    for n_rows in (int(value) for value in args.rows.split(",")):
        for index in range(args.first_set, min(args.first_set + args.sets, len(pool) // n_rows)):
            train = pool[index * n_rows : (index + 1) * n_rows]
            for name, (x, config, fractions) in settings.items():
                scores = fit_and_score(config, x, y, train, test, fractions)
                print(f"{n_rows} rows, set {index}, {name}: {scores}", flush=True)


if __name__ == "__main__":
    main()

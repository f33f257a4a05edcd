"""What the boosted-tree inputs do at a given training size on the fixed SuperCon holdout (a probe, not a protocol).

Trains the product's ``BNNSurrogate`` with ``ModelConfig()`` defaults and with ``boosted_input_rows: null`` on the
same rows of the bundled SuperCon split outside a fixed 2,000-row holdout (``holdout.py``; the default inputs, Tc on
``[0, inf)``) and prints MAE, 95% coverage, mean width and CRPS on the holdout for each. Training sets of ``n`` rows
are the ``k``-th disjoint block of the remaining rows (``--sets``), the whole pool when ``n`` is larger than it.

Usage: ``PYTHONPATH=. python benchmarks/boosted_inputs_probe.py --rows 1000,3000,10896 --sets 2 --seed 0``.
"""

from __future__ import annotations

from benchmarks.holdout import fit_and_score, probe_setup, training_sets
from sbin_loop.model.config import ModelConfig


def main() -> None:
    args, x, y, test, pool = probe_setup(__doc__.splitlines()[0], "1000,3000,10896", 1)
    for _, k, train in training_sets(pool, args.rows, args.sets):
        for name, config in (("boosted", ModelConfig()), ("plain", ModelConfig(boosted_input_rows=None))):
            scores = fit_and_score(config, x, y, train, test, seed=args.seed)
            print(f"{len(train)} rows, set {k}, {name}: {scores}", flush=True)


if __name__ == "__main__":
    main()

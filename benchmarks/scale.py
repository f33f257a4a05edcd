"""Scale benchmark: featurisation vs matminer, a full scoring pass of 10^6 perovskites, a 10^7 stream.

Usage::

    PYTHONPATH=. python benchmarks/scale.py --threads 2 --json scale.json

Stages (each printed, all written to ``--json``):

1. Dense float32 matmul FLOP/s of this machine (torch), the hardware reference.
2. Composition featurisation of the same ``--n-featurize`` SuperCon formulas by sbin (from formula strings)
   and by matminer (``ElementProperty.from_preset("magpie")`` + ``Stoichiometry`` on pymatgen compositions,
   parsing not timed); largest absolute difference of the values.
3. Scoring ``--n-score`` perovskite candidates streamed from ``SPACE``: enumerate + rules + descriptors +
   ``--draws`` posterior function draws + Monte Carlo expected improvement over the best training value, keeping the
   top 10. The model is a default ``BNNSurrogate`` trained (before the timing starts) on the O-vacancy formation
   energies of the bundled Emery-Wolverton table for the single-species ABO3 members of ``SPACE`` (physical site
   assignment), with the descriptors the space computes, so the top pick and its EI mean something. Model FLOP/s is
   reported against stage 1.
4. Streaming ``--n-stream`` candidates the same way (``--stream-model`` to include the model; without it,
   enumerate + rules + descriptors only), showing that memory stays bounded.
5. With ``--campaign-round N`` (and then only stages 1 and 5): one campaign round's pool, scoring and selection on
   ``N`` perovskites, through the loop's own code: the pool stored in chunks (``CandidatePool.write_chunks``), a
   default-architecture BNN trained on 200 of them (a synthetic target), then screening to the shortlist
   (``screen`` with the loop's ``draw_pool_scores`` on the round's ``BNNModel``) and ``BatchPolicy.select`` of
   an expected-improvement batch of 10 with ``--draws`` posterior functions.

Candidates carry the element fractions after their composition descriptors, as a campaign's do by default
(``--no-element-fractions`` leaves them out).

Peak memory is the process's peak resident set size after each stage (it never decreases, so the stage-3
figure bounds scoring and the stage-4 figure shows whether streaming ten times more candidates raised it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Composition

from sbin_loop.candidates import CandidatePool, chunk_features, pool_feature_names
from sbin_loop.features import featurize_formulas, featurize_fractions, fraction_columns
from sbin_loop.features.config import FeaturesConfig
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.policies import BatchPolicy, draw_pool_scores
from sbin_loop.policies.config import PolicyConfig
from sbin_loop.policies.screening import chunk_size, screen
from sbin_loop.space import PerovskiteSpace, formula_fractions, read_formula_table
from sbin_loop.space.chunks import CandidateChunk
from sbin_loop.space.config import PerovskiteSpaceConfig
from sbin_loop.space.pool import composition_key_of

SPACE = PerovskiteSpaceConfig(
    a_site=("Na", "K", "Rb", "Ca", "Sr", "Ba", "La", "Ce", "Pr", "Nd", "Sm", "Gd", "Bi", "Pb"),
    b_site=(
        *("Mg", "Al", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn"),
        *("Ga", "Zr", "Nb", "Mo", "Ru", "Sn", "Hf", "Ta", "W", "In", "Sb", "Ir"),
    ),
    fraction_denominator=10,
    a_deficiency=(0.0, 0.05),
    anion_deficiency=(0.0, 0.0625, 0.125, 0.1875, 0.25),
)
"""A space of about 2.1 x 10^7 enumerated perovskites, about 1.3 x 10^7 of which pass the rules."""


def peak_memory_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_flops(size: int = 2048, repeats: int = 10) -> float:
    """Best dense float32 matmul rate (FLOP/s) over ``repeats`` products of ``size x size`` matrices."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def featurize_vs_matminer(n: int) -> dict[str, float]:
    """Time sbin and matminer on the same ``n`` SuperCon formulas and compare values."""
    from matminer.featurizers.composition import ElementProperty, Stoichiometry

    formulas = read_formula_table("bundled:supercon").frame["formula"].tolist()[:n]
    start = time.perf_counter()
    ours = featurize_formulas(formulas)
    sbin_seconds = time.perf_counter() - start
    compositions = [Composition(formula) for formula in formulas]
    magpie, stoichiometry = ElementProperty.from_preset("magpie"), Stoichiometry()
    start = time.perf_counter()
    theirs = np.array([magpie.featurize(c) + stoichiometry.featurize(c) for c in compositions], dtype=np.float64)
    matminer_seconds = time.perf_counter() - start
    exact = featurize_fractions(*formula_fractions(formulas), dtype=np.float64)
    return {
        "n_formulas": len(formulas),
        "sbin_seconds": sbin_seconds,
        "matminer_seconds": matminer_seconds,
        "featurize_speedup_vs_matminer": matminer_seconds / sbin_seconds,
        "max_abs_difference_float64": float(np.abs(exact - theirs).max()),
        "max_abs_difference_float32_output": float(np.abs(ours - theirs).max()),
    }


def trained_vacancy_model(
    config: PerovskiteSpaceConfig, fractions: bool
) -> tuple[BNNSurrogate, float, dict[str, float]]:
    """A default BNN trained on the Emery-Wolverton O-vacancy energies of the single-species ABO3 members of a space.

    Returns:
        The model, the best (highest) training value as the EI incumbent, and what the fit did.
    """
    pure = PerovskiteSpace(
        config.model_copy(
            update={"max_species_a": 1, "max_species_b": 1, "a_deficiency": (0.0,), "anion_deficiency": (0.0,)}
        )
    )
    table = read_formula_table(
        "bundled:emery_wolverton", value_columns=("e_form oxygen",), where={"is_lowest_ehull_assignment": True}
    )
    energies = dict(zip(table.frame["composition_key"], table.frame["e_form oxygen"], strict=True))
    features, targets = [], []
    for block in pure.chunks():
        keys = [composition_key_of(str(candidate)) for candidate in block.ids]
        rows = [row for row, key in enumerate(keys) if key in energies]
        features.append(chunk_features(block.take(np.asarray(rows, dtype=np.int64)), fractions))
        targets.extend(energies[keys[row]] for row in rows)
    x, y = np.concatenate(features), np.asarray(targets, dtype=np.float64)[:, None]
    names = pool_feature_names(pure.extra_names, fractions)
    model = BNNSurrogate(x.shape[1], ("Ef_vac_O",), ("none",), ModelConfig(), fraction_inputs=fraction_columns(names))
    report = model.fit(x, y, seed=0)
    return model.eval(), float(y.max()), {"n_train": report.n_train, "fit_seconds": report.seconds}


def score_stream(
    space: PerovskiteSpace,
    n: int,
    draws: int,
    with_model: bool,
    chunk: int,
    model: BNNSurrogate,
    incumbent: float,
    fractions: bool,
) -> dict[str, float]:
    """Stream ``n`` candidates: descriptors, posterior draws and MC expected improvement over ``incumbent``."""
    n_features = len(pool_feature_names(space.extra_names, fractions))
    weight_sets = model.draw_weight_sets(draws, seed=0)
    timings = dict.fromkeys(("enumerate", "featurize", "draws", "acquisition"), 0.0)
    top_ids, top_values = np.array([], dtype=np.dtypes.StringDType()), np.array([])
    seen = 0
    stream = space.chunks(chunk)
    start = time.perf_counter()
    while seen < n:
        tick = time.perf_counter()
        block = next(stream, None)
        if block is None:
            break
        block = block.take(slice(0, n - seen))
        timings["enumerate"] += time.perf_counter() - tick
        tick = time.perf_counter()
        features = chunk_features(block, fractions)
        timings["featurize"] += time.perf_counter() - tick
        if with_model:
            tick = time.perf_counter()
            samples = model.to_target_units(model.evaluate(features, weight_sets))[..., 0]  # S x n
            timings["draws"] += time.perf_counter() - tick
            tick = time.perf_counter()
            improvement = torch.clamp(samples - incumbent, min=0).mean(dim=0).numpy()
            pool_ids = np.concatenate([top_ids, block.ids])
            pool_values = np.concatenate([top_values, improvement])
            best = np.argsort(-pool_values)[:10]
            top_ids, top_values = pool_ids[best], pool_values[best]
            timings["acquisition"] += time.perf_counter() - tick
        seen += len(block)
    seconds = time.perf_counter() - start
    widths = (n_features, *ModelConfig().hidden, 1)
    flops = 2 * sum(a * b for a, b in itertools.pairwise(widths)) * draws * seen
    return {
        "n_candidates": seen,
        "seconds": seconds,
        "candidates_per_second": seen / seconds,
        **{f"{stage}_seconds": value for stage, value in timings.items()},
        "model_flops_per_second": flops / timings["draws"] if with_model and timings["draws"] else 0.0,
        "top_candidate": str(top_ids[0]) if len(top_ids) else "",
        "top_expected_improvement": float(top_values[0]) if len(top_values) else 0.0,
        "peak_memory_mb": peak_memory_mb(),
    }


def limited(chunks: Iterator[CandidateChunk], n: int) -> Iterator[CandidateChunk]:
    """The first ``n`` candidates of a stream of chunks."""
    seen = 0
    for chunk in chunks:
        if seen >= n:
            return
        yield chunk.take(slice(0, n - seen))
        seen += len(chunk)


def campaign_round(space: PerovskiteSpace, n: int, draws: int, fractions: bool) -> dict[str, float]:
    """One campaign round on ``n`` candidates through the loop's pool, screening and selection code."""
    config = PolicyConfig(kind="expected_improvement", batch_size=10, mc_samples=draws)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        tick = time.perf_counter()
        names = pool_feature_names(space.extra_names, fractions)
        sizes = CandidatePool.write_chunks(limited(space.chunks(), n), Path(directory))
        CandidatePool.write_meta(Path(directory), sizes, names)
        pool = CandidatePool.load(Path(directory), names)
        timings["pool"] = time.perf_counter() - tick
        tick = time.perf_counter()
        evaluated = np.random.default_rng(0).choice(len(pool), 200, replace=False)
        training = pool.take(evaluated).features
        target = training[:, names.index("perovskite tolerance_factor")].astype(np.float64)[:, None]
        surrogate = BNNSurrogate(len(names), ("y",), ("none",), ModelConfig(), fraction_inputs=fraction_columns(names))
        surrogate.fit(training, target, seed=0)
        timings["train"] = time.perf_counter() - tick
        tick = time.perf_counter()
        model = BNNModel(surrogate, draws, seed=1)
        available = np.ones(len(pool), dtype=bool)
        available[evaluated] = False
        chunks = ((block.rows, block.features) for block in pool.blocks(chunk_size(draws, 1), available))
        score = lambda _, features: draw_pool_scores(model, features, training, target, (1.0,))  # noqa: E731
        shortlist = screen(chunks, score, config, np.random.default_rng(2))
        timings["screen"] = time.perf_counter() - tick
        tick = time.perf_counter()
        scores = score(shortlist, pool.take(shortlist).features)
        selection = BatchPolicy(config).select(scores, shortlist.size, np.random.default_rng(3))
        timings["select"] = time.perf_counter() - tick
        top = pool.take(shortlist[selection.indices[:1]]).ids
    return {
        "n_candidates": len(pool),
        "draws": draws,
        "shortlist": int(shortlist.size),
        **{f"{stage}_seconds": value for stage, value in timings.items()},
        "round_seconds": timings["screen"] + timings["select"],
        "top_pick": str(top[0]),
        "peak_memory_mb": peak_memory_mb(),
    }


def main() -> None:
    """Run the stages and print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--n-featurize", type=int, default=10_000)
    parser.add_argument("--n-score", type=int, default=1_000_000)
    parser.add_argument("--n-stream", type=int, default=10_000_000)
    parser.add_argument("--stream-model", action="store_true", help="include the model in the stream stage")
    parser.add_argument("--draws", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=65_536)
    parser.add_argument("--campaign-round", type=int, default=None, help="only stage 5, on this many candidates")
    parser.add_argument(
        "--element-fractions",
        action=argparse.BooleanOptionalAction,
        default=FeaturesConfig().element_fractions,
        help="candidates carry the element fractions, as a campaign's do by default (default: on)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fractions = args.element_fractions

    results: dict[str, object] = {"threads": args.threads, "draws": args.draws, "element_fractions": fractions}
    space = PerovskiteSpace(SPACE)
    results["space_raw_size"] = space.raw_size
    results["matmul_flops_per_second"] = matmul_flops()
    print(f"dense matmul: {results['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s ({args.threads} threads)")
    if args.campaign_round is not None:
        round_ = campaign_round(space, args.campaign_round, args.draws, fractions)
        results["campaign_round"] = round_
        print("campaign round:", ", ".join(f"{key} {value:.4g}" for key, value in round_.items() if key != "top_pick"))
    else:
        model, incumbent, fit = trained_vacancy_model(SPACE, fractions)
        results["model"] = {**fit, "incumbent": incumbent}
        print(f"model: trained on {fit['n_train']} ABO3 vacancy energies in {fit['fit_seconds']:.1f} s (not timed)")
        score = score_stream(space, args.n_score, args.draws, True, args.chunk, model, incumbent, fractions)
        results["score"] = score
        results["score_1e6_seconds"] = score["seconds"] * 1e6 / score["n_candidates"]
        results["peak_memory_mb"] = score["peak_memory_mb"]
        print(
            f"score {score['n_candidates']:,}: {score['seconds']:.1f} s "
            f"({score['candidates_per_second']:,.0f}/s; "
            f"enumerate {score['enumerate_seconds']:.1f}, featurize {score['featurize_seconds']:.1f}, "
            f"draws {score['draws_seconds']:.1f}, acquisition {score['acquisition_seconds']:.1f}); "
            f"model {score['model_flops_per_second'] / 1e9:.1f} GFLOP/s "
            f"= {score['model_flops_per_second'] / results['matmul_flops_per_second']:.0%} of matmul; "
            f"peak RSS {score['peak_memory_mb']:.0f} MB"
        )

        stream = score_stream(
            space, args.n_stream, args.draws, args.stream_model, args.chunk, model, incumbent, fractions
        )
        results["stream"] = {**stream, "with_model": args.stream_model}
        print(
            f"stream {stream['n_candidates']:,} ({'with' if args.stream_model else 'without'} model): "
            f"{stream['seconds']:.1f} s ({stream['candidates_per_second']:,.0f}/s); "
            f"peak RSS {stream['peak_memory_mb']:.0f} MB"
        )

        featurize = featurize_vs_matminer(args.n_featurize)
        results["featurize"] = featurize
        results["featurize_speedup_vs_matminer"] = featurize["featurize_speedup_vs_matminer"]
        print(
            f"featurize {featurize['n_formulas']:,} formulas: sbin {featurize['sbin_seconds']:.3f} s, "
            f"matminer {featurize['matminer_seconds']:.1f} s, "
            f"speedup {featurize['featurize_speedup_vs_matminer']:.0f}x, "
            f"max |diff| {featurize['max_abs_difference_float64']:.1e} (float64)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

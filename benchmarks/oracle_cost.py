"""Cost and accuracy of the force-field defect oracle.

1. Wall time per defect evaluation (bulk relax + O-vacancy relaxes, SrTiO3) for 40-, 80- and 135-atom supercells,
   and evaluations per hour, on however many cores torch is given (``--threads``).
2. Force-field O-vacancy formation energies against the Emery-Wolverton DFT values (bundled table, rows marked
   ``is_lowest_ehull_assignment``, lowest distortion cubic, most stable first; compounds where sbin's radius-based
   A/B assignment disagrees with the table's are skipped): MAE, RMSE, bias and a parity plot.

Runs the same ``DefectWorkflowMaker`` flow the oracle runs, in this process (no worker start-up in the timings).

Usage: ``python benchmarks/oracle_cost.py [--quick] [--sizes 40,80,135] [--vacancies 2] [--compounds 24] [--threads 2]
[--json PATH] [--plot PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sbin_loop.data import bundled_path
from sbin_loop.oracles.config import ForceFieldOracleConfig
from sbin_loop.oracles.forcefield import forcefield_workflow_maker
from sbin_loop.workflows.analysis import DefectWorkflowDoc
from sbin_loop.workflows.perovskite import build_supercell, site_occupancies


def run_workflow(config: ForceFieldOracleConfig, formula: str, lattice: float | None = None) -> DefectWorkflowDoc:
    """Run the oracle's flow for one composition in this process and return its document."""
    from jobflow import JobStore, run_locally
    from maggma.stores import MemoryStore

    cell = build_supercell(formula, config.supercell.min_atoms, "random", seed=0, lattice_parameter=lattice)
    flow = forcefield_workflow_maker(config).make(cell.structure, formula=formula)
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    with tempfile.TemporaryDirectory() as scratch:  # ASE writes its files into the job's directory
        run_locally(flow, store=store, root_dir=scratch, log=False, raise_immediately=True)
    return DefectWorkflowDoc.from_output(store.get_output(flow.jobs[-1].uuid))


def _config(min_atoms: int, sites: int, mu: dict[str, float]) -> ForceFieldOracleConfig:
    return ForceFieldOracleConfig(
        supercell={"min_atoms": min_atoms},
        defects={"vacancies": ["O"], "sites_per_species": sites, "chemical_potentials": mu},
    )


def oxygen_potential() -> float:
    """CHGNet chemical potential of O (half an O2 molecule in a box), via a 5-atom SrTiO3 flow."""
    return run_workflow(_config(5, 1, {}), "SrTiO3").chemical_potentials["O"]


def cost(sizes: list[int], sites: int, mu_o: float) -> list[dict]:
    """Time one evaluation (bulk relax + ``sites`` O-vacancy relaxes) of SrTiO3 per supercell size."""
    rows = []
    for size in sizes:
        start = time.perf_counter()
        doc = run_workflow(_config(size, sites, {"O": mu_o}), "SrTiO3")
        seconds = time.perf_counter() - start
        rows.append(
            {
                "min_atoms": size,
                "n_atoms": doc.bulk.n_atoms,
                "vacancies": sites,
                "seconds_per_evaluation": seconds,
                "evaluations_per_hour": 3600 / seconds,
                "Ef_vac_O_mean_eV": doc.statistics["O"].mean,
            }
        )
        print(f"  {doc.bulk.n_atoms:4d} atoms, {sites} vacancies: {seconds:7.1f} s ({3600 / seconds:6.1f}/h)")
    return rows


def dft_compounds(n: int) -> pd.DataFrame:
    """The ``n`` most stable cubic ABO3 rows of the Emery-Wolverton table whose A/B assignment sbin reproduces."""
    table = pd.read_csv(bundled_path("emery_wolverton"))
    rows = table[table["is_lowest_ehull_assignment"] & (table["lowest distortion"] == "cubic")]
    rows = rows[~rows["formula"].str.contains("Ac|Th|Pa|U|Np|Pu|Tc|Pm|Po")].sort_values("e_hull")
    agree = [set(site_occupancies(f)["A"]) == {a} for f, a in zip(rows["formula"], rows["atom a"], strict=True)]
    return rows[agree].head(n).rename(columns={"e_form oxygen": "dft"})


def accuracy(n: int, min_atoms: int, mu_o: float, plot: Path) -> dict:
    """Force-field vs DFT O-vacancy formation energies; writes the parity plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = []
    for row in dft_compounds(n).itertuples():
        try:
            doc = run_workflow(_config(min_atoms, 1, {"O": mu_o}), row.formula, lattice=float(row.a))
            ff = doc.statistics["O"].mean
        except Exception as error:  # a failed compound is reported, not fatal
            print(f"  {row.formula}: failed ({type(error).__name__}: {error})")
            continue
        records.append({"formula": row.formula, "dft_eV": float(row.dft), "forcefield_eV": ff})
        print(f"  {row.formula:8s} DFT {row.dft:6.2f}  CHGNet {ff:6.2f}")
    frame = pd.DataFrame(records)
    error = frame["forcefield_eV"] - frame["dft_eV"]
    lo, hi = float(min(frame.min(numeric_only=True))) - 0.5, float(max(frame.max(numeric_only=True))) + 0.5
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.scatter(frame["dft_eV"], frame["forcefield_eV"], s=18)
    for record in records:
        ax.annotate(record["formula"], (record["dft_eV"], record["forcefield_eV"]), fontsize=6)
    ax.set(xlabel="DFT E_f(V_O) [eV] (Emery & Wolverton 2017)", ylabel=f"CHGNet E_f(V_O) [eV], {min_atoms} atoms")
    ax.set_title(f"MAE {np.abs(error).mean():.2f} eV, n = {len(frame)}")
    fig.tight_layout()
    plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot, dpi=150)
    return {
        "n": len(frame),
        "min_atoms": min_atoms,
        "mae_eV": float(np.abs(error).mean()),
        "rmse_eV": float(np.sqrt((error**2).mean())),
        "bias_eV": float(error.mean()),
        "spearman": float(frame["dft_eV"].corr(frame["forcefield_eV"], method="spearman")),
        "compounds": records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40/80 atoms, 1 vacancy, 6 compounds")
    parser.add_argument("--sizes", help="comma-separated minimum supercell sizes timed (default 40,80,135)")
    parser.add_argument("--vacancies", type=int, help="O vacancies per timed evaluation (default 2)")
    parser.add_argument("--compounds", type=int, help="cubic ABO3 compared with DFT (default 24)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", type=Path, help="JSON results (default benchmarks/results/oracle_cost[_quick].json)")
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/results/oracle_parity.png"), help="parity PNG")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    sizes, sites, n_compounds = ([40, 80], 1, 6) if args.quick else ([40, 80, 135], 2, 24)
    sizes = [int(size) for size in args.sizes.split(",")] if args.sizes else sizes
    sites = args.vacancies or sites
    n_compounds = args.compounds or n_compounds
    mu_o = oxygen_potential()
    print(f"mu_O (CHGNet, 1/2 O2 in a box) = {mu_o:.3f} eV")
    print("cost (SrTiO3):")
    timings = cost(sizes, sites, mu_o)
    print("accuracy vs DFT:")
    agreement = accuracy(n_compounds, 40, mu_o, args.plot)
    result = {
        "quick": args.quick,
        "sizes": sizes,
        "vacancies": sites,
        "compounds_requested": n_compounds,
        "threads": args.threads,
        "load_average_1min_at_end": os.getloadavg()[0],
        "mu_O_eV": mu_o,
        "cost": timings,
        "dft": agreement,
    }
    path = args.json or Path("benchmarks/results") / ("oracle_cost_quick.json" if args.quick else "oracle_cost.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"\n{'atoms':>6} {'vacancies':>9} {'s/eval':>8} {'eval/h':>7}")
    for row in timings:
        seconds, per_hour = row["seconds_per_evaluation"], row["evaluations_per_hour"]
        print(f"{row['n_atoms']:6d} {row['vacancies']:9d} {seconds:8.1f} {per_hour:7.1f}")
    print(f"E_f(V_O) vs DFT: MAE {agreement['mae_eV']:.2f} eV, bias {agreement['bias_eV']:+.2f} eV, n={agreement['n']}")


if __name__ == "__main__":
    main()

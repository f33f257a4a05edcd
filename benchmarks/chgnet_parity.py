"""CHGNet O-vacancy formation energies from the force-field oracle as a campaign runs it, against Emery-Wolverton DFT.

Protocol: the ``n`` most stable cubic ABO3 rows of the Emery-Wolverton table (``is_lowest_ehull_assignment``, A/B
assignment reproduced by sbin; ``oracle_cost.dft_compounds``). Each composition goes through the oracle's own task
(``ForceFieldTask``) in a scratch campaign directory: the 40-atom supercell built from ionic radii (not the DFT
lattice parameter), cell relaxed with CHGNet, the symmetry-distinct O vacancy relaxed at fixed cell, mu_O from CHGNet's
O2 in a box (the O-rich limit, as the table's values are). Reported: MAE, RMSE, bias (CHGNet - DFT), Spearman rank
correlation and n, with the per-composition values.

Usage: ``PYTHONPATH=. python benchmarks/chgnet_parity.py [--compounds 12] [--threads 2]
[--json benchmarks/results/chgnet_parity.json]``; 12 compounds take about 5-10 min on the 2-core box.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from benchmarks.oracle_cost import dft_compounds
from sbin_loop.oracles import JobRequest
from sbin_loop.oracles.config import ForceFieldOracleConfig
from sbin_loop.oracles.forcefield import ForceFieldTask, forcefield_workflow_maker


def parity(n: int, threads: int) -> dict:
    """CHGNet vs DFT for ``n`` compounds; a compound that fails is reported and left out of the statistics."""
    config = ForceFieldOracleConfig(
        supercell={"min_atoms": 40},
        defects={"vacancies": ["O"], "sites_per_species": 1, "competing_phases": False},
        threads_per_worker=threads,
    )
    task = ForceFieldTask(config, forcefield_workflow_maker(config))
    records, failures = [], []
    with tempfile.TemporaryDirectory() as campaign:
        for row in dft_compounds(n).itertuples():
            request = JobRequest(job_id=row.formula, candidate_id=row.formula, formula=row.formula, round=0)
            start = time.perf_counter()
            try:
                outcome = task(request, Path(campaign) / row.formula)
            except Exception as error:  # reported, not fatal
                failures.append({"formula": row.formula, "error": f"{type(error).__name__}: {error}"})
                print(f"  {row.formula}: failed ({type(error).__name__}: {error})")
                continue
            seconds = time.perf_counter() - start
            chgnet = outcome.values["Ef_vac_O_mean"]
            records.append({"formula": row.formula, "dft_eV": float(row.dft), "chgnet_eV": chgnet, "seconds": seconds})
            print(f"  {row.formula:8s} DFT {row.dft:6.2f}  CHGNet {chgnet:6.2f}  ({seconds:.0f} s)")
    dft = np.array([r["dft_eV"] for r in records])
    chgnet = np.array([r["chgnet_eV"] for r in records])
    error = chgnet - dft
    return {
        "n": len(records),
        "mae_eV": float(np.abs(error).mean()),
        "rmse_eV": float(np.sqrt((error**2).mean())),
        "bias_eV": float(error.mean()),
        "spearman": float(spearmanr(dft, chgnet).statistic),
        "seconds_per_compound": float(np.mean([r["seconds"] for r in records])),
        "protocol": {"min_atoms": 40, "vacancies_per_compound": 1, "fmax": config.fmax, "threads": threads},
        "compounds": records,
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compounds", type=int, default=12, help="cubic ABO3 compared with DFT")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/chgnet_parity.json"))
    args = parser.parse_args()
    result = parity(args.compounds, args.threads)
    print(
        f"n = {result['n']}: MAE {result['mae_eV']:.2f} eV, bias {result['bias_eV']:+.2f} eV, "
        f"Spearman {result['spearman']:.2f}"
    )
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

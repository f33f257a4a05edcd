"""Perovskite supercells, vacancy analysis and the force-field oracle (CHGNet on 5-atom cells)."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from jobflow import Maker, job
from pymatgen.core import Composition

from sbin_loop.oracles import JobRequest, checked_outcome
from sbin_loop.oracles.config import ForceFieldOracleConfig
from sbin_loop.oracles.forcefield import ForceFieldTask, forcefield_oracle, forcefield_workflow_maker
from sbin_loop.oracles.process import ProcessOracle
from sbin_loop.workflows.analysis import ImplausibleResultError, defect_density, formation_energies
from sbin_loop.workflows.perovskite import NotAPerovskiteError, build_supercell, site_occupancies, supercell_shape


def test_supercell_shapes_and_sites():
    assert [supercell_shape(n) for n in (5, 40, 80, 128)] == [(1, 1, 1), (2, 2, 2), (2, 2, 4), (3, 3, 3)]
    occupancy = site_occupancies("La0.6Sr0.4Co0.8Fe0.2O3")
    assert occupancy["A"] == pytest.approx({"Sr": 0.4, "La": 0.6})
    assert occupancy["B"] == pytest.approx({"Co": 0.8, "Fe": 0.2})
    assert site_occupancies("RbTeO3")["B"] == {"Te": 1.0}  # Te is a cation in an oxide
    with pytest.raises(NotAPerovskiteError, match="cations per 3 anions"):
        site_occupancies("SrTi2O3")


def test_disordered_supercell_is_seeded_and_quasirandom():
    cells = [build_supercell("La0.5Sr0.5Co0.5Fe0.5O3", 40, decoration, seed=4) for decoration in ("random", "sqs")]
    for cell in cells:
        assert len(cell.structure) == 40 and cell.max_fraction_error == 0.0
        assert cell.structure.composition.reduced_composition == Composition("LaSrCoFeO6")
    again = build_supercell("La0.5Sr0.5Co0.5Fe0.5O3", 40, "sqs", seed=4)
    assert [s.specie.symbol for s in again.structure] == [s.specie.symbol for s in cells[1].structure]
    assert 3.5 < cells[0].structure.lattice.a / 2 < 4.2


def test_formation_energies_reject_nan_and_implausible_values():
    values = formation_energies(-100.0, [-90.0, -91.0], ["O", "O"], {"O": -5.0}, (-3.0, 15.0))
    assert values == pytest.approx([5.0, 4.0])
    with pytest.raises(ImplausibleResultError, match=r"vacancy 1 .*nan"):
        formation_energies(-100.0, [-90.0, math.nan], ["O", "O"], {"O": -5.0}, (-3.0, 15.0))
    with pytest.raises(ImplausibleResultError, match="outside the plausible range"):
        formation_energies(-100.0, [-70.0], ["O"], {"O": -5.0}, (-3.0, 15.0))


def test_defect_density_is_a_bounded_boltzmann_average():
    cold, hot = (defect_density([1.0, 2.0], t, 1e22) for t in (300.0, 1500.0))
    assert 0 < cold.site_fraction < hot.site_fraction < 1
    assert hot.log10_site_fraction == pytest.approx(np.log10(hot.site_fraction))
    deep = defect_density([30.0], 300.0, 1e22)  # underflows as a float, stays finite as a log
    assert deep.site_fraction == 0.0 and math.isfinite(deep.log10_site_fraction)
    assert defect_density([-2.0], 1000.0, 1.0).site_fraction == pytest.approx(1.0, abs=1e-9)


def test_amorphous_option_melt_quenches_with_mpmorph_before_the_bulk_relax():
    config = ForceFieldOracleConfig(supercell={"amorphous": True, "min_atoms": 5, "melt_steps": 50})
    flow = forcefield_workflow_maker(config).make(build_supercell("SrTiO3", 5).structure)
    assert [job.name for job in flow.jobs][:3] == ["amorphise", "bulk relax", "amorphousness check"]
    volume, melt, quench = flow.jobs[0].jobs
    assert volume.name == "Equilibrium Volume Maker" and volume.maker.md_maker.temperature == 5000.0
    assert melt.maker.temperature == 5000.0 and melt.maker.n_steps == 50
    assert [job.maker.temperature for job in quench.jobs] == [4500.0 - 500 * k for k in range(8)]  # cooling ramp
    assert flow.jobs[1].function_args[0].uuid == quench.jobs[-1].uuid  # the relax starts from the quenched cell


@dataclass
class RaisingMaker(Maker):
    """A relax maker that fails, as a broken calculation would."""

    name: str = "raising relax"

    @job
    def make(self, structure):
        raise RuntimeError("injected relax failure")


def _tiny_config(**overrides) -> ForceFieldOracleConfig:
    settings = {
        "supercell": {"min_atoms": 5},
        "defects": {"sites_per_species": 1, "chemical_potentials": {"O": -4.82}},
        "fmax": 0.2,
        "max_steps": 20,
        "values": {"Ef_vac_O": "Ef_vac_O_mean"},
        "timeout_seconds": 120,
    }
    return ForceFieldOracleConfig.model_validate({**settings, **overrides})


def _wait(oracles: list, requests: list[JobRequest], limit: float = 120.0) -> dict:
    outcomes: dict = {}
    start = time.monotonic()
    while len(outcomes) < len(requests) and time.monotonic() - start < limit:
        for oracle in oracles:
            outcomes.update(oracle.poll(requests))
        time.sleep(0.2)
    return outcomes


def test_forcefield_oracle_runs_chgnet_and_reports_injected_failure(tmp_path: Path):
    config = _tiny_config()
    good = forcefield_oracle(config, tmp_path / "good")
    broken_maker = dataclasses.replace(forcefield_workflow_maker(config), defect_relax_maker=RaisingMaker())
    broken = ProcessOracle("forcefield:CHGNet", "1", ForceFieldTask(config, broken_maker), tmp_path / "broken")
    strontium = JobRequest(job_id="c:r0:SrTiO3", candidate_id="SrTiO3", formula="SrTiO3", round=0)
    barium = JobRequest(job_id="c:r0:BaTiO3", candidate_id="BaTiO3", formula="BaTiO3", round=0)
    good.submit([strontium])
    broken.submit([barium])
    outcomes = _wait([good, broken], [strontium, barium])

    failed = outcomes["c:r0:BaTiO3"]
    assert failed.status == "failed" and "injected relax failure" in failed.error

    done = checked_outcome(outcomes["c:r0:SrTiO3"], ("Ef_vac_O",))
    assert done.status == "completed", done.error
    assert 3.0 < done.values["Ef_vac_O"] < 9.0  # 5-atom cell: strongly interacting vacancies
    document = outcomes["c:r0:SrTiO3"].document
    assert document["bulk"]["n_atoms"] == 5 and document["bulk"]["structure"]["@class"] == "Structure"
    assert len(document["vacancies"]) == 1 and document["energy_model"] == "CHGNet"
    assert "O" in document["densities"] and document["code_versions"]["chgnet"]
    assert done.provenance["job_dir"].startswith(str(tmp_path)) and done.wall_seconds > 0

    again = forcefield_oracle(config, tmp_path / "good")  # a restarted campaign: stored outcome, no rerun
    again.submit([strontium])
    assert again.poll([strontium])["c:r0:SrTiO3"].values == outcomes["c:r0:SrTiO3"].values


def test_chgnet_computes_an_antisite_and_an_interstitial(tmp_path: Path):
    # 5-atom SrTiO3: the "antisite" inverts the whole cell (about 17 eV), hence the wide bounds; about 10 s here
    defects = {"vacancies": [], "antisites": 1, "interstitials": ["O"], "sites_per_species": 1}
    config = _tiny_config(
        defects={**defects, "chemical_potentials": {"O": -4.82}, "formation_energy_bounds": [-3.0, 30.0]},
        values={"Ef_int_O": "Ef_int_O_mean"},
    )
    request = JobRequest(job_id="c:r0:SrTiO3", candidate_id="SrTiO3", formula="SrTiO3", round=0)
    outcome = ForceFieldTask(config, forcefield_workflow_maker(config))(request, tmp_path)
    doc = outcome.document
    assert doc["vacancies"] == [] and len(doc["antisites"]) == 1 and len(doc["interstitials"]) == 1
    assert doc["antisites"][0]["elements"] == ["Sr", "Ti"] and doc["interstitials"][0]["clearance"] > 1.8
    assert outcome.values["Ef_antisite_mean"] > 5.0 and math.isfinite(outcome.values["log10_antisite_site_fraction"])
    assert outcome.values["Ef_int_O"] == doc["interstitials"][0]["formation_energy"]
    assert doc["chemical_potentials"] == {"O": -4.82}

"""Defect physics: generator-based sites, amorphousness check, O-rich/O-poor limits, phase cache, working directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.core import Composition, Structure

from sbin_loop.oracles import JobRequest
from sbin_loop.oracles.config import ForceFieldOracleConfig
from sbin_loop.oracles.forcefield import ForceFieldTask, forcefield_workflow_maker
from sbin_loop.workflows.amorphous import NotAmorphousError, amorphous_check, check_amorphous, random_packing
from sbin_loop.workflows.chempots import CompetingPhase, oxygen_delta_mu, oxygen_limits, phase_diagram
from sbin_loop.workflows.config import DefectConfig, SupercellConfig
from sbin_loop.workflows.defects import analyse_defects, maker_default, vacancy_candidates
from sbin_loop.workflows.perovskite import build_supercell
from sbin_loop.workflows.phase_cache import PhaseCache


def test_vacancy_generator_gives_one_candidate_per_symmetry_class():
    primitive = build_supercell("SrTiO3", 5, lattice_parameter=3.9).structure
    assert {el: len(sites) for el, sites in vacancy_candidates(primitive).items()} == {"Sr": 1, "Ti": 1, "O": 1}
    ordered = build_supercell("SrTiO3", 40, lattice_parameter=3.9).structure  # 2x2x2 of the same crystal
    assert {el: len(sites) for el, sites in vacancy_candidates(ordered).items()} == {"Sr": 1, "Ti": 1, "O": 1}
    every = vacancy_candidates(ordered, symmetric=False)
    assert {el: len(sites) for el, sites in every.items()} == {"Sr": 8, "Ti": 8, "O": 24}
    config = ForceFieldOracleConfig(defects={"sites_per_species": 4, "competing_phases": False})
    flow = forcefield_workflow_maker(config).make(ordered)
    assert sum(job.name.startswith("vacancy ") for job in flow.jobs) == 1  # the 24 O sites are one vacancy


def test_defect_defaults_come_from_the_maker():
    config = DefectConfig()
    for name in ("vacancies", "sites_per_species", "temperature_K", "formation_energy_bounds", "competing_phases"):
        assert getattr(config, name) == maker_default(name)
    assert SupercellConfig().max_long_range_order == maker_default("max_long_range_order")
    assert DefectConfig(sites_per_species=2).sites_per_species == 2
    with pytest.raises(ValueError, match="quench_end_temperature_K"):
        SupercellConfig(amorphous=True, melt_temperature_K=1000, quench_temperature_step_K=500)


def test_crystal_is_flagged_and_scrambled_positions_are_amorphous():
    crystal = build_supercell("SrTiO3", 40, lattice_parameter=3.9).structure
    rng = np.random.default_rng(0)
    shaken = crystal.cart_coords + rng.normal(0, 0.08, (len(crystal), 3))
    warm = Structure(crystal.lattice, crystal.species, shaken, coords_are_cartesian=True)
    check = amorphous_check(crystal, warm)
    assert check.long_range_order > 0.8 and not check.amorphous and check.n_peaks > 5
    assert check.crystal_coordination["Ti"].counts == {6: 8} and check.crystal_coordination["Sr"].counts == {12: 8}
    with pytest.raises(NotAmorphousError, match=r"kept 0\.9"):
        check_amorphous.original(crystal, warm, 0.25)
    glass = Structure(crystal.lattice.matrix * 1.02, crystal.species, rng.random((len(crystal), 3)))
    scrambled = amorphous_check(crystal, glass)
    assert abs(scrambled.long_range_order) < 0.15 and scrambled.amorphous
    assert check_amorphous.original(crystal, glass, 0.25)["check"]["amorphous"] is True


def test_random_packing_keeps_sites_and_spacing_and_is_seeded():
    crystal = build_supercell("SrTiO3", 40, lattice_parameter=3.9).structure
    packed = random_packing(crystal, seed=3)
    assert packed.species == crystal.species and packed.lattice == crystal.lattice
    distances = packed.distance_matrix + 10 * np.eye(len(packed))
    assert distances.min() >= 1.8
    assert np.allclose(random_packing(crystal, seed=3).frac_coords, packed.frac_coords)
    assert amorphous_check(crystal, packed).amorphous
    with pytest.raises(ValueError, match="no room for site"):
        random_packing(crystal, seed=0, min_distance=3.0, attempts=50)


def _phases() -> list[CompetingPhase]:
    rows = [("Sr", "Sr", -1.6), ("Ti", "Ti", -7.8), ("O", "O2", -4.9), ("Sr", "SrO", -6.0), ("Ti", "TiO2", -26.5 / 3)]
    return [CompetingPhase(element=el, name=f, formula=f, energy_per_atom=e) for el, f, e in rows]


def test_oxygen_limits_of_a_small_phase_diagram():
    host = Composition("SrTiO3")
    diagram, above = phase_diagram(host, -40.5, _phases())
    assert isinstance(diagram, PhaseDiagram) and above < 0  # below the binaries' hull: stable as it is
    limits = oxygen_limits(diagram, host)
    rich, poor = limits["O-rich"], limits["O-poor"]
    assert rich["O"] == pytest.approx(-4.9)  # O2 coexistence
    assert poor["O"] < rich["O"]
    # O-poor: SrTiO3 with Ti metal and SrO (mu_Ti = E(Ti), mu_Sr + mu_O = E(SrO)), closing the host's energy
    assert poor["Ti"] == pytest.approx(-7.8)
    assert poor["Sr"] + poor["O"] == pytest.approx(-12.0)
    assert poor["Sr"] + poor["Ti"] + 3 * poor["O"] == pytest.approx(-40.5)
    _, lifted = phase_diagram(host, -30.0, _phases())  # above the hull: placed on it, its distance recorded
    assert lifted > 0


def test_reservoirs_shift_vacancy_energies_and_state_the_conditions():
    bulk = build_supercell("SrTiO3", 5, lattice_parameter=3.9).structure
    settings = {
        "chemical_potentials": {},
        "temperature_K": 1000.0,
        "oxygen_partial_pressure_atm": 0.21,
        "formation_energy_bounds": [-3.0, 15.0],
        "energy_model": "test",
        "packages": [],
    }
    phases = [phase.model_dump() for phase in _phases()]
    doc = analyse_defects.original("SrTiO3", bulk, -40.5, [2], [-31.0], {"O": [-4.9]}, settings, phases=phases)
    values = doc.quantities()
    assert values["Ef_vac_O_mean"] == pytest.approx(-31.0 + 40.5 - 4.9)
    poor = doc.chemical_potential_limits["O-poor"]["O"]
    assert values["Ef_vac_O_mean_at_O_rich"] == pytest.approx(values["Ef_vac_O_mean"])
    assert values["Ef_vac_O_mean_at_O_poor"] == pytest.approx(values["Ef_vac_O_mean"] + poor + 4.9)
    conditions = doc.oxygen_conditions
    expected = -1.10 + 0.5 * 8.617333e-5 * 1000.0 * math.log(0.21)
    assert conditions.delta_mu_O == pytest.approx(expected, abs=1e-6) and conditions.within_stability
    assert values["Ef_vac_O_mean_at_pO2"] == pytest.approx(values["Ef_vac_O_mean"] + expected)
    assert values["log10_vac_O_site_fraction_at_pO2"] > values["log10_vac_O_site_fraction"]
    assert {phase.name for phase in doc.competing_phases} == {"Sr", "Ti", "O2", "SrO", "TiO2"}
    assert oxygen_delta_mu(300.0, 1.0) == pytest.approx(-0.27)
    with pytest.raises(ValueError, match="p > 0"):
        oxygen_delta_mu(300.0, 0.0)


def test_phase_cache_round_trip_ignores_damaged_files(tmp_path: Path):
    cache = PhaseCache(tmp_path / "phases" / PhaseCache.key("CHGNet", "fmax0.05"))
    assert cache.load(["Sr"]) == []
    cache.store(_phases())
    assert [p.name for p in cache.load(["Sr", "O"])] == ["Sr", "SrO", "O2"]
    (cache.directory / "Ti.json").write_text('[{"element": "Ti"')  # truncated: ignored, recomputed
    (cache.directory / "O.json").write_text(json.dumps([{**_phases()[0].model_dump(), "element": "Sr"}]))
    assert cache.load(["Ti", "O"]) == []


def test_amorphous_chgnet_flow_loses_order_and_leaves_the_current_directory_untouched(tmp_path: Path, monkeypatch):
    # 20-atom SrTiO3 from a random packing, MPMorph schedule of ~135 MD steps at 6000 K (small cell, short schedule)
    config = ForceFieldOracleConfig.model_validate(
        {
            "supercell": {
                "min_atoms": 20,
                "decoration": "random",
                "amorphous": True,
                "melt_temperature_K": 6000,
                "melt_steps": 100,
                "volume_steps": 5,
                "quench_steps": 10,
                "quench_temperature_step_K": 2000,
                "quench_end_temperature_K": 1000,
            },
            "defects": {"sites_per_species": 3, "formation_energy_bounds": [-10.0, 15.0]},
            "fmax": 0.2,
            "max_steps": 60,
        }
    )
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.chdir(user)
    campaign = tmp_path / "campaign"
    request = JobRequest(job_id="c:r0:SrTiO3", candidate_id="SrTiO3", formula="SrTiO3", round=0)
    task = ForceFieldTask(config, forcefield_workflow_maker(config), campaign / "phases")
    outcome = task(request, campaign / "job")
    assert list(user.iterdir()) == []  # every calculation ran inside the campaign directory
    assert (campaign / "job" / "work" / "final_atoms_object.xyz").is_file()

    doc = outcome.document
    check = doc["amorphous_check"]
    assert check["amorphous"] and check["long_range_order"] <= 0.25 and check["n_peaks"] > 5
    assert outcome.values["long_range_order"] == check["long_range_order"]
    assert len(doc["vacancies"]) == 3 and doc["statistics"]["O"]["n_sites"] == 3  # per-site distribution
    assert doc["statistics"]["O"]["min"] <= doc["statistics"]["O"]["mean"] <= doc["statistics"]["O"]["max"]
    limits = doc["chemical_potential_limits"]
    assert limits["O-poor"]["O"] < limits["O-rich"]["O"]
    assert outcome.values["Ef_vac_O_mean_at_O_poor"] < outcome.values["Ef_vac_O_mean"]
    assert doc["oxygen_conditions"]["oxygen_partial_pressure_atm"] == 0.21
    assert {"O", "Sr", "Ti"} <= {phase["element"] for phase in doc["competing_phases"]}
    cached = PhaseCache(campaign / "phases").load(["Sr", "Ti", "O"])
    assert {p.name for p in cached} == {p["name"] for p in doc["competing_phases"]}

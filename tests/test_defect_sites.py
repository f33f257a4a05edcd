"""Antisites, interstitial voids and the formation energies of every kind of defect (structure level, no potential)."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Structure

from sbin_loop.oracles.config import ForceFieldOracleConfig
from sbin_loop.oracles.forcefield import forcefield_workflow_maker
from sbin_loop.workflows.analysis import DefectWorkflowDoc, defect_density, formation_energies
from sbin_loop.workflows.defects import analyse_defects, insert_site, sample_antisite_pairs, swap_sites
from sbin_loop.workflows.perovskite import build_supercell
from sbin_loop.workflows.voids import find_voids

A = 3.9


def _srtio3() -> Structure:
    return build_supercell("SrTiO3", 5, lattice_parameter=A).structure


def test_antisite_swap_keeps_composition_and_swaps_nearest_cations_of_two_sublattices():
    cell = build_supercell("La0.5Sr0.5Co0.5Fe0.5O3", 40, seed=2)
    structure, labels = cell.structure, cell.sublattice
    pairs = sample_antisite_pairs(structure, 3, seed=5, sublattice=labels)
    assert pairs == sample_antisite_pairs(structure, 3, seed=5, sublattice=labels)
    assert len(pairs) == 3 and len({a for a, _ in pairs}) == 3
    for a, b in pairs:
        assert (labels[a], labels[b]) == ("A", "B") and structure[a].specie != structure[b].specie
        others = [j for j, label in enumerate(labels) if label == "B" and structure[j].specie != structure[a].specie]
        assert structure.get_distance(a, b) == pytest.approx(min(structure.get_distance(a, j) for j in others))
        swapped = swap_sites.original(structure, a, b)
        assert swapped.composition == structure.composition
        changed = [i for i, (x, y) in enumerate(zip(structure, swapped, strict=True)) if x.species != y.species]
        assert changed == sorted((a, b))
        assert swapped[a].specie == structure[b].specie and swapped[b].specie == structure[a].specie

    by_elements = sample_antisite_pairs(structure, 2, seed=0, pairs=(("La", "Fe"), ("Sr", "Co")))
    assert [(structure[a].specie.symbol, structure[b].specie.symbol) for a, b in by_elements] == [
        ("La", "Fe"),
        ("La", "Fe"),
        ("Sr", "Co"),
        ("Sr", "Co"),
    ]
    assert sample_antisite_pairs(structure, 0, seed=0) == []
    with pytest.raises(ValueError, match="sublattice labels or configured element pairs"):
        sample_antisite_pairs(structure, 1, seed=0)


def test_voids_of_cubic_srtio3_are_the_emptiest_points_and_seeded():
    structure = _srtio3()
    coords, clearance = find_voids(structure, 3, seed=0)
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 24, endpoint=False)] * 3, indexing="ij"), -1).reshape(-1, 3)
    grid_clearance = structure.lattice.get_all_distances(grid, structure.frac_coords).min(axis=1)
    assert clearance == pytest.approx([A / 2] * 3)  # cube-edge centres: a/2 from Sr and O
    assert clearance.min() >= grid_clearance.max() - 1e-9
    assert structure.lattice.get_all_distances(coords, structure.frac_coords).min(axis=1) == pytest.approx(clearance)
    assert sorted(map(tuple, np.round(coords, 6))) == [(0, 0, 0.5), (0, 0.5, 0), (0.5, 0, 0)]
    again, _ = find_voids(structure, 3, seed=0)
    np.testing.assert_array_equal(coords, again)
    orders = {tuple(map(tuple, np.round(find_voids(structure, 3, seed)[0], 6))) for seed in range(6)}
    assert len(orders) > 1  # equal voids: the seed breaks the tie

    big = build_supercell("SrTiO3", 40, lattice_parameter=A).structure
    voids, gaps = find_voids(big, 5, seed=1, min_separation=2.0)
    assert np.all(gaps == pytest.approx(A / 2)) and np.all(voids >= 0) and np.all(voids < 1)
    between = big.lattice.get_all_distances(voids, voids) + 10 * np.eye(5)
    assert between.min() >= 2.0
    with pytest.raises(ValueError, match="distinct voids"):
        find_voids(structure, 4, seed=0, min_separation=2.0)


def test_formation_energies_of_each_kind_use_their_reservoir_atoms():
    bounds = (-3.0, 15.0)
    assert formation_energies(-100.0, [-104.0], ["O"], {"O": -5.0}, bounds, kind="interstitial") == [1.0]
    assert formation_energies(-100.0, [-97.5], ["Sr-Ti"], {}, bounds, kind="antisite") == [2.5]
    assert formation_energies(-100.0, [-90.0], ["O"], {"O": -5.0}, bounds) == [5.0]


def test_defect_analysis_reports_antisites_and_interstitials_per_site_and_as_statistics():
    bulk = _srtio3()
    bulk_energy = -40.0
    interstitial = insert_site.original(bulk, "O", [0.5, 0.0, 0.0])
    assert len(interstitial) == 6 and interstitial[-1].specie.symbol == "O"
    doc = analyse_defects.original(
        "SrTiO3",
        bulk,
        bulk_energy,
        [2],
        [-33.0],
        {"O": [-4.9, -5.0]},
        {
            "chemical_potentials": {},
            "temperature_K": 1000.0,
            "formation_energy_bounds": [-3.0, 15.0],
            "energy_model": "test",
            "packages": [],
        },
        antisites=[((0, 1), -36.0), ((0, 1), -38.0)],
        interstitials=[("O", [0.5, 0.0, 0.0], -43.0), ("O", [0.0, 0.5, 0.0], -44.0)],
    )
    assert doc.chemical_potentials == {"O": -5.0}
    assert doc.vacancies[0].formation_energy == pytest.approx(-33.0 + 40.0 - 5.0)
    assert [pair.formation_energy for pair in doc.antisites] == pytest.approx([4.0, 2.0])
    assert doc.antisites[0].elements == ("Sr", "Ti") and doc.antisites[0].distance == pytest.approx(A * 3**0.5 / 2)
    assert [site.formation_energy for site in doc.interstitials] == pytest.approx([2.0, 1.0])  # -43 + 40 + 5
    assert doc.interstitials[0].clearance == pytest.approx(A / 2)
    assert doc.antisite_statistics.mean == pytest.approx(3.0) and doc.interstitial_statistics["O"].min == 1.0
    per_cm3 = 1e24 / bulk.volume
    assert doc.antisite_density == defect_density([4.0, 2.0], 1000.0, per_cm3)  # one Sr (A-like) site
    assert doc.interstitial_densities["O"] == defect_density([2.0, 1.0], 1000.0, 5 * per_cm3)
    values = doc.quantities()
    assert values["Ef_antisite_mean"] == pytest.approx(3.0) and values["Ef_int_O_max"] == pytest.approx(2.0)
    assert values["log10_int_O_site_fraction"] == doc.interstitial_densities["O"].log10_site_fraction
    assert values["Ef_vac_O_mean"] == pytest.approx(2.0)

    old = doc.model_dump(mode="json")  # a document written before antisites and interstitials existed
    for key in ("antisites", "antisite_statistics", "antisite_density", "interstitials"):
        del old[key]
    del old["interstitial_statistics"], old["interstitial_densities"]
    legacy = DefectWorkflowDoc.from_output(old)
    assert legacy.antisites == [] and legacy.antisite_statistics is None
    assert set(legacy.quantities()) == {"energy_per_atom", "volume_per_atom", "log10_vac_O_site_fraction"} | {
        f"Ef_vac_O_{key}" for key in ("mean", "std", "min", "median", "max")
    }


def test_flow_has_one_relax_per_antisite_and_interstitial_and_none_by_default():
    cell = build_supercell("La0.5Sr0.5Co0.5Fe0.5O3", 40)
    plain = {"sites_per_species": 2, "competing_phases": False}
    default = forcefield_workflow_maker(ForceFieldOracleConfig(defects=plain))
    names = [job.name for job in default.make(cell.structure, sublattice=cell.sublattice).jobs]
    assert len(names) == 1 + 2 * 2 + 1 + 1 and names[-2:] == ["reference O O2", "defect analysis"]
    config = ForceFieldOracleConfig(defects={**plain, "antisites": 3, "interstitials": ["O", "H"]})
    flow = forcefield_workflow_maker(config).make(cell.structure, sublattice=cell.sublattice)
    names = [job.name for job in flow.jobs]
    assert sum(n.startswith("antisite ") for n in names) == 3 and sum(n.startswith("swap sites") for n in names) == 3
    assert names.count("locate voids") == 1
    assert sum(n.startswith("interstitial ") for n in names) == 4 and "reference H H2" in names
    assert len(names) == 1 + 2 * 2 + 2 * 3 + 1 + 2 * 4 + 2 + 1

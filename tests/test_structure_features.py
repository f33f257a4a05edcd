import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from sbin_loop.features.structure import StructureFeaturizer

GROUPS = {"A": ("Sr", "Ba"), "B": ("Ti",), "X": ("O",)}


@pytest.fixture(scope="module")
def srtio3() -> Structure:
    return Structure.from_spacegroup(
        "Pm-3m", Lattice.cubic(3.905), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]]
    )


def _named(featurizer: StructureFeaturizer, structure: Structure) -> dict[str, float]:
    values = featurizer.featurize(structure)
    names = featurizer.names()
    assert len(values) == len(names)
    return dict(zip(names, values, strict=True))


def test_cubic_srtio3_angles_coordination_density(srtio3):
    f = _named(StructureFeaturizer(GROUPS), srtio3)
    assert f["cn B mean"] == 6 and f["cn B std"] == 0
    assert f["cn A mean"] == 12 and f["cn X mean"] == 2
    assert f["angle B-X-B mean"] == pytest.approx(180.0)
    assert f["angle B-X-B 175"] == pytest.approx(1.0)
    # X-B-X at Ti: 12 right angles and 3 straight ones among the 15 O pairs.
    assert f["angle X-B-X 85"] == pytest.approx(12 / 15) and f["angle X-B-X 175"] == pytest.approx(3 / 15)
    assert f["density"] == pytest.approx(srtio3.density)
    # First B-X peak at the Ti-O distance 1.95 Å, nothing shorter.
    featurizer = StructureFeaturizer(GROUPS)
    rdf = np.array([f[name] for name in featurizer.names() if name.startswith("rdf B-X ")])
    assert featurizer.r_grid[np.argmax(rdf > 0)] == pytest.approx(1.95, abs=0.05)


def test_supercell_gives_same_intensive_features(srtio3):
    featurizer = StructureFeaturizer(GROUPS)
    np.testing.assert_allclose(featurizer.featurize(srtio3 * (2, 2, 2)), featurizer.featurize(srtio3), atol=1e-9)


def test_partial_occupancy_is_weighted(srtio3):
    disordered = srtio3.copy()
    disordered.replace_species({"Sr": {"Sr": 0.5, "Ba": 0.5}})
    featurizer = StructureFeaturizer(GROUPS)
    ordered, mixed = featurizer.featurize(srtio3), featurizer.featurize(disordered)
    np.testing.assert_allclose(mixed[:-2], ordered[:-2], atol=1e-9)  # same geometry; density differs
    assert mixed[-2] > ordered[-2]


def test_displaced_cell_spreads_angles_keeps_octahedra(srtio3):
    cell = srtio3 * (3, 3, 3)
    rng = np.random.default_rng(0)
    moved = Structure(
        cell.lattice,
        cell.species,
        cell.cart_coords + rng.normal(0, 0.03, (len(cell), 3)),
        coords_are_cartesian=True,
    )
    f = _named(StructureFeaturizer(GROUPS), moved)
    assert f["cn B mean"] == 6
    assert 170 < f["angle B-X-B mean"] < 180
    assert f["angle X-B-X 95"] > 0  # right angles now spread across 90°


def test_missing_group_is_nan_not_zero(srtio3):
    featurizer = StructureFeaturizer({"A": ("Sr",), "B": ("Ti",), "X": ("O",), "Y": ("F",)})
    f = _named(featurizer, srtio3)
    assert np.isnan(f["cn Y mean"]) and np.isnan(f["rdf X-Y 2.05"])

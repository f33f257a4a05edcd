import numpy as np
import pytest
from pymatgen.core import Composition

from sbin_loop.features import (
    descriptor_names,
    element_fractions,
    element_property_table,
    featurize_compositions,
    featurize_formulas,
    featurize_fractions,
)
from sbin_loop.space import formula_fractions, read_formula_table

matminer_composition = pytest.importorskip("matminer.featurizers.composition")


@pytest.fixture(scope="module")
def supercon_formulas() -> list[str]:
    formulas = read_formula_table("bundled:supercon").frame["formula"].tolist()
    return formulas[:: max(1, len(formulas) // 1200)][:1200]


def test_descriptors_equal_matminer_magpie_and_stoichiometry(supercon_formulas):
    assert len(supercon_formulas) >= 1000
    magpie = matminer_composition.ElementProperty.from_preset("magpie")
    stoichiometry = matminer_composition.Stoichiometry()
    expected = np.array(
        [magpie.featurize(c) + stoichiometry.featurize(c) for c in map(Composition, supercon_formulas)],
        dtype=float,
    )
    got = featurize_fractions(*formula_fractions(supercon_formulas), dtype=np.float64)
    labels = [label.removeprefix("MagpieData ") for label in magpie.feature_labels()]
    assert descriptor_names() == labels + stoichiometry.feature_labels()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_table_has_magpie_properties_and_records_imputation():
    table = element_property_table()
    assert table.values.shape == (118, 22) and np.isfinite(table.values).all()
    assert ("He", "Electronegativity") in table.imputed


def test_formula_and_composition_paths_agree():
    formulas = ["SrTiO3", "Ba0.4K0.6Fe2As2", "La1.85Sr0.15CuO4", "Ca(OH)2"]
    from_compositions = featurize_compositions([Composition(f) for f in formulas])
    np.testing.assert_allclose(featurize_formulas(formulas), from_compositions, rtol=1e-6)
    indices, fractions = element_fractions([Composition("SrTiO3")])
    assert sorted(indices[0].tolist()) == [7, 21, 37]
    np.testing.assert_allclose(sorted(fractions[0]), [0.2, 0.2, 0.6])


def test_mode_takes_smallest_value_among_most_abundant():
    numbers = descriptor_names().index("mode Number")
    assert featurize_formulas(["NaCl"])[0, numbers] == 11
    assert featurize_formulas(["NaCl2"])[0, numbers] == 17


def test_known_statistics_of_srtio3_by_hand():
    names = descriptor_names()
    features = featurize_compositions([Composition("SrTiO3")])[0]
    chi = {"Sr": 0.95, "Ti": 1.54, "O": 3.44}  # Pauling electronegativities (Magpie's table)
    mean = (chi["Sr"] + chi["Ti"] + 3 * chi["O"]) / 5
    avg_dev = (abs(chi["Sr"] - mean) + abs(chi["Ti"] - mean) + 3 * abs(chi["O"] - mean)) / 5
    assert features[names.index("mean Electronegativity")] == pytest.approx(mean, rel=1e-5)
    assert features[names.index("avg_dev Electronegativity")] == pytest.approx(avg_dev, rel=1e-5)
    assert features[names.index("range Electronegativity")] == pytest.approx(chi["O"] - chi["Sr"], rel=1e-5)
    assert features[names.index("mode Number")] == 8  # the most abundant element, O
    assert features[names.index("0-norm")] == 3
    assert features[names.index("2-norm")] == pytest.approx(np.sqrt(0.2**2 + 0.2**2 + 0.6**2), rel=1e-6)


def test_features_do_not_depend_on_formula_scaling():
    a, b = featurize_compositions([Composition("SrTiO3"), Composition("Sr2Ti2O6")])
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_fraction_vector_places_fractions_by_atomic_number():
    from sbin_loop.features import element_fractions, fraction_vector

    vector = fraction_vector(*element_fractions([Composition("SrTiO3"), Composition("H2O")]))
    assert vector.shape[0] == 2
    np.testing.assert_allclose(vector.sum(axis=1), 1.0, rtol=1e-6)
    assert vector[0, 38 - 1] == pytest.approx(0.2)  # Sr
    assert vector[0, 8 - 1] == pytest.approx(0.6)  # O
    assert vector[1, 1 - 1] == pytest.approx(2 / 3)  # H


def test_site_descriptors_tell_the_two_site_assignments_apart():
    from sbin_loop.extra_descriptors import site_descriptor_names, site_descriptors

    values = site_descriptors(["Sr", "Ti"], ["Ti", "Sr"])
    assert values.shape == (2, len(site_descriptor_names()))
    half = values.shape[1] // 2
    np.testing.assert_array_equal(values[0, :half], values[1, half:])
    assert not np.array_equal(values[0], values[1])
    with pytest.raises(ValueError, match="2 A-site rows but 1"):
        site_descriptors(["Sr", "Ba"], ["Ti"])

import numpy as np
import pytest
from pymatgen.core import Composition, Element

from sbin_loop.features import (
    STATISTICS,
    descriptor_names,
    element_property_table,
    featurize_compositions,
)


def _column(name: str) -> int:
    return descriptor_names().index(name)


def test_descriptor_shape_and_names():
    features = featurize_compositions([Composition("NaCl"), Composition("SrTiO3")])
    assert features.shape == (2, len(descriptor_names()))
    assert features.dtype == np.float32
    assert np.isfinite(features).all()


def test_known_statistics_of_srtio3():
    features = featurize_compositions([Composition("SrTiO3")])[0]
    chi = {"Sr": Element("Sr").X, "Ti": Element("Ti").X, "O": Element("O").X}
    mean = (chi["Sr"] + chi["Ti"] + 3 * chi["O"]) / 5
    assert features[_column("mean Electronegativity")] == pytest.approx(mean, rel=1e-5)
    avg_dev = (abs(chi["Sr"] - mean) + abs(chi["Ti"] - mean) + 3 * abs(chi["O"] - mean)) / 5
    assert features[_column("avg_dev Electronegativity")] == pytest.approx(avg_dev, rel=1e-5)
    assert features[_column("minimum Electronegativity")] == pytest.approx(chi["Sr"], rel=1e-6)
    assert features[_column("maximum Electronegativity")] == pytest.approx(chi["O"], rel=1e-6)
    assert features[_column("range Electronegativity")] == pytest.approx(chi["O"] - chi["Sr"], rel=1e-5)
    # Mode: the most abundant element (O) sets it.
    assert features[_column("mode Number")] == 8
    assert features[_column("mean Number")] == pytest.approx((38 + 22 + 3 * 8) / 5, rel=1e-6)
    assert features[_column("0-norm")] == 3
    assert features[_column("2-norm")] == pytest.approx(np.sqrt(0.2**2 + 0.2**2 + 0.6**2), rel=1e-6)


def test_mode_tie_takes_smallest_value():
    features = featurize_compositions([Composition("NaCl")])[0]
    assert features[_column("mode Number")] == 11
    assert features[_column("mean Number")] == pytest.approx(14.0)


def test_valence_electron_counts_follow_magpie():
    table = element_property_table()
    row = {name: j for j, name in enumerate(table.names)}
    ga, pb, fe = (table.values[Element(s).Z - 1] for s in ("Ga", "Pb", "Fe"))
    assert (ga[row["NsValence"]], ga[row["NpValence"]], ga[row["NdValence"]], ga[row["NfValence"]]) == (2, 1, 10, 0)
    assert pb[row["NfValence"]] == 14 and pb[row["NValence"]] == 28
    assert fe[row["NdValence"]] == 6 and fe[row["NdUnfilled"]] == 4 and fe[row["NsUnfilled"]] == 0


def test_features_do_not_depend_on_formula_scaling():
    a, b = featurize_compositions([Composition("SrTiO3"), Composition("Sr2Ti2O6")])
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_missing_element_data_is_imputed_and_listed():
    table = element_property_table()
    assert np.isfinite(table.values).all()
    assert ("He", "Electronegativity") in table.imputed
    assert len(STATISTICS) == 6

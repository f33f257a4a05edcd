from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError
from pymatgen.core import Composition
from typer.testing import CliRunner

from sbin_loop.config import CampaignConfig
from sbin_loop.space import (
    CandidateChunk,
    PerovskiteSpace,
    canonical_formulas,
    formula_fractions,
    read_formula_table,
    rechunk,
    summarize_space,
)
from sbin_loop.space.cli import space_app
from sbin_loop.space.config import PerovskiteSpaceConfig, PoolSpaceConfig
from sbin_loop.space.perovskite import shannon_radius, site_configurations

SMALL = PerovskiteSpaceConfig(a_site=("Sr", "La", "Na"), b_site=("Ti", "Mn", "Al"), fraction_denominator=4)


def _all(space: PerovskiteSpace, counts: Counter | None = None) -> CandidateChunk:
    return CandidateChunk.concatenate(list(space.chunks(1000, counts)))


def _find(chunk: CandidateChunk, formula: str) -> int | None:
    target = Composition(formula).reduced_formula
    hits = np.flatnonzero(chunk.ids == target)
    return int(hits[0]) if len(hits) else None


def test_campaign_space_is_discriminated_on_kind():
    config = CampaignConfig.model_validate(
        {"name": "t", "objectives": [{"name": "Tc"}], "space": {"kind": "perovskite", "a_site": ["Sr"]}}
    )
    assert isinstance(config.space, PerovskiteSpaceConfig)
    assert isinstance(
        CampaignConfig.model_validate({"name": "t", "objectives": [{"name": "Tc"}]}).space, PoolSpaceConfig
    )
    with pytest.raises(ValidationError, match="a_sites"):
        CampaignConfig.model_validate(
            {"name": "t", "objectives": [{"name": "Tc"}], "space": {"kind": "perovskite", "a_sites": []}}
        )
    with pytest.raises(ValidationError, match="more than one site"):
        PerovskiteSpaceConfig(a_site=("Sr", "Ti"), b_site=("Ti",))


def test_site_configurations_cover_the_fraction_grid():
    slots, fractions = site_configurations(3, 2, 4)
    # 3 pure + 3 pairs x 3 splits (1/4, 1/2, 3/4)
    assert len(slots) == 3 + 3 * 3
    np.testing.assert_allclose(fractions.sum(axis=1), 1.0)


def test_known_perovskites_pass_and_charge_rule_rejects():
    counts: Counter = Counter()
    space = PerovskiteSpace(SMALL)
    chunk = _all(space, counts)
    for formula in ("SrTiO3", "LaAlO3", "LaMnO3", "SrMnO3", "Sr0.5La0.5MnO3", "Na0.25La0.75TiO3"):
        assert _find(chunk, formula) is not None, formula
    # Na+ and Al3+ give at most +4 against O3's -6.
    assert _find(chunk, "NaAlO3") is None
    assert counts["charge"] > 0
    assert sum(counts.values()) + len(chunk) == space.raw_size


def test_tolerance_factor_matches_hand_calculation_and_bounds_reject():
    space = PerovskiteSpace(SMALL)
    chunk = _all(space)
    row = _find(chunk, "SrTiO3")
    r_sr, r_ti, r_o = (
        shannon_radius("Sr", 2, 12)[0],
        shannon_radius("Ti", 4, 6)[0],
        shannon_radius("O", -2, 6)[0],
    )
    names = [name.split(" ", 1)[1] for name in space.extra_names]
    values = dict(zip(names, chunk.extra[row], strict=True))
    assert values["tolerance_factor"] == pytest.approx((r_sr + r_o) / (np.sqrt(2) * (r_ti + r_o)), rel=1e-6)
    assert values["octahedral_factor"] == pytest.approx(r_ti / r_o, rel=1e-6)
    assert values["oxidation_state_B"] == pytest.approx(4.0)
    strict = PerovskiteSpace(SMALL.model_copy(update={"tolerance_factor": (0.95, 0.99)}))
    counts: Counter = Counter()
    kept = _all(strict, counts)
    assert _find(kept, "SrTiO3") is None  # t = 1.00
    assert counts["tolerance_high"] > 0 and counts["tolerance_low"] > 0
    assert ((kept.extra[:, 0] >= 0.95) & (kept.extra[:, 0] <= 0.99)).all()


def test_a_site_radius_falls_back_to_nearest_coordination():
    assert shannon_radius("Sr", 2, 12)[1] == 12
    assert shannon_radius("Bi", 3, 12)[1] == 8  # pymatgen lists Bi3+ at V, VI, VIII only
    space = PerovskiteSpace(PerovskiteSpaceConfig(a_site=("Bi",), b_site=("Fe",)))
    assert any("Bi+3" in note and "CN 8" in note for note in space.notes)


def test_ids_are_pymatgen_reduced_formulas_and_unique():
    config = SMALL.model_copy(update={"a_deficiency": (0.0, 0.1), "anion_deficiency": (0.0, 0.5)})
    chunk = _all(PerovskiteSpace(config))
    assert len(set(chunk.ids.tolist())) == len(chunk)
    rng = np.random.default_rng(0)
    for row in rng.choice(len(chunk), 200, replace=False):
        assert Composition(str(chunk.ids[row])).reduced_formula == chunk.ids[row]
        composition = Composition(str(chunk.ids[row])).fractional_composition
        expected = {element.Z - 1: amount for element, amount in composition.items()}
        got = {int(i): f for i, f in zip(chunk.indices[row], chunk.fractions[row], strict=True) if f > 0}
        assert got.keys() == expected.keys()
        np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-9)


def test_canonical_formulas_reduce_integer_compositions():
    ids = canonical_formulas(np.array([[37, 21, 7], [37, 21, 7]]), np.array([[2.0, 2.0, 6.0], [0.5, 1.0, 3.0]]))
    assert ids.tolist() == ["SrTiO3", "Sr0.5Ti1O3"]


def test_chunks_stream_in_fixed_sizes_and_order():
    space = PerovskiteSpace(SMALL)
    sizes = [len(chunk) for chunk in space.chunks(7)]
    assert set(sizes[:-1]) == {7} and 0 < sizes[-1] <= 7
    first = np.concatenate([chunk.ids for chunk in space.chunks(7)])
    second = np.concatenate([chunk.ids for chunk in rechunk(space.chunks(100), 13)])
    assert (first == second).all()


def test_fast_parser_agrees_with_pymatgen_on_bundled_formulas():
    formulas = read_formula_table("bundled:supercon").frame["formula"].tolist()
    formulas += read_formula_table("bundled:emery_wolverton").frame["formula"].tolist()
    formulas += ["Ca(OH)2", "Mg3(PO4)2", "K4(Fe(CN)6)", "Ba0.4K0.6Fe2As2"]
    indices, fractions = formula_fractions(formulas)
    for row, formula in enumerate(formulas):
        composition = Composition(formula).fractional_composition
        got = {int(i): f for i, f in zip(indices[row], fractions[row], strict=True) if f > 0}
        expected = {element.Z - 1: amount for element, amount in composition.items()}
        assert got.keys() == expected.keys(), formula
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-12), formula


def test_summary_counts_rejections_and_samples(tmp_path):
    summary = summarize_space(SMALL, sample_size=5)
    assert summary.size + sum(summary.rejected.values()) == summary.raw_size
    assert len(summary.sample) == 5 and "tolerance_factor" in summary.sample.columns
    assert "rejected by charge" in summary.render()
    pool = summarize_space(PoolSpaceConfig(source="bundled:supercon"))
    assert pool.rejected["duplicate"] > 0 and pool.rejected["unparsable"] > 0
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: t\nspace:\n  kind: perovskite\n  a_site: [Sr]\n  b_site: [Ti, Zr]\nobjectives:\n  - name: y\n"
    )
    result = CliRunner().invoke(space_app, ["summary", str(config), "--sample", "2"])
    assert result.exit_code == 0, result.output
    assert "perovskite space: 9 enumerated, 9 candidates kept" in result.output

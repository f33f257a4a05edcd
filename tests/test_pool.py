from pathlib import Path

import pandas as pd
import pytest

from sbin_loop.space import (
    DataSourceError,
    InvalidFormulaError,
    parse_formula,
    read_formula_table,
    sample_rows,
)


@pytest.mark.parametrize(
    ("formula", "reason"),
    [
        ("", "empty"),
        ("Xx2O", "not a chemical element"),
        ("Fe-1O", "cannot parse"),
        ("Sr1Ti1O3+2", "cannot parse"),
        ("Fe" * 150, "longer than"),
    ],
)
def test_bad_formulas_are_rejected_with_reason(formula, reason):
    with pytest.raises(InvalidFormulaError, match=reason):
        parse_formula(formula)


def test_good_formula_parses():
    assert parse_formula(" Ba0.4K0.6Fe2As2 ").reduced_formula == "K0.6Ba0.4Fe2As2"


def test_table_reports_bad_rows_by_line_and_merges_duplicates(tmp_path: Path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"formula": ["SrTiO3", "Qq3", "Sr2Ti2O6", "BaTiO3", ""], "y": [1.0, 2.0, 3.0, None, 5.0]}).to_csv(
        path, index=False
    )
    table = read_formula_table(str(path), value_columns=("y",))
    assert [(row.line, row.formula) for row in table.rejected] == [(3, "Qq3"), (6, "")]
    assert table.n_duplicate_rows == 1
    frame = table.frame.set_index("candidate_id")
    assert frame.loc["SrTiO3", "y"] == 2.0  # median of 1 and 3
    assert list(frame.index) == ["SrTiO3", "BaTiO3"]


def test_require_values_rejects_rows_without_values(tmp_path: Path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"formula": ["SrTiO3", "BaTiO3"], "y": [1.0, None]}).to_csv(path, index=False)
    table = read_formula_table(str(path), value_columns=("y",), require_values=True)
    assert list(table.frame.candidate_id) == ["SrTiO3"]
    assert "no numeric value" in table.rejected[0].reason


def test_missing_file_and_column_are_named(tmp_path: Path):
    with pytest.raises(DataSourceError, match="no such file"):
        read_formula_table(str(tmp_path / "absent.csv"))
    path = tmp_path / "t.csv"
    pd.DataFrame({"composition": ["SrTiO3"]}).to_csv(path, index=False)
    with pytest.raises(DataSourceError, match=r"missing column.*formula"):
        read_formula_table(str(path))


def test_bundled_supercon_reads_with_known_bad_rows():
    table = read_formula_table("bundled:supercon", value_columns=("Tc_K",))
    assert len(table.frame) > 12000
    assert len(table.rejected) == 13  # 7 unparsable, 6 with explicit zero amounts ("La2Sr0Cu0.75Zn0.25O4")
    assert all(row.line >= 2 for row in table.rejected)


def test_sample_rows_is_seeded():
    frame = pd.DataFrame({"a": range(100)})
    assert sample_rows(frame, 10, 1).equals(sample_rows(frame, 10, 1))
    assert not sample_rows(frame, 10, 1).equals(sample_rows(frame, 10, 2))
    assert len(sample_rows(frame, None, 1)) == 100


def test_candidate_ids_keep_the_formula_as_written_and_spellings_share_one_candidate(tmp_path: Path):
    path = tmp_path / "t.csv"
    formulas = ["Bi2Sr2CaCu2O8", "K3C60", "Sr2CaCu2Bi2O8", " Ba0.4K0.6Fe2As2 ", "K6C120", "Ca(OH)2"]
    pd.DataFrame({"formula": formulas, "Tc_K": [85.0, 19.0, 95.0, 38.0, 21.0, 0.0]}).to_csv(path, index=False)
    table = read_formula_table(str(path), value_columns=("Tc_K",))
    ids = table.frame["candidate_id"].tolist()
    assert ids == ["Bi2Sr2CaCu2O8", "K3C60", "Ba0.4K0.6Fe2As2", "CaO2H2"]  # pymatgen: Sr2CaCu2(BiO4)2, KC20
    assert table.frame["Tc_K"].tolist()[:2] == [90.0, 20.0]  # spellings of one composition merged (median)
    assert all(parse_formula(i).reduced_formula == k for i, k in zip(ids, table.frame["composition_key"], strict=True))


def test_the_replay_oracle_finds_a_candidate_spelled_otherwise_than_in_its_table(tmp_path: Path):
    from sbin_loop.oracles.base import JobRequest
    from sbin_loop.oracles.dataset import DatasetReplayOracle

    path = tmp_path / "t.csv"
    pd.DataFrame({"formula": ["Sr2CaCu2Bi2O8"], "Tc_K": [85.0]}).to_csv(path, index=False)
    oracle = DatasetReplayOracle(read_formula_table(str(path), value_columns=("Tc_K",)), {"Tc_K": "Tc_K"})
    request = JobRequest(job_id="j", candidate_id="Bi2Sr2CaCu2O8", formula="Bi2Sr2CaCu2O8", round=0)
    oracle.submit([request])
    assert oracle.poll([request])["j"].values == {"Tc_K": 85.0}

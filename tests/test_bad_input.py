"""Bad input, fuzzed: every failure is a clear error naming the field or row, and nothing stored changes."""

from __future__ import annotations

import string
from pathlib import Path

import pandas as pd
import pytest
from conftest import campaign_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbin_loop.config import ConfigError, parse_config
from sbin_loop.loop import Campaign
from sbin_loop.space import DataSourceError, InvalidFormulaError, parse_formula, read_formula_table, resolve_source

CELL_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12)
"""Text a spreadsheet cell can hold (control characters such as line breaks would split CSV rows)."""

VALID = {
    "name": "fuzz",
    "objectives": [{"name": "Tc_K", "transform": "log1p"}],
    "policy": {"batch_size": 4},
    "budget": {"initial": 5, "rounds": 2},
}
FIELDS = [
    ("seed",),
    ("name",),
    ("space", "sample"),
    ("space", "source"),
    ("policy", "batch_size"),
    ("policy", "mc_samples"),
    ("policy", "kind"),
    ("budget", "initial"),
    ("budget", "rounds"),
    ("budget", "max_hours"),
    ("model", "hidden"),
    ("model", "kl_weight"),
    ("model", "batch_size"),
    ("intervals", "level"),
    ("intervals", "n_draws"),
    ("oracle", "max_attempts"),
    ("oracle", "timeout_seconds"),
    ("store", "uri"),
    ("store", "database"),
    ("model", "learning_rate"),
    ("model", "epochs"),
    ("oracle", "poll_seconds"),
]
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _with(path: tuple[str, ...], value: object) -> dict:
    data = {key: dict(section) if isinstance(section, dict) else section for key, section in VALID.items()}
    if len(path) == 1:
        data[path[0]] = value
    else:
        data[path[0]] = {**data.get(path[0], {}), path[1]: value}
    return data


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JUNK)
def test_fuzzed_config_values_are_accepted_or_name_their_field(field, value):
    try:
        parse_config(_with(field, value))
    except ConfigError as error:
        assert f"  {'.'.join(field)}" in str(error), str(error)


@settings(max_examples=100, deadline=None)
@given(
    section=st.sampled_from(["", "policy", "budget", "model", "space"]),
    key=st.text(string.ascii_lowercase, min_size=3).map(lambda text: f"x_{text}"),
)
def test_unknown_keys_are_named(section, key):
    data = {**VALID, key: 1} if not section else {**VALID, section: {**VALID.get(section, {}), key: 1}}
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert "unknown key" in str(error.value) and key in str(error.value)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(alphabet="ABCDEFGHIKLMNOPRSTUVWYZabcdefghiklmnoprstuy0123456789.()-+ ")))
def test_fuzzed_formulas_parse_to_real_compositions_or_raise_invalid_formula(text):
    try:
        composition = parse_formula(text)
    except InvalidFormulaError as error:
        assert str(error)
    else:
        assert len(composition) > 0
        assert all(amount > 0 for amount in composition.values())


def test_gigantic_and_degenerate_formulas():
    for text in ["Fe" * 10**6, "(" * 500 + "Fe" + ")" * 500, "Fe0O", "Sr1Ti0.0O3", "Fe1e400", "   "]:
        with pytest.raises(InvalidFormulaError):
            parse_formula(text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(["SrTiO3", "BaTiO3", "Sr2Ti2O6", "MgB2"]), CELL_TEXT), max_size=25))
def test_fuzzed_pool_tables_account_for_every_row(tmp_path, formulas):
    path = tmp_path / "pool.csv"
    pd.DataFrame({"formula": formulas, "y": range(len(formulas))}).to_csv(path, index=False)
    table = read_formula_table(str(path), value_columns=("y",))
    assert len(table.frame) + table.n_duplicate_rows + len(table.rejected) == len(formulas)
    assert all(2 <= row.line <= len(formulas) + 1 for row in table.rejected)


def test_relative_paths_cannot_escape_the_config_directory(tmp_path: Path):
    (tmp_path / "configs").mkdir()
    with pytest.raises(DataSourceError, match="may not leave"):
        resolve_source("../../etc/passwd", tmp_path / "configs")
    assert resolve_source("pool.csv", tmp_path / "configs") == (tmp_path / "configs" / "pool.csv").resolve()
    assert resolve_source("/etc/hostname", tmp_path / "configs") == Path("/etc/hostname")
    with pytest.raises(DataSourceError, match="unknown bundled dataset"):
        resolve_source("bundled:nothing")


def _collections(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (directory / "store").rglob("*.collection")}


def test_bad_input_on_an_existing_campaign_changes_nothing(tmp_path: Path, pool_csv: Path):
    directory = tmp_path / "c"
    Campaign.from_config(campaign_config(pool_csv, budget={"initial": 6, "rounds": 0}), directory).run()
    before = _collections(directory)
    empty = tmp_path / "empty.csv"
    pd.DataFrame({"formula": ["Xx", "", "Qq2"], "Tc_K": [1, 2, 3]}).to_csv(empty, index=False)
    attempts = [
        lambda: Campaign.from_config(campaign_config(pool_csv, policy={"batch_size": 9}), directory),
        lambda: Campaign.from_config(campaign_config(empty), directory),
        lambda: Campaign.from_config(campaign_config(pool_csv, name="other"), directory),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigError):
            attempt()
    assert _collections(directory) == before


def test_an_empty_pool_is_refused_before_anything_is_stored(tmp_path: Path):
    empty = tmp_path / "empty.csv"
    pd.DataFrame({"formula": ["Xx", "", "Qq2"], "Tc_K": [1, 2, 3]}).to_csv(empty, index=False)
    with pytest.raises(ConfigError, match=r"budget\.initial"):
        Campaign.from_config(campaign_config(empty), tmp_path / "new")
    assert not (tmp_path / "new" / "campaign.json").exists()

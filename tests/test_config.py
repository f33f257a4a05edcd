from pathlib import Path

import pytest
from conftest import campaign_config

from sbin_loop.config import ConfigError, load_config, parse_config


def _base() -> dict:
    return {"name": "x", "objectives": [{"name": "Tc_K"}]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"budget": {"rounds": -1}}, "budget.rounds"),
        ({"budget": {"initial": "many"}}, "budget.initial"),
        ({"policy": {"batch_size": 0}}, "policy.batch_size"),
        ({"policy": {"kind": "magic"}}, "policy.kind"),
        ({"polcy": {}}, "polcy"),
        ({"model": {"hidden": [64, -1]}}, "model.hidden"),
        ({"model": {"learning_rate": 0}}, "model.learning_rate"),
        ({"model": {"calibration_folds": 1}}, "model.calibration_folds"),
        ({"objectives": []}, "objectives"),
        ({"intervals": {"level": 1.5}}, "intervals.level"),
        ({"store": {"uri": "http://example"}}, "store.uri"),
        ({"name": "bad name/with slash"}, "name"),
    ],
)
def test_bad_values_name_the_field(change, field):
    with pytest.raises(ConfigError) as error:
        parse_config({**_base(), **change})
    assert f"  {field}:" in str(error.value)


def test_policy_objective_must_exist():
    with pytest.raises(ConfigError, match=r"policy\.objective"):
        parse_config({**_base(), "policy": {"objective": "Ef_vac"}})


def test_missing_required_field_is_named():
    with pytest.raises(ConfigError, match="objectives: Field required"):
        parse_config({"name": "x"})


def test_load_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)


def test_shipped_configs_are_valid():
    for path in Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"):
        load_config(path)


def test_defaults(pool_csv):
    config = campaign_config(pool_csv)
    assert config.policy_objective.name == "Tc_K"
    assert parse_config(_base()).model.hidden == (64, 128, 64)

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


def test_an_unknown_surrogate_lists_the_known_names():
    message = r"  surrogate: unknown kind 'svm' \(sbin's own: bnn, forest, gp; no sbin.surrogates plugin is installed\)"
    with pytest.raises(ConfigError, match=message):
        parse_config({**_base(), "surrogate": "svm"})
    assert parse_config({**_base(), "surrogate": "forest"}).surrogate == "forest"


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


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": {"kl_weight": float("inf")}}, "model.kl_weight"),
        ({"model": {"learning_rate": float("nan")}}, "model.learning_rate"),
        ({"budget": {"max_hours": float("inf")}}, "budget.max_hours"),
        ({"budget": {"target": float("-inf")}}, "budget.target"),
        ({"budget": {"rounds": 1e18}}, "budget.rounds"),
        ({"budget": {"initial": 10**12}}, "budget.initial"),
        ({"seed": 2**32}, "seed"),
        ({"policy": {"batch_size": 10**10}}, "policy.batch_size"),
        ({"policy": {"mc_samples": 10**7}}, "policy.mc_samples"),
        ({"intervals": {"n_draws": 10**7}}, "intervals.n_draws"),
        ({"model": {"hidden": [200000, 200000]}}, "model.hidden"),
        ({"model": {"hidden": [8] * 100}}, "model.hidden"),
        ({"model": {"max_steps": 10**12}}, "model.max_steps"),
        ({"model": {"ensemble_size": 10**6}}, "model.ensemble_size"),
        ({"oracle": {"poll_seconds": 1e300}}, "oracle.poll_seconds"),
        ({"name": ".."}, "name"),
        ({"name": "."}, "name"),
        ({"name": "a" * 5000}, "name"),
        ({"store": {"database": "../../x"}}, "store.database"),
        ({"store": {"database": ""}}, "store.database"),
    ],
)
def test_non_finite_huge_and_unsafe_values_name_the_field(change, field):
    with pytest.raises(ConfigError) as error:
        parse_config({**_base(), **change})
    assert f"  {field}:" in str(error.value)
    assert len(str(error.value)) < 600


def test_limits_leave_real_values_alone():
    config = parse_config({**_base(), "name": "run-2.b_c", "seed": 2**32 - 1, "model": {"hidden": [4096, 4096]}})
    assert config.seed == 2**32 - 1 and config.model.hidden == (4096, 4096)


def test_errors_cut_long_values_and_list_at_most_twenty_fields():
    data = {**_base(), "name": "x" * 100_000, **{f"x_{i}": i for i in range(50)}}
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    message = str(error.value)
    assert len(message) < 3000 and "..." in message and "more errors" in message


def _aliases_of_aliases(levels: int, width: int) -> str:
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_aliases_of_aliases(6, 10), "expands to more than"),
        ("name: &x [*x]\n", "recursive"),
        ("[" * 3000 + "]" * 3000, "nested deeper"),
        ("x" * (2 << 20), "bytes"),
        ("name: [unclosed", "not valid YAML"),
        ("seed: " + "1" * 5000, "not a usable YAML value"),
        ("seed: 2001-13-45", "not a usable YAML value"),
        ("seed: !!python/object/apply:os.system [ls]", "not valid YAML"),
    ],
    ids=["aliases", "recursive", "deep", "huge", "syntax", "long-integer", "bad-date", "python-tag"],
)
def test_hostile_yaml_is_refused_with_one_line(tmp_path: Path, text: str, reason: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=reason) as error:
        load_config(path)
    assert "\n" not in str(error.value) and len(str(error.value)) < 500


def test_yaml_with_a_few_aliases_still_loads(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nobjectives: [&tc {name: Tc_K}]\npolicy: {objective: Tc_K}\n")
    assert load_config(path)[0].objectives[0].name == "Tc_K"


@pytest.mark.parametrize(
    "store",
    [
        {"uri": "http://user:hunter2@db.example/x"},
        "mongodb://user:hunter2@db.example",
        {"uri": ["mongodb://u:hunter2@h"]},
    ],
)
def test_config_errors_never_echo_a_password(store):
    with pytest.raises(ConfigError) as caught:
        parse_config({"name": "x", "objectives": [{"name": "Tc_K"}], "store": store})
    text = str(caught.value)
    assert "hunter2" not in text and "2@" not in text  # not even the part of it a shortened value keeps

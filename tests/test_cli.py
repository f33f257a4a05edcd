"""The command line as a user drives it."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import FAST_MODEL
from typer.testing import CliRunner

from sbin_loop.cli import app
from sbin_loop.cli_errors import USER_ERRORS, user_error_classes
from sbin_loop.status import campaign_status, open_campaign

runner = CliRunner()


def _write_config(tmp_path: Path, pool_csv: Path, **changes) -> Path:
    config = {
        "name": "cli",
        "seed": 1,
        "space": {"kind": "pool", "source": pool_csv.name},
        "objectives": [{"name": "Tc_K", "transform": "log1p", "unit": "K"}],
        "model": FAST_MODEL,
        "policy": {"batch_size": 3, "mc_samples": 16},
        "oracle": {"poll_seconds": 0.01},
        "budget": {"initial": 5, "rounds": 1},
        "intervals": {"n_draws": 100},
        **changes,
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _store_contents(directory: Path) -> dict[str, bytes]:
    """Bytes of every stored collection (montydb rewrites its storage config on connect; data must not change)."""
    return {path.name: path.read_bytes() for path in (directory / "store").rglob("*.collection")}


def test_run_status_and_rerun(tmp_path: Path, pool_csv: Path):
    config = _write_config(tmp_path, pool_csv)
    directory = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--dir", str(directory)])
    assert result.exit_code == 0, result.output
    assert "round   0 | evaluations     5" in result.output
    assert "round   1 | evaluations     8" in result.output

    status = runner.invoke(app, ["status", str(directory), "--json"])
    state = json.loads(status.stdout)
    assert state["state"] == "finished" and state["n_evaluations"] == 8
    assert [len(row["selected"]) for row in state["rounds"]] == [5, 3]
    assert state["best"][0]["lower"] <= state["best"][0]["mean"] <= state["best"][0]["upper"]

    text = runner.invoke(app, ["status", str(directory)])
    assert "finished, 2/2 rounds, 8 evaluations" in text.output

    before = _store_contents(directory)
    again = runner.invoke(app, ["run", str(config), "--dir", str(directory)])
    assert again.exit_code == 0 and "is finished" in again.output
    assert _store_contents(directory) == before


def test_a_run_killed_after_its_last_round_is_finished_by_the_next_run(tmp_path: Path, pool_csv: Path):
    config = _write_config(tmp_path, pool_csv)
    directory = tmp_path / "run"
    assert runner.invoke(app, ["run", str(config), "--dir", str(directory)]).exit_code == 0
    store, doc = open_campaign(directory)  # what a kill between the last round and the stop reason leaves behind
    try:
        store.put_campaign(doc.model_copy(update={"stop_reason": None}))
    finally:
        store.close()
    assert campaign_status(directory)["state"] == "stopped"  # unfinished, and no process drives it

    again = runner.invoke(app, ["run", str(config), "--dir", str(directory)])
    assert again.exit_code == 0 and "is finished" in again.output
    state = campaign_status(directory)
    assert state["state"] == "finished" and state["stop_reason"].startswith("all 1 rounds")
    assert state["n_evaluations"] == 8


def test_bad_config_exits_with_named_field(tmp_path: Path, pool_csv: Path):
    config = _write_config(tmp_path, pool_csv, budget={"initial": 5, "rounds": -2})
    result = runner.invoke(app, ["run", str(config), "--dir", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "budget.rounds" in result.output


def test_status_of_non_campaign(tmp_path: Path):
    result = runner.invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 1 and "not a sbin campaign directory" in result.output


def test_model_train_and_predict(tmp_path: Path, supercon: pd.DataFrame):
    train = tmp_path / "train.csv"
    supercon.iloc[:150][["formula", "Tc_K"]].rename(columns={"formula": "comp"}).to_csv(train, index=False)
    out = tmp_path / "model"
    args = ["model", "train", "--data", str(train), "--target", "Tc_K", "--formula-column", "comp", "--out", str(out)]
    result = runner.invoke(app, [*args, "--test-fraction", "0.15", "--bounds", "0,"])
    assert result.exit_code == 0, result.output
    assert "transform none, support [0.0, None]" in result.output
    assert "held-out test (22 compositions): MAE" in result.output  # 15% of 150 rows, never trained on
    # every training row trains a member and is predicted out of fold by the member that did not see it
    assert "trained on 128 compositions (all of them; 128 out-of-fold predictions chose" in result.output
    assert "128 recalibrated the spread" in result.output

    queries = tmp_path / "q.csv"
    pd.DataFrame({"formula": ["YBa2Cu3O7", "Qq2", "MgB2", "YBa2Cu3O7"]}).to_csv(queries, index=False)
    predictions = tmp_path / "p.csv"
    result = runner.invoke(
        app, ["model", "predict", "--model", str(out), "--input", str(queries), "--output", str(predictions)]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(predictions)
    assert list(frame.columns[:5]) == ["formula", "Tc_K_mean", "Tc_K_std", "Tc_K_lower", "Tc_K_upper"]
    assert list(frame.formula) == ["YBa2Cu3O7", "Qq2", "MgB2", "YBa2Cu3O7"]
    valid = frame.drop(index=1)
    assert (valid.Tc_K_lower <= valid.Tc_K_mean).all() and (valid.Tc_K_mean <= valid.Tc_K_upper).all()
    assert frame.Tc_K_mean.isna().tolist() == [False, True, False, False]
    assert "not a chemical element" in frame.error[1]
    assert (valid.Tc_K_lower >= 0).all()  # the support stored with the model holds in every prediction
    # the share of draws at Tc = 0, the probability of no transition: 0 where the whole interval is above 0 K
    assert frame.Tc_K_p_at_low.isna().tolist() == [False, True, False, False]
    assert valid.Tc_K_p_at_low.between(0, 1).all()
    assert (valid.Tc_K_p_at_low[valid.Tc_K_lower > 0] <= 0.025).all()
    assert (valid.Tc_K_lower[valid.Tc_K_p_at_low > 0.05] == 0).all()


def test_model_train_uses_every_row_by_default_and_bounds_change_the_model(tmp_path: Path, supercon: pd.DataFrame):
    """Without ``--bounds`` a model of 150 rows puts intervals below 0 K; ``test_model_train_and_predict`` trains
    one with ``--bounds 0,`` and finds every lower end at 0 K or above."""
    train = tmp_path / "train.csv"
    supercon.iloc[:150][["formula", "Tc_K"]].to_csv(train, index=False)
    queries = tmp_path / "q.csv"
    pd.DataFrame({"formula": ["La2CuO4", "Nb3Sn", "SrTiO3", "Cu"]}).to_csv(queries, index=False)
    out = tmp_path / "free"
    result = runner.invoke(app, ["model", "train", "--data", str(train), "--target", "Tc_K", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "trained on 150 compositions" in result.output and "held-out test" not in result.output
    assert "support unbounded" in result.output
    assert "inputs standardised" in result.output  # fewer rows than quantile_rows
    predictions = tmp_path / "free.csv"
    result = runner.invoke(
        app, ["model", "predict", "--model", str(out), "--input", str(queries), "--output", str(predictions)]
    )
    assert result.exit_code == 0, result.output
    assert (pd.read_csv(predictions).Tc_K_lower < 0).any()


def test_commands_load_the_model_stack_only_when_they_use_it():
    """Importing the ``sbin`` app (all ``--help``, ``status``, ``daemon stop`` and a config error need) loads no torch,
    scipy.stats, matplotlib or scikit-learn: those load inside the commands that fit, predict or plot."""
    heavy = ("torch", "scipy.stats", "matplotlib", "sklearn", "botorch")
    code = f"import sys, sbin_loop.cli; print([name for name in {heavy!r} if name in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
    # ``sbin run`` loads the campaign (torch, botorch), but not scikit-learn (the forest peer) or matplotlib (plots)
    code = (
        "import sys; from sbin_loop.campaign import Campaign; "
        "print([name for name in ('sklearn', 'matplotlib') if name in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_every_user_error_is_named_by_the_module_that_defines_it():
    """``reports_errors`` finds the user-error classes among the loaded modules, so each entry must name its class's
    own module: a re-exporting module could be unloaded while the error is raised."""
    for module, name in USER_ERRORS:
        error = getattr(importlib.import_module(module), name)
        assert issubclass(error, Exception) and error.__module__ == module, (module, name)
    assert len(user_error_classes()) == len(USER_ERRORS)


@pytest.mark.parametrize(
    ("bounds", "message"), [("5,1", "must be below"), ("x,", "could not convert"), ("1", "LOW,HIGH")]
)
def test_model_train_refuses_bad_bounds(tmp_path: Path, supercon: pd.DataFrame, bounds: str, message: str):
    train = tmp_path / "train.csv"
    supercon.iloc[:20][["formula", "Tc_K"]].to_csv(train, index=False)
    result = runner.invoke(
        app,
        ["model", "train", "--data", str(train), "--target", "Tc_K", "--out", str(tmp_path / "m"), "--bounds", bounds],
    )
    assert result.exit_code == 1 and "--bounds" in result.output and message in result.output, result.output
    assert not (tmp_path / "m").exists()


def test_model_train_refuses_rows_outside_the_bounds_by_line(tmp_path: Path, supercon: pd.DataFrame):
    train = tmp_path / "train.csv"
    rows = supercon.iloc[:20][["formula", "Tc_K"]].copy()
    rows.loc[rows.index[3], "Tc_K"] = -4.0
    rows.to_csv(train, index=False)
    result = runner.invoke(
        app,
        ["model", "train", "--data", str(train), "--target", "Tc_K", "--out", str(tmp_path / "m"), "--bounds", "0,"],
    )
    assert result.exit_code == 1 and "outside --bounds" in result.output and "line(s) 5" in result.output, result.output


def test_model_predict_missing_model(tmp_path: Path):
    result = runner.invoke(
        app, ["model", "predict", "--model", str(tmp_path), "--input", "x.csv", "--output", str(tmp_path / "o.csv")]
    )
    assert result.exit_code == 1 and "cannot read metadata.json" in result.output


def test_model_sites_make_the_two_site_assignments_of_one_composition_different_inputs(tmp_path: Path):
    from sbin_loop.data import bundled_path

    table = pd.read_csv(bundled_path("emery_wolverton"))
    both = table[table["composition_key"].isin(table["composition_key"].unique()[:80])]  # both assignments of each
    train = tmp_path / "ew.csv"
    both.to_csv(train, index=False)
    out = tmp_path / "sites"
    args = ["model", "train", "--data", str(train), "--target", "e_form oxygen", "--out", str(out)]
    result = runner.invoke(app, [*args, "--sites", "atom a,atom b"])
    assert result.exit_code == 0, result.output
    assert f"trained on {len(both)} compositions" in result.output  # site assignments are not merged as duplicates
    queries = tmp_path / "q.csv"
    pd.DataFrame({"formula": ["SrTiO3", "SrTiO3", "SrTiO3"], "A": ["Sr", "Ti", "Ba"], "B": ["Ti", "Sr", "Ti"]}).to_csv(
        queries, index=False
    )
    predictions = tmp_path / "p.csv"
    predict = ["model", "predict", "--model", str(out), "--input", str(queries), "--output", str(predictions)]
    result = runner.invoke(app, [*predict, "--sites", "A,B"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(predictions)
    assert abs(frame["e_form oxygen_mean"][0] - frame["e_form oxygen_mean"][1]) > 0.5  # Sr on A vs Ti on A
    assert frame["e_form oxygen_mean"].isna().tolist() == [False, False, True]
    assert "Ba is not in SrTiO3" in frame.error[2]
    result = runner.invoke(app, predict)  # the model needs its site columns
    assert result.exit_code == 1 and "--sites" in result.output, result.output


def test_model_sites_keep_the_site_assignments_of_one_composition_in_one_fold_and_one_side_of_the_test_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Cross-fitting folds and the --test-fraction split hold out whole compositions: a composition's other site
    assignment in training would make the out-of-fold errors (stopping, noise level, recalibration) and the test
    errors errors on seen compositions."""
    from sbin_loop.data import bundled_path
    from sbin_loop.model.surrogate import BNNSurrogate
    from sbin_loop.space.pool import composition_key_of

    table = pd.read_csv(bundled_path("emery_wolverton"))
    twins = table.groupby("composition_key").size().loc[lambda size: size == 2].index[:40]
    both = table[table["composition_key"].isin(twins)]  # 40 compositions with both site assignments
    train = tmp_path / "ew.csv"
    both.to_csv(train, index=False)
    fits = []

    def fit(self, features, targets, seed, groups=None, warm_start=None):
        fits.append((features, groups))
        raise ValueError("captured")

    monkeypatch.setattr(BNNSurrogate, "fit", fit)
    args = ["model", "train", "--data", str(train), "--target", "e_form oxygen", "--out", str(tmp_path / "m")]
    for extra, n_compositions in (([], 40), (["--test-fraction", "0.25"], 30)):
        result = runner.invoke(app, [*args, "--sites", "atom a,atom b", *extra])
        assert result.exit_code == 1 and "captured" in result.output, result.output
        features, groups = fits.pop()
        assert groups is not None and len(groups) == len(features) == 2 * n_compositions
        assert set(groups) <= {composition_key_of(formula) for formula in both["formula"]}
        assert pd.Series(groups).value_counts().eq(2).all()  # each composition with both its assignments
    result = runner.invoke(app, args)  # one row per composition: the folds deal rows
    assert result.exit_code == 1 and fits.pop()[1] is None

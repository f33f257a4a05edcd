"""Hostile and broken input, run through the real ``sbin`` command: each is refused with one line and exit code 1.

Every case runs ``python -m sbin_loop`` in a subprocess (``tests/hostile.py``), so it sees exactly what a user sees:
no traceback, the expected exit code, a one-line error naming the field, row, key or path, stored files unchanged.
One small campaign and its checkpoint are built once for the module.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import FAST_MODEL
from hostile import Sandbox, check_refused, run_sbin

import sbin_loop
from sbin_loop.model.checkpoint import CheckpointError, save_surrogate
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.surrogate import BNNSurrogate

REPOSITORY = Path(__file__).resolve().parents[1]


def _config(pool: Path, **changes: object) -> dict:
    config = {
        "name": "hostile",
        "seed": 1,
        "space": {"kind": "pool", "source": str(pool)},
        "objectives": [{"name": "Tc_K", "transform": "log1p", "unit": "K"}],
        "model": FAST_MODEL,
        "policy": {"batch_size": 3, "mc_samples": 16},
        "oracle": {"poll_seconds": 0.01},
        "budget": {"initial": 5, "rounds": 1},
        "intervals": {"n_draws": 100},
    }
    config.update(changes)
    return config


def _write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, supercon: pd.DataFrame) -> dict[str, Path]:
    """A pool (one unparsable row), a finished campaign run by ``sbin run``, its config and a query table."""
    base = tmp_path_factory.mktemp("hostile")
    pool = base / "pool.csv"
    rows = supercon.iloc[:60][["formula", "Tc_K"]]
    pd.concat([rows, pd.DataFrame({"formula": ["Xx2O"], "Tc_K": [1.0]})]).to_csv(pool, index=False)
    config = _write_yaml(base / "campaign.yaml", _config(pool))
    outcome = run_sbin(["run", str(config), "--dir", str(base / "campaign")], base)
    assert outcome.code == 0, outcome.stderr
    queries = base / "queries.csv"
    pd.DataFrame({"formula": ["MgB2", "SrTiO3"]}).to_csv(queries, index=False)
    return {"pool": pool, "config": config, "campaign": base / "campaign", "queries": queries}


@pytest.fixture()
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox.make(tmp_path)


# 1. Config values -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("section", "text", "field"),
    [
        ("model", "kl_weight: .inf", "model.kl_weight"),
        ("model", "learning_rate: .inf", "model.learning_rate"),
        ("", "seed: 1.0e+23", "seed"),
    ],
)
def test_infinite_or_huge_config_values_name_the_field(sandbox, built, section, text, field):
    config = _config(built["pool"])
    if section:
        config[section] = {**config[section], **yaml.safe_load(text)}
    else:
        config.update(yaml.safe_load(text))
    path = sandbox.root / "c.yaml"
    path.write_text(yaml.safe_dump(config).replace("inf", ".inf").replace("..inf", ".inf"))
    check_refused(sandbox, ["run", str(path), "--dir", "c"], mentions=(field,))
    assert not (sandbox.root / "c").exists()


# 2. Campaign name and store database -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ".."}, "name"),
        ({"name": "a" * 5000}, "name"),
        ({"store": {"database": "../../x"}}, "store.database"),
    ],
)
def test_names_that_are_not_safe_path_components_are_refused(sandbox, built, changes, field):
    path = _write_yaml(sandbox.root / "c.yaml", _config(built["pool"], **changes))
    outcome = check_refused(sandbox, ["run", str(path)], mentions=(f"{field}:",))
    assert len(outcome.stderr) < 1000
    assert not (sandbox.root / "store").exists() and not (sandbox.root / "campaigns").exists()


# 3. Hostile YAML ---------------------------------------------------------------------------------------------------
def _laughs(levels: int, width: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"name: *a{levels - 1}", ""])


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        (_laughs(9, 9), "expands to more than"),
        (_laughs(7, 6), "expands to more than"),
        ("name: " + "x" * (2 << 20) + "\n", "bytes"),
    ],
    ids=["billion-laughs", "seven-levels", "huge"],
)
def test_hostile_yaml_is_refused_quickly(sandbox, text, mentions):
    (sandbox.root / "c.yaml").write_text(text)
    outcome = check_refused(sandbox, ["run", "c.yaml"], mentions=(mentions,), timeout=60)
    assert len(outcome.stderr) < 1000


def test_a_fifo_as_config_does_not_hang(sandbox):
    os.mkfifo(sandbox.root / "c.yaml")
    check_refused(sandbox, ["run", "c.yaml"], mentions=("not a regular file",), timeout=60)


# 4. The command line -----------------------------------------------------------------------------------------------
def test_version_comes_from_one_place(sandbox):
    outcome = run_sbin(["--version"], sandbox.root)
    assert outcome.code == 0 and outcome.stdout.strip() == f"sbin {sbin_loop.__version__}"
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sbin_loop.__version__"}
    assert project["build-system"]["requires"] == ["setuptools>=77"]
    assert (REPOSITORY / "LICENSE").read_text().startswith("BSD 3-Clause License")


def test_json_errors_are_json_with_exit_code_1(sandbox):
    outcome = check_refused(sandbox, ["daemon", "status", str(sandbox.root), "--json"], json_output=True)
    assert "not a sbin campaign directory" in json.loads(outcome.stdout)["error"]


def test_usage_errors_keep_exit_code_2(sandbox):
    assert run_sbin(["run", "--no-such-option"], sandbox.root).code == 2


def test_rerunning_a_finished_campaign_warns_once_per_row(sandbox, built):
    campaign = sandbox.root / "campaign"
    shutil.copytree(built["campaign"], campaign)
    outcome = run_sbin(["run", str(built["config"]), "--dir", str(campaign)], sandbox.root)
    assert outcome.code == 0 and "is finished" in outcome.stdout
    assert outcome.stderr.count("skipped 'Xx2O'") == 1, outcome.stderr


# 5. One-line errors instead of tracebacks --------------------------------------------------------------------------
def test_run_dir_that_is_a_file(sandbox, built):
    (sandbox.root / "afile").write_text("x")
    check_refused(sandbox, ["run", str(built["config"]), "--dir", "afile"], mentions=("--dir", "afile"))


def test_garbled_campaign_marker(sandbox, built):
    campaign = sandbox.root / "campaign"
    shutil.copytree(built["campaign"], campaign)
    (campaign / "campaign.json").write_text("{garbled")
    args = ["run", str(built["config"]), "--dir", str(campaign)]
    check_refused(sandbox, args, mentions=("campaign.json",), keep=campaign)


def test_empty_csv_as_pool_source(sandbox, built):
    (sandbox.root / "empty.csv").write_bytes(b"")
    path = _write_yaml(sandbox.root / "c.yaml", _config(sandbox.root / "empty.csv"))
    check_refused(sandbox, ["run", str(path), "--dir", "c"], mentions=("empty.csv",))


def test_daemon_start_with_a_missing_source(sandbox, built):
    path = _write_yaml(sandbox.root / "c.yaml", _config(sandbox.root / "absent.csv"))
    args = ["daemon", "start", str(path), "--dir", "c"]
    outcome = check_refused(sandbox, args, mentions=("absent.csv: no such file",))
    assert "|" not in outcome.stderr


def test_forcefield_config_without_the_extra_creates_nothing(sandbox, built):
    blocker = sandbox.root.parent / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('atomate2', 'jobflow', 'chgnet'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    config = _config(built["pool"], oracle={"kind": "forcefield"}, objectives=[{"name": "Ef_vac_O"}])
    path = _write_yaml(sandbox.root / "c.yaml", config)
    check_refused(
        sandbox,
        ["run", str(path), "--dir", "c"],
        mentions=("oracles.0", "pip install -e '.[forcefield]'"),
        env={"PYTHONPATH": f"{REPOSITORY}{os.pathsep}{blocker}"},
    )
    assert not (sandbox.root / "c").exists()


def test_file_size_limit_reached_mid_run_is_one_line_naming_the_file(sandbox, built):
    limit = 40 * 1024

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "sbin_loop", "run", str(built["config"]), "--dir", "c"],
        cwd=sandbox.root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        preexec_fn=limit_file_size,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "c/" in last and "cannot write" in last, last


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["model", "train", "--data", "empty.csv", "--target", "Tc_K", "--out", "m"], ("empty.csv",)),
        (["model", "train", "--data", "{pool}", "--target", "Tc_K", "--out", "afile/m"], ("--out", "afile")),
        (["model", "predict", "--model", "m", "--input", "adir", "--output", "o.csv"], ("metadata.json",)),
        (["model", "predict", "--model", "{model}", "--input", "adir", "--output", "o.csv"], ("adir",)),
        (["model", "predict", "--model", "{model}", "--input", "{queries}", "--output", "adir"], ("--output",)),
    ],
    ids=["train-empty", "train-out-under-file", "predict-no-model", "predict-input-dir", "out-dir"],
)
def test_model_commands_refuse_bad_paths(sandbox, built, args, mentions):
    (sandbox.root / "empty.csv").write_bytes(b"")
    (sandbox.root / "afile").write_text("x")
    (sandbox.root / "adir").mkdir()
    model = built["campaign"] / "checkpoints" / "round_0001"
    paths = {"{pool}": str(built["pool"]), "{model}": str(model), "{queries}": str(built["queries"])}
    check_refused(sandbox, [paths.get(arg, arg) for arg in args], mentions=mentions)


# 6. Training targets -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["inf", "-1e39"])
def test_model_train_refuses_unrepresentable_targets_by_line(sandbox, built, value):
    table = pd.read_csv(built["pool"]).iloc[:-1].astype({"Tc_K": str})  # without the unparsable row
    table.loc[2, "Tc_K"] = value
    table.to_csv(sandbox.root / "data.csv", index=False)
    args = ["model", "train", "--data", "data.csv", "--target", "Tc_K", "--out", "m"]
    check_refused(sandbox, args, mentions=("line(s) 4",))
    assert not (sandbox.root / "m").exists()


def test_a_non_finite_model_is_never_saved(tmp_path):
    surrogate = BNNSurrogate(3, ("y",), ("none",), ModelConfig(hidden=(4,), ensemble_size=1))
    surrogate.y_std.fill_(float("nan"))
    with pytest.raises(CheckpointError, match="diverged"):
        save_surrogate(surrogate, tmp_path / "m")
    assert not (tmp_path / "m").exists()


# 7. Checkpoint metadata --------------------------------------------------------------------------------------------
def _edit_metadata(metadata: dict, case: str) -> object:
    if case == "huge-hidden":
        metadata["config"]["hidden"] = [200000, 200000]
    elif case == "other-hidden":
        metadata["config"]["hidden"] = [64, 64]
    elif case == "missing-key":
        del metadata["n_features"]
    elif case == "list":
        return [metadata]
    return metadata


@pytest.mark.parametrize(
    ("case", "mentions"),
    [
        ("huge-hidden", "config.hidden"),
        ("other-hidden", "shape"),
        ("missing-key", "n_features"),
        ("list", "JSON object"),
        ("truncated-weights", "weights.safetensors"),
        ("fifo", "not a regular file"),
    ],
)
def test_checkpoint_metadata_is_validated_before_allocating(sandbox, built, case, mentions):
    model = sandbox.root / "m"
    shutil.copytree(built["campaign"] / "checkpoints" / "round_0001", model)
    metadata_path, weights = model / "metadata.json", model / "weights.safetensors"
    if case == "truncated-weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif case == "fifo":
        metadata_path.unlink()
        os.mkfifo(metadata_path)
    else:
        metadata_path.write_text(json.dumps(_edit_metadata(json.loads(metadata_path.read_text()), case)))
    args = ["model", "predict", "--model", "m", "--input", str(built["queries"]), "--output", "o.csv"]
    check_refused(sandbox, args, mentions=(mentions,), timeout=60)
    assert not (sandbox.root / "o.csv").exists()


# 8. Space size -----------------------------------------------------------------------------------------------------
def test_a_huge_perovskite_space_is_refused_with_its_size(sandbox):
    space = {"kind": "perovskite", "max_species_a": 4, "max_species_b": 4, "fraction_denominator": 100}
    path = _write_yaml(sandbox.root / "c.yaml", {"name": "big", "objectives": [{"name": "Tc_K"}], "space": space})
    check_refused(sandbox, ["space", "summary", str(path)], mentions=("3,806,486,587,130,500", "--max-candidates"))

"""The BNN's boosted-tree inputs: out-of-fold on training rows, refitted for candidates, stored without pickle."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from sbin_loop.cli import app
from sbin_loop.model import cli as model_cli
from sbin_loop.model.boosted_inputs import BoostedInputs, with_boosted_inputs
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.checkpoint import CHECKPOINT_VERSION, CheckpointError, load_surrogate, save_surrogate
from sbin_loop.model.config import ModelConfig, stored_model_config
from sbin_loop.model.sites import formula_inputs
from sbin_loop.model.splits import cross_validation_folds
from sbin_loop.model.surrogate import BNNSurrogate

runner = CliRunner()
FAST = {"hidden": (16, 16), "epochs": 30, "min_steps": 200, "max_steps": 400, "ensemble_size": 3}


def _steps(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A target of thresholds (which trees fit in a few splits) and one smooth output, measured on half the rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = np.stack([4.0 * (x[:, 0] > 0.3) + 2.0 * (x[:, 1] > -0.5), x[:, 2]], axis=1)
    y += rng.normal(scale=0.1, size=y.shape)
    y[::2, 1] = np.nan
    return x, y


@pytest.fixture(scope="module")
def stacked() -> BNNSurrogate:
    torch.set_num_threads(1)
    x, y = _steps(300)
    surrogate = BNNSurrogate(5, ("steps", "smooth"), ("none", "none"), ModelConfig(boosted_input_rows=200, **FAST))
    surrogate.fit(x, y, seed=0)
    return surrogate


def test_each_training_row_column_comes_from_a_booster_that_did_not_see_it():
    x, y = _steps(200)
    x, y = torch.as_tensor(x), torch.as_tensor(np.nan_to_num(y), dtype=torch.float32)
    mask = torch.ones_like(y, dtype=torch.bool)
    folds = cross_validation_folds(200, 4, seed=0)
    _, column = BoostedInputs.fit(x, y, mask, folds, min_rows=50, seed=0, threads=1)
    changed = y.clone()
    changed[folds[0], 0] += 100.0  # only the booster that skips fold 0 does not see this
    _, again = BoostedInputs.fit(x, changed, mask, folds, min_rows=50, seed=0, threads=1)
    torch.testing.assert_close(again[folds[0]], column[folds[0]])
    others = np.setdiff1d(np.arange(200), folds[0])
    assert (again[others, 0] - column[others, 0]).abs().mean() > 10  # the other folds' boosters trained on it


def test_outputs_with_too_few_values_get_no_booster_and_a_zero_column(stacked):
    assert stacked.boosted.fitted == (True, False)  # 300 observed values of "steps", 150 of "smooth"
    x, _ = _steps(20, seed=1)
    inputs = stacked.network_inputs(x)
    assert stacked.n_boosted == 2 and inputs.shape == (20, 5 + 2)
    assert torch.equal(inputs[:, -1], torch.zeros(20))
    assert inputs[:, -2].abs().sum() > 0


def test_below_the_threshold_the_model_is_the_one_without_boosted_inputs(tmp_path):
    x, y = _steps(60)
    fits = [
        BNNSurrogate(5, ("steps", "smooth"), ("none", "none"), ModelConfig(boosted_input_rows=rows, **FAST))
        for rows in (1000, None)
    ]
    for surrogate in fits:
        surrogate.fit(x, y, seed=0)
    assert fits[0].n_boosted == 0 and fits[0].network_inputs(x).shape == (60, 5)
    assert torch.equal(fits[0].predictive_draws(x, 30, seed=2), fits[1].predictive_draws(x, 30, seed=2))
    save_surrogate(fits[0], tmp_path / "ckpt")
    assert not list((tmp_path / "ckpt").glob("boosted_inputs_*"))
    assert load_surrogate(tmp_path / "ckpt").n_boosted == 0


def test_a_fit_that_reaches_the_threshold_rebuilds_the_members_and_one_below_it_drops_them(stacked):
    x, y = _steps(300)
    surrogate = BNNSurrogate(5, ("steps", "smooth"), ("none", "none"), ModelConfig(boosted_input_rows=200, **FAST))
    assert surrogate.members[0].layers[0].weight_mu.shape[0] == 5
    surrogate.fit(x, y, seed=0)
    assert surrogate.members[0].layers[0].weight_mu.shape[0] == 7 and surrogate.boost_knots.shape[1] == 2
    assert torch.equal(surrogate.predictive_draws(x[:9], 20, seed=1), stacked.predictive_draws(x[:9], 20, seed=1))
    surrogate.fit(x[:100], y[:100], seed=0)
    assert surrogate.n_boosted == 0 and surrogate.members[0].layers[0].weight_mu.shape[0] == 5


def test_boosted_inputs_lower_the_error_on_a_target_trees_fit_well(stacked):
    x, y = _steps(300)
    plain = BNNSurrogate(5, ("steps", "smooth"), ("none", "none"), ModelConfig(boosted_input_rows=None, **FAST))
    plain.fit(x, y, seed=0)
    x_new, y_new = _steps(400, seed=7)

    def error(model: BNNSurrogate) -> float:
        median = model.predictive_draws(x_new, 200, seed=1).median(dim=0).values[:, 0].numpy()
        return float(np.abs(median - y_new[:, 0]).mean())

    assert error(stacked) < 0.8 * error(plain)


def test_checkpoint_keeps_the_boosters(stacked, tmp_path):
    x, _ = _steps(30, seed=2)
    save_surrogate(stacked, tmp_path / "ckpt")
    assert sorted(path.name for path in (tmp_path / "ckpt").glob("boosted_inputs_*")) == ["boosted_inputs_0.txt.gz"]
    loaded = load_surrogate(tmp_path / "ckpt")
    assert loaded.boosted.fitted == (True, False)
    assert torch.equal(loaded.predictive_draws(x, 50, seed=3), stacked.predictive_draws(x, 50, seed=3))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda path: path.write_bytes(gzip.compress(b"tree\nnot a model")),
            "boosted inputs: output 0: not a LightGBM model",
        ),
        (lambda path: path.write_text("tree\nnot a model"), "cannot read boosted_inputs_0.txt.gz: Not a gzipped file"),
        (
            lambda path: path.write_bytes(path.read_bytes()[:-100]),
            "cannot read boosted_inputs_0.txt.gz: Compressed file",
        ),
        (lambda path: path.unlink(), "cannot read boosted_inputs_0.txt.gz"),
    ],
)
def test_a_damaged_booster_file_is_refused_by_name(stacked, tmp_path, damage, message):
    save_surrogate(stacked, tmp_path / "ckpt")
    damage(tmp_path / "ckpt" / "boosted_inputs_0.txt.gz")
    with pytest.raises(CheckpointError, match=message):
        load_surrogate(tmp_path / "ckpt")


def test_a_booster_of_another_input_width_is_refused(stacked, tmp_path):
    save_surrogate(stacked, tmp_path / "ckpt")
    x, y = _steps(300)
    other = BoostedInputs.fit(
        torch.as_tensor(x[:, :3]), torch.as_tensor(np.nan_to_num(y)), torch.ones(300, 2, dtype=torch.bool),
        [np.arange(150), np.arange(150, 300)], min_rows=200, seed=0, threads=1,
    )[0]  # fmt: skip
    (tmp_path / "ckpt" / "boosted_inputs_0.txt.gz").write_bytes(gzip.compress(other.to_text()[0].encode()))
    with pytest.raises(CheckpointError, match="reads 3 inputs, the model 5"):
        load_surrogate(tmp_path / "ckpt")


def test_a_version_9_checkpoint_with_plain_text_boosters_loads(stacked, tmp_path):
    """Checkpoints up to version 9 (every campaign round saved before the boosters were compressed) still load."""
    x, _ = _steps(30, seed=2)
    save_surrogate(stacked, tmp_path / "ckpt")
    compressed = tmp_path / "ckpt" / "boosted_inputs_0.txt.gz"
    text = gzip.decompress(compressed.read_bytes())
    (tmp_path / "ckpt" / "boosted_inputs_0.txt").write_bytes(text)
    compressed.unlink()
    metadata = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    assert metadata["version"] == CHECKPOINT_VERSION
    metadata["version"] = 9
    (tmp_path / "ckpt" / "metadata.json").write_text(json.dumps(metadata))
    loaded = load_surrogate(tmp_path / "ckpt")
    assert torch.equal(loaded.predictive_draws(x, 50, seed=3), stacked.predictive_draws(x, 50, seed=3))
    assert len(text) > 3 * len(gzip.compress(text))  # what the compression saves on a booster


def test_a_booster_is_decompressed_no_further_than_the_limit(stacked, tmp_path, monkeypatch):
    from sbin_loop.model import checkpoint

    save_surrogate(stacked, tmp_path / "ckpt")
    size = len(gzip.decompress((tmp_path / "ckpt" / "boosted_inputs_0.txt.gz").read_bytes()))
    monkeypatch.setattr(checkpoint, "MAX_BOOSTER_BYTES", size - 1)
    with pytest.raises(CheckpointError, match=r"boosted_inputs_0\.txt\.gz: larger than .* once decompressed"):
        load_surrogate(tmp_path / "ckpt")
    monkeypatch.setattr(checkpoint, "MAX_BOOSTER_BYTES", size)
    assert load_surrogate(tmp_path / "ckpt").boosted.fitted == (True, False)


def test_checkpoint_written_before_boosted_inputs_loads_without_them(tmp_path):
    x, y = _steps(60)
    surrogate = BNNSurrogate(5, ("steps", "smooth"), ("none", "none"), ModelConfig(boosted_input_rows=None, **FAST))
    surrogate.fit(x, y, seed=0)
    save_surrogate(surrogate, tmp_path / "ckpt")
    metadata = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    metadata["version"] = 6
    del metadata["config"]["boosted_input_rows"], metadata["boosted_outputs"]
    (tmp_path / "ckpt" / "metadata.json").write_text(json.dumps(metadata))
    loaded = load_surrogate(tmp_path / "ckpt")
    assert loaded.config.boosted_input_rows is None and loaded.n_boosted == 0
    assert torch.equal(loaded.predictive_draws(x, 20, seed=0), surrogate.predictive_draws(x, 20, seed=0))
    # A campaign config stored before the setting existed resumes without boosted inputs too.
    assert ModelConfig.model_validate(stored_model_config({"hidden": [8]})).boosted_input_rows is None


def test_rows_of_one_group_fall_in_one_fold_of_the_trees(monkeypatch):
    """Both rows of a pair (one composition twice, e.g. two site assignments) are held out of the same trees."""
    rng = np.random.default_rng(3)
    x = torch.as_tensor(np.repeat(rng.normal(size=(150, 5)).astype(np.float32), 2, axis=0))  # rows 2k, 2k + 1 twins
    y = torch.as_tensor(4.0 * (x[:, :1] > 0))
    groups = np.repeat(np.arange(150), 2)
    surrogate = BNNSurrogate(5, ("y",), ("none",), ModelConfig(boosted_input_rows=100, **FAST), boosted=True)
    seen = []
    fit = BoostedInputs.fit.__func__

    def spy(cls, x, y, mask, folds, *args):
        seen.append(folds)
        return fit(cls, x, y, mask, folds, *args)

    monkeypatch.setattr(BoostedInputs, "fit", classmethod(spy))
    _, inputs = with_boosted_inputs(surrogate, x, x, y, torch.ones_like(y, dtype=torch.bool), seed=0, groups=groups)
    assert inputs.shape == (300, 6) and len(seen[0]) == 5
    fold_of_row = np.empty(300, dtype=int)
    for k, rows in enumerate(seen[0]):
        fold_of_row[rows] = k
    assert (fold_of_row[0::2] == fold_of_row[1::2]).all()


def test_model_train_and_predict_carry_the_trees(tmp_path, supercon, monkeypatch):
    """Through the commands users run: the trees are trained, stored with the model and used by ``predict``."""
    monkeypatch.setattr(model_cli, "ModelConfig", lambda: ModelConfig(boosted_input_rows=60, **FAST))
    data, queries, out = tmp_path / "train.csv", tmp_path / "q.csv", tmp_path / "model"
    supercon.iloc[:300][["formula", "Tc_K"]].to_csv(data, index=False)  # 66 at 0 K: a classifier of Tc = 0 too
    pd.DataFrame({"formula": ["La2CuO4", "Nb3Sn", "MgB2"]}).to_csv(queries, index=False)
    args = ["model", "train", "--data", str(data), "--target", "Tc_K", "--out", str(out), "--bounds", "0,"]
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    assert "boosted-tree inputs on (model.boosted_input_rows)" in trained.output
    assert "classifier of values at the lower bound on" in trained.output
    assert (out / "boosted_inputs_0.txt.gz").is_file() and (out / "floor_mass_0.txt.gz").is_file()
    predicted_csv = tmp_path / "p.csv"
    args = ["model", "predict", "--model", str(out), "--input", str(queries), "--output", str(predicted_csv)]
    predicted = runner.invoke(app, args)
    assert predicted.exit_code == 0, predicted.output
    frame = pd.read_csv(predicted_csv)
    assert np.isfinite(frame[["Tc_K_mean", "Tc_K_lower", "Tc_K_upper"]].to_numpy()).all()
    assert (frame.Tc_K_lower >= 0).all() and frame.Tc_K_p_at_low.between(0, 1).all()
    model = load_surrogate(out)
    assert model.floor_mass.fitted == (True,)
    column = model.network_inputs(formula_inputs(pd.Series(["La2CuO4", "Nb3Sn", "MgB2"]), True))[:, -1]
    assert model.boosted.fitted == (True,) and column.abs().sum() > 0


def test_acquisition_reads_the_boosted_column(stacked):
    """The BoTorch model the policies use evaluates the same functions as the surrogate, trees included."""
    x, _ = _steps(12, seed=5)
    model = BNNModel(stacked, n_draws=16, seed=0)
    mean = model.posterior(torch.as_tensor(x, dtype=torch.float64).unsqueeze(1)).mean  # 12 x 1 x 2
    expected = stacked.function_draws(x, 16, seed=0).mean(dim=0)  # 12 x 2
    torch.testing.assert_close(mean[:, 0].float(), expected, rtol=1e-4, atol=1e-4)

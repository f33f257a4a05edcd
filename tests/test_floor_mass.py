"""The classifier of values at the lower bound: its mass in the predictive and function draws, where it is fitted,
checkpoints."""

import gzip
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sbin_loop.model.boosted_inputs import BOOSTER_PARAMS, train_booster
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.checkpoint import CheckpointError, load_surrogate, save_surrogate
from sbin_loop.model.config import ModelConfig, stored_model_config
from sbin_loop.model.floor_mass import MIN_FLOOR_ROWS, floored_functions, rows_above_floor, train_classifier
from sbin_loop.model.surrogate import BNNSurrogate

FAST = {"hidden": (16, 16), "epochs": 30, "min_steps": 200, "max_steps": 400, "ensemble_size": 3}


def _hurdle(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``tc``: 0 (no transition) where ``x0 < 0``, else about ``6 + 2 x1``; ``free``: unbounded, always measured."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    tc = np.where(x[:, 0] < 0, 0.0, np.clip(6.0 + 2.0 * x[:, 1] + rng.normal(scale=0.3, size=n), 0.5, None))
    return x, np.stack([tc, x[:, 2] + rng.normal(scale=0.1, size=n)], axis=1)


def _model(rows: int = 200, **settings) -> BNNSurrogate:
    config = ModelConfig(**{"boosted_input_rows": rows, "floor_mass_rows": rows, **FAST, **settings})
    return BNNSurrogate(4, ("tc", "free"), ("none", "none"), config, ((0.0, None), None))


@pytest.fixture(scope="module")
def hurdle() -> BNNSurrogate:
    torch.set_num_threads(1)
    surrogate = _model()
    surrogate.fit(*_hurdle(400), seed=0)
    return surrogate


def _candidates() -> np.ndarray:
    """Two clear non-superconductors (``x0 = -2``) and two clear superconductors (``x0 = 2``)."""
    return np.array([[-2, 0, 0, 0], [-2, 1, 0, 0], [2, 0, 0, 0], [2, 1, 0, 0]], dtype=np.float32)


def _without_classifier(surrogate: BNNSurrogate) -> BNNSurrogate:
    """The same networks and boosted inputs, without the classifier of values at the bound."""
    without = BNNSurrogate(4, ("tc", "free"), ("none", "none"), surrogate.config, ((0.0, None), None), boosted=True)
    without.load_state_dict(surrogate.state_dict())
    without.boosted = surrogate.boosted
    return without.eval()


def test_a_bounded_output_with_both_kinds_gets_a_classifier_and_an_unbounded_one_none(hurdle):
    assert hurdle.floor_mass.fitted == (True, False)
    probability = hurdle.floor_mass.predict(torch.as_tensor(_candidates()))[:, 0]
    assert (probability[:2] > 0.9).all() and (probability[2:] < 0.1).all()


def test_draws_sit_at_the_bound_with_the_classifier_probability(hurdle):
    draws = hurdle.predictive_draws(_candidates(), 2000, seed=1)[..., 0]  # S x 4
    at_bound = (draws == 0).double().mean(dim=0)
    probability = hurdle.floor_mass.predict(torch.as_tensor(_candidates()))[:, 0].double()
    assert (at_bound >= probability - 0.03).all()  # at least the classifier's share; the network adds its own
    assert (at_bound[:2] > 0.9).all() and (at_bound[2:] < 0.2).all()
    assert (draws >= 0).all() and torch.isfinite(draws).all()
    median = draws.median(dim=0).values
    assert (median[:2] == 0).all()
    assert median[2] > 3 and median[3] > median[2]


def test_the_classifier_lowers_the_error_of_the_median_on_new_rows(hurdle):
    x_new, y_new = _hurdle(300, seed=5)
    without = _without_classifier(hurdle)
    assert not any(without.floor_mass.fitted)

    def error(model: BNNSurrogate) -> float:
        median = model.predictive_draws(x_new, 400, seed=2).median(dim=0).values[:, 0].numpy()
        return float(np.abs(median - y_new[:, 0]).mean())

    assert error(hurdle) < error(without)


def test_function_draws_carry_the_mass_and_other_outputs_do_not(hurdle):
    x = _candidates()
    without = _without_classifier(hurdle)
    functions, network = hurdle.function_draws(x, 200, seed=3), without.function_draws(x, 200, seed=3)
    probability = hurdle.floor_mass.predict(torch.as_tensor(x))[:, 0].double()
    at_bound = (functions[..., 0] == 0).double().mean(dim=0)
    assert (at_bound >= probability - 3 / 200).all()
    assert (at_bound[:2] > 0.9).all() and (at_bound[2:] < 0.2).all()
    kept = functions[..., 0] != 0
    assert torch.equal(functions[..., 0][kept], network[..., 0][kept])  # elsewhere the network's own draws
    assert torch.equal(functions[..., 1], network[..., 1])
    assert torch.equal(
        hurdle.predictive_draws(x, 100, seed=3)[..., 1], without.predictive_draws(x, 100, seed=3)[..., 1]
    )


def test_function_draws_are_the_same_in_any_batch_and_through_botorch(hurdle):
    x = np.concatenate([_candidates(), _hurdle(40, seed=9)[0]])
    whole = hurdle.function_draws(x, 64, seed=5)
    order = np.random.default_rng(0).permutation(len(x))
    shuffled = hurdle.function_draws(x[order], 64, seed=5)
    assert torch.equal(shuffled, whole[:, order])
    assert torch.equal(hurdle.function_draws(x[:7], 64, seed=5), whole[:, :7])
    posterior = BNNModel(hurdle, 64, seed=5).posterior(torch.as_tensor(x, dtype=torch.float64))
    assert torch.allclose(posterior.values.float(), whole)  # S x n x m, the same functions
    assert not torch.equal(hurdle.function_draws(x, 64, seed=6)[..., 0] == 0, whole[..., 0] == 0)


class _Classifier:
    """A stand-in for the fitted classifiers: a fixed probability per row for output 0, none for output 1."""

    def __init__(self, probability: np.ndarray) -> None:
        self.probability = torch.as_tensor(probability, dtype=torch.float32)
        self.fitted = (True, False)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.probability[: x.shape[0]], torch.zeros(x.shape[0])], dim=1)


def test_the_share_of_function_draws_at_the_bound_is_the_probability_in_every_member():
    rng = np.random.default_rng(3)
    n, n_draws, members = 500, 100, 5
    probability = rng.random(n)
    model = SimpleNamespace(
        floor_mass=_Classifier(probability), support=torch.tensor([[0.0, np.inf], [-np.inf, np.inf]])
    )
    x = torch.as_tensor(rng.normal(size=(n, 6)), dtype=torch.float32)
    values = torch.as_tensor(rng.uniform(1, 2, size=(n_draws, n, 2)), dtype=torch.float32)
    floored = floored_functions(model, x, values, seed=0)
    at_bound = (floored[..., 0] == 0).double()  # S x n
    assert (at_bound.sum(dim=0) - torch.as_tensor(probability) * n_draws).abs().max() <= 3
    per_member = at_bound.view(members, n_draws // members, n).sum(dim=1)  # members x n
    assert (per_member - torch.as_tensor(probability) * n_draws / members).abs().max() <= 3
    assert torch.equal(floored[..., 1], values[..., 1])
    # Expected improvement over an incumbent above the bound: the network's times the probability of a transition.
    improvement = (floored[..., 0] - 1.2).clamp(min=0).mean(dim=0)
    network = (values[..., 0] - 1.2).clamp(min=0).mean(dim=0)
    gap = (improvement - network * torch.as_tensor(1 - probability, dtype=torch.float32)).abs()
    assert gap.mean() < 0.015 and gap.max() < 0.08  # the draws kept are a subsample of the network's


def test_no_classifier_below_its_rows_or_with_few_values_at_the_bound():
    x, y = _hurdle(150)
    small = _model(rows=200)
    small.fit(x, y, seed=0)
    assert small.floor_mass.fitted == (False, False)  # 150 rows: no boosted inputs, no classifier
    x, y = _hurdle(400)
    zeros = np.flatnonzero(y[:, 0] == 0)
    y[zeros[MIN_FLOOR_ROWS - 1 :], 0] = 0.25  # one value too few at the bound
    few = _model()
    few.fit(x, y, seed=0)
    assert few.floor_mass.fitted == (False, False)


def test_a_checkpoint_keeps_the_classifier(hurdle, tmp_path):
    save_surrogate(hurdle, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "floor_mass_0.txt.gz").is_file()
    assert json.loads((tmp_path / "ckpt" / "metadata.json").read_text())["floor_outputs"] == [0]
    loaded = load_surrogate(tmp_path / "ckpt")
    assert loaded.floor_mass.fitted == (True, False)
    x = _candidates()
    assert torch.equal(loaded.predictive_draws(x, 100, seed=4), hurdle.predictive_draws(x, 100, seed=4))


def test_a_damaged_classifier_file_is_refused_by_name(hurdle, tmp_path):
    save_surrogate(hurdle, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "floor_mass_0.txt.gz").write_bytes(gzip.compress(b"tree\nnot a model"))
    with pytest.raises(CheckpointError, match="floor mass: output 0: not a LightGBM model"):
        load_surrogate(tmp_path / "ckpt")


def test_a_version_8_checkpoint_loads_without_the_classifier(hurdle, tmp_path):
    save_surrogate(hurdle, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "floor_mass_0.txt.gz").unlink()
    for compressed in (tmp_path / "ckpt").glob("*.txt.gz"):  # versions up to 9 keep their boosters as plain text
        compressed.with_suffix("").write_bytes(gzip.decompress(compressed.read_bytes()))
        compressed.unlink()
    metadata = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    metadata["version"] = 8
    del metadata["floor_outputs"]
    (tmp_path / "ckpt" / "metadata.json").write_text(json.dumps(metadata))
    loaded = load_surrogate(tmp_path / "ckpt")
    assert loaded.floor_mass.fitted == (False, False)
    x = _candidates()
    without = _without_classifier(hurdle)
    assert torch.equal(loaded.predictive_draws(x, 100, seed=4), without.predictive_draws(x, 100, seed=4))


def test_the_network_trains_on_the_values_above_the_bound_and_every_row_is_counted():
    x, y = _hurdle(400)
    surrogate = _model()
    report = surrogate.fit(x, y, seed=0)
    above = int((y[:, 0] > 0).sum())
    assert report.n_train == 400 and surrogate.n_train_rows == 400
    assert report.n_held_out == above + 400  # out-of-fold values: tc above 0 K, and every value of "free"
    single = BNNSurrogate(4, ("tc",), ("none",), surrogate.config, ((0.0, None),))
    report = single.fit(x, y[:, :1], seed=0)
    assert report.n_train == 400 and report.n_held_out == above  # rows at 0 K train the classifier only


def test_rows_left_without_a_value_are_dropped_with_their_groups(hurdle):
    x = torch.arange(8, dtype=torch.float32).reshape(4, 2)
    y = torch.tensor([[0.0, 1.0], [0.0, float("nan")], [2.0, float("nan")], [3.0, 4.0]])
    censored = torch.tensor([[-1, 0], [-1, 0], [0, 0], [0, 0]], dtype=torch.int8)
    kept_x, kept_y, kept_censored, groups = rows_above_floor(hurdle, x, y, censored, np.array([7, 8, 9, 10]))
    assert torch.equal(kept_x, x[[0, 2, 3]]) and groups.tolist() == [7, 9, 10]
    assert torch.isnan(kept_y[0, 0]) and kept_y[0, 1] == 1.0 and (kept_censored == 0).all()


def test_the_hurdle_has_its_own_threshold():
    x, y = _hurdle(400)
    alone = _model(rows=200, boosted_input_rows=None)
    alone.fit(x, y, seed=0)
    assert alone.floor_mass.fitted == (True, False) and not alone.n_boosted
    without = _model(rows=200, floor_mass_rows=None)
    without.fit(x, y, seed=0)
    assert without.floor_mass.fitted == (False, False) and without.n_boosted == 2


def test_a_stored_config_without_the_setting_keeps_the_hurdle_with_the_boosted_inputs():
    assert stored_model_config({"boosted_input_rows": 1000})["floor_mass_rows"] == 1000
    assert stored_model_config({"boosted_input_rows": None})["floor_mass_rows"] is None
    assert stored_model_config({})["floor_mass_rows"] is None  # before both: neither
    assert stored_model_config({"boosted_input_rows": 1000, "floor_mass_rows": 300})["floor_mass_rows"] == 300
    assert ModelConfig(**stored_model_config({"floor_mass_rows": None})).floor_mass_rows is None


def test_the_forest_gives_probabilities_where_boosting_gives_certainties():
    """300 rows whose labels are noisy near the boundary: P(at the bound) = sigmoid(-3 x0)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2300, 8))
    truth = 1 / (1 + np.exp(3 * x[:, 0]))
    labels = (rng.uniform(size=2300) < truth).astype(np.float64)
    train, new = slice(0, 300), slice(300, None)

    def log_loss(probability: np.ndarray) -> float:
        p = np.clip(probability, 1e-6, 1 - 1e-6)
        return float(-np.mean(labels[new] * np.log(p) + (1 - labels[new]) * np.log(1 - p)))

    forest = train_classifier(x[train], labels[train], 0, 1).predict(x[new])
    boosted = train_booster(x[train], labels[train], 0, 1, {**BOOSTER_PARAMS, "objective": "binary"}).predict(x[new])
    assert -1e-6 <= forest.min() and forest.max() <= 1 + 1e-6  # leaf shares, up to rounding
    assert log_loss(forest) < 0.6 < log_loss(boosted)  # measured: 0.44 against 0.90
    assert log_loss(forest) < log_loss(truth[new]) + 0.15

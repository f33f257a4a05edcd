"""Quantile input scaling: normal scores inside the training range, linear tails beyond it, ties, missing values,
and models stored before it existed."""

import json

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from sbin_loop.model.checkpoint import load_surrogate, save_surrogate
from sbin_loop.model.config import ModelConfig, stored_model_config
from sbin_loop.model.input_scaling import N_KNOTS, fit_knots, normal_scores
from sbin_loop.model.surrogate import BNNSurrogate


def _columns(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    skewed = rng.lognormal(size=n)
    mostly_zero = np.where(rng.random(n) < 0.8, 0.0, rng.random(n))
    return torch.as_tensor(np.stack([skewed, mostly_zero], axis=1), dtype=torch.float32)


def test_training_rows_get_roughly_standard_normal_scores_whatever_their_shape():
    x = _columns()
    scores = normal_scores(x, fit_knots(x), x.std(dim=0))
    skewed = scores[:, 0]
    assert abs(float(skewed.mean())) < 0.05 and abs(float(skewed.std()) - 1.0) < 0.05
    assert float(x[:, 0].std() / x[:, 0].mean()) > 1.0  # the raw column is far from it
    # 80% zeros share one score: the middle of their run of equal knots (level about 0.4)
    zeros = scores[x[:, 1] == 0, 1]
    middle = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.4)))
    assert torch.allclose(zeros, zeros[0]) and abs(float(zeros[0]) - middle) < 0.05


def test_the_map_is_monotone_and_continues_linearly_in_standard_deviations_beyond_the_knots():
    x = _columns()
    knots, scale = fit_knots(x), x.std(dim=0)
    grid = torch.linspace(-20, 40, 20001)[:, None].repeat(1, 2)
    scores = normal_scores(grid, knots, scale)
    assert (scores.diff(dim=0) >= 0).all() and torch.isfinite(scores).all()
    top = knots[-1]
    far, further = top + 10 * scale, top + 20 * scale
    gap = normal_scores(torch.stack([further, far]), knots, scale)
    assert torch.allclose(gap[0] - gap[1], torch.full((2,), 10.0), atol=1e-4)  # not clipped onto the edge
    assert knots.shape == (N_KNOTS, 2)


def test_missing_descriptors_stay_missing_and_the_model_reads_them_as_the_median():
    x = _columns()
    x[3, 0] = float("nan")
    knots = fit_knots(x)
    assert torch.isfinite(knots).all()
    scores = normal_scores(x[:5], knots, torch.ones(2))
    assert torch.isnan(scores[3, 0]) and torch.isfinite(scores[[0, 1, 2, 4]]).all()
    surrogate = BNNSurrogate(2, ("y",), ("none",), ModelConfig(hidden=(4,), ensemble_size=2, quantile_rows=1))
    surrogate._fit_input_scaler(x)
    assert surrogate.x_quantile
    assert float(surrogate._standardise_features(x[3:4])[0, 0]) == 0.0


def test_a_model_stored_before_quantile_scaling_keeps_standardising(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.lognormal(size=(40, 3)), rng.normal(size=(40, 1))
    config = ModelConfig(hidden=(8,), ensemble_size=2, min_steps=50, max_steps=50, quantile_rows=None)
    surrogate = BNNSurrogate(3, ("y",), ("none",), config)
    surrogate.fit(x, y, seed=0)
    save_surrogate(surrogate, tmp_path / "model")
    weights = tmp_path / "model" / "weights.safetensors"
    kept = {k: v for k, v in load_file(str(weights)).items() if k not in ("x_knots", "x_quantile", "x_fraction")}
    save_file(kept, str(weights))
    metadata_file = tmp_path / "model" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    del metadata["config"]["quantile_rows"]
    metadata_file.write_text(json.dumps({**metadata, "version": 5}))  # as written before the setting existed
    restored = load_surrogate(tmp_path / "model")
    assert restored.config.quantile_rows is None and not restored.x_quantile and not restored.x_fraction.any()
    expected = surrogate.predictive_draws(x[:5], 64, seed=3)
    assert torch.allclose(restored.predictive_draws(x[:5], 64, seed=3), expected)
    assert ModelConfig.model_validate(stored_model_config({"hidden": [8]})).quantile_rows is None


def test_inputs_are_quantile_scaled_from_quantile_rows_training_rows_on():
    x = _columns(n=50).numpy()
    for rows, quantile in ((50, True), (51, False), (None, False)):
        surrogate = BNNSurrogate(2, ("y",), ("none",), ModelConfig(hidden=(4,), quantile_rows=rows))
        surrogate._fit_input_scaler(torch.as_tensor(x))
        assert bool(surrogate.x_quantile) == quantile
        scaled = surrogate._standardise_features(x)
        standardised = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
        assert np.allclose(scaled.numpy(), standardised, atol=1e-5) != quantile


def test_fraction_inputs_keep_their_own_scale_below_quantile_rows_and_are_quantile_scaled_from_it():
    """An element that one training row holds would sit 7 standard deviations out if standardised; it stays 0.2."""
    x = _columns(n=50).numpy()
    rare = np.zeros(50)
    rare[0] = 0.2
    x = np.column_stack([x, rare]).astype(np.float32)
    assert (0.2 - rare.mean()) / rare.std(ddof=1) > 6.5
    for rows, quantile in ((51, False), (50, True)):
        config = ModelConfig(hidden=(4,), quantile_rows=rows)
        with_fractions = BNNSurrogate(3, ("y",), ("none",), config, fraction_inputs=(1, 2))
        plain = BNNSurrogate(3, ("y",), ("none",), config)
        for surrogate in (with_fractions, plain):
            surrogate._fit_input_scaler(torch.as_tensor(x))
        assert with_fractions.x_fraction.tolist() == [0.0, 1.0, 1.0] and bool(with_fractions.x_quantile) == quantile
        scaled, reference = with_fractions._standardise_features(x), plain._standardise_features(x)
        assert torch.equal(scaled[:, 0], reference[:, 0])  # a descriptor is scaled as ever
        if quantile:
            assert torch.equal(scaled, reference)
        else:
            assert torch.equal(scaled[:, 1:], torch.as_tensor(x[:, 1:]))
            assert float(reference[0, 2]) > 6.5


def test_a_model_with_fraction_inputs_keeps_them_through_a_checkpoint(tmp_path):
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.lognormal(size=(30, 2)), rng.dirichlet(np.ones(3), size=30)])
    y = rng.normal(size=(30, 1))
    config = ModelConfig(hidden=(8,), ensemble_size=2, min_steps=50, max_steps=50)
    surrogate = BNNSurrogate(5, ("y",), ("none",), config, fraction_inputs=(2, 3, 4))
    surrogate.fit(x, y, seed=0)
    save_surrogate(surrogate, tmp_path / "model")
    restored = load_surrogate(tmp_path / "model")
    assert restored.x_fraction.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert restored.x_mean[2:].eq(0).all() and restored.x_std[2:].eq(1).all()
    assert torch.equal(restored.predictive_draws(x[:5], 64, seed=3), surrogate.predictive_draws(x[:5], 64, seed=3))


def test_a_large_pool_is_mapped_block_by_block_to_the_same_scores(monkeypatch):
    from sbin_loop.model import input_scaling

    x = _columns(n=3000)
    knots, scale = fit_knots(x), x.std(dim=0)
    whole = normal_scores(x, knots, scale)
    monkeypatch.setattr(input_scaling, "ROWS_PER_BLOCK", 7)
    assert torch.equal(normal_scores(x, knots, scale), whole)


def test_a_quantile_scaled_model_predicts_the_same_after_a_checkpoint(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.lognormal(size=(60, 3)), rng.normal(size=(60, 1))
    config = ModelConfig(hidden=(8,), ensemble_size=2, min_steps=50, max_steps=50, quantile_rows=50)
    surrogate = BNNSurrogate(3, ("y",), ("none",), config)
    surrogate.fit(x, y, seed=0)
    assert surrogate.x_quantile
    save_surrogate(surrogate, tmp_path / "model")
    restored = load_surrogate(tmp_path / "model")
    assert restored.x_quantile and torch.equal(restored.x_knots, surrogate.x_knots)
    far = x[:5] * 100  # beyond the training range: the linear tails
    for rows in (x[:5], far):
        assert torch.equal(restored.predictive_draws(rows, 64, seed=3), surrogate.predictive_draws(rows, 64, seed=3))


def test_a_warm_start_is_not_continued_across_quantile_rows():
    rng = np.random.default_rng(3)
    x, y = rng.lognormal(size=(80, 3)), rng.normal(size=(80, 1))
    config = ModelConfig(
        hidden=(8,), ensemble_size=2, min_steps=50, max_steps=50, warm_start_steps=20, quantile_rows=60
    )
    previous = BNNSurrogate(3, ("y",), ("none",), config)
    previous.fit(x[:40], y[:40], seed=0)  # standardised
    crossing = BNNSurrogate(3, ("y",), ("none",), config)
    assert not crossing.fit(x[:70], y[:70], seed=0, warm_start=previous).warm_started
    continuing = BNNSurrogate(3, ("y",), ("none",), config)
    assert continuing.fit(x, y, seed=0, warm_start=crossing).warm_started  # both quantile-scaled

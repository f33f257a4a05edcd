"""Element-fraction inputs (``features.element_fractions``, ``sbin model train/predict --element-fractions``).

On by default, in campaigns and in ``sbin model train``: every candidate gains the atomic fraction of every element up
to ``MAX_Z`` right after the composition descriptors, with the same values whichever path built them (table pool,
enumerated chunks, the model CLI), and ``sbin model predict`` computes what the model was trained on. Off, the inputs
are exactly the composition descriptors (and a space's own columns); a campaign stored before the setting existed
keeps them off. The BNN takes the fractions unscaled below ``model.quantile_rows`` training rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import campaign_config
from pydantic import ValidationError
from pymatgen.core import Composition, Element
from typer.testing import CliRunner

from sbin_loop.campaign.resume import PoolLoader
from sbin_loop.candidates import CandidatePool, PoolCacheError, pool_feature_names
from sbin_loop.cli import app
from sbin_loop.config import ConfigError, parse_config, stored_campaign_config
from sbin_loop.extra_descriptors import site_descriptor_names
from sbin_loop.features import (
    descriptor_names,
    element_fractions,
    featurize_compositions,
    fraction_names,
    fraction_vector,
)
from sbin_loop.features.config import FeaturesConfig
from sbin_loop.model import cli as model_cli
from sbin_loop.model.checkpoint import load_surrogate, read_metadata
from sbin_loop.model.config import ModelConfig
from sbin_loop.model.sites import input_names
from sbin_loop.space.formula import MAX_Z
from sbin_loop.space.perovskite import PerovskiteSpace
from sbin_loop.space.spaces import open_space

runner = CliRunner()
N_DESCRIPTORS = len(descriptor_names())
EXPECTED = {
    "SrTiO3": {"Sr": 0.2, "Ti": 0.2, "O": 0.6},
    "Sr0.5Ba0.5TiO3": {"Sr": 0.1, "Ba": 0.1, "Ti": 0.2, "O": 0.6},
    "SrTi0.5Mn0.5O3": {"Sr": 0.2, "Ti": 0.1, "Mn": 0.1, "O": 0.6},
}
"""Formulas and their atomic fractions: a pure perovskite and two mixed ones (A-site, B-site)."""
SPACE = {"kind": "perovskite", "a_site": ["Sr", "Ba"], "b_site": ["Ti", "Mn"], "fraction_denominator": 2}
TINY_MODEL = {"hidden": [16], "epochs": 5, "min_steps": 20, "max_steps": 40, "ensemble_size": 2}


def _expected_vector(formula: str) -> np.ndarray:
    vector = np.zeros(MAX_Z, dtype=np.float32)
    for symbol, fraction in EXPECTED[formula].items():
        vector[Element(symbol).Z - 1] = fraction
    return vector


def _config(tmp_path: Path, space: dict, **features: object):
    data = {"name": "fractions", "objectives": [{"name": "y"}], "space": space, "budget": {"initial": 2, "rounds": 1}}
    if features:
        data["features"] = features
    return parse_config(data)


def _table(tmp_path: Path) -> dict:
    path = tmp_path / "pool.csv"
    pd.DataFrame({"formula": list(EXPECTED)}).to_csv(path, index=False)
    return {"kind": "pool", "source": str(path)}


def test_fraction_names_run_over_every_element_up_to_max_z():
    names = fraction_names()
    assert len(names) == MAX_Z and names[:3] == ["fraction H", "fraction He", "fraction Li"]
    assert names[Element("O").Z - 1] == "fraction O" and len(set(names)) == MAX_Z


def test_off_the_inputs_are_the_composition_descriptors(tmp_path: Path):
    assert FeaturesConfig().element_fractions is True
    assert _config(tmp_path, _table(tmp_path)).features.element_fractions is True
    assert pool_feature_names() == descriptor_names()
    assert pool_feature_names(("extra",)) == [*descriptor_names(), "extra"]
    assert input_names(False) == descriptor_names()
    assert input_names(True) == [*descriptor_names(), *site_descriptor_names()]
    frame = pd.DataFrame({"candidate_id": list(EXPECTED), "formula": list(EXPECTED)})
    pool = CandidatePool.from_frame(frame)
    assert pool.feature_names == descriptor_names()
    features = pool.take(np.arange(len(frame))).features
    np.testing.assert_array_equal(features, featurize_compositions([Composition(f) for f in EXPECTED]))
    off = {"element_fractions": False}
    loaded = PoolLoader(_config(tmp_path, _table(tmp_path), **off), tmp_path / "table", tmp_path).load(False)
    assert loaded.feature_names == descriptor_names()
    chunked = PoolLoader(_config(tmp_path, SPACE, **off), tmp_path / "chunks", tmp_path).load(False)
    assert chunked.feature_names == pool_feature_names(PerovskiteSpace(_config(tmp_path, SPACE).space).extra_names)
    assert chunked.take(np.array([0])).features.shape == (1, len(chunked.feature_names))


def test_a_campaign_config_turns_them_off_and_refuses_other_values(tmp_path: Path):
    config = _config(tmp_path, _table(tmp_path), element_fractions=False)
    assert config.features.element_fractions is False and config.features.structure.enabled
    with pytest.raises((ConfigError, ValidationError)):
        _config(tmp_path, _table(tmp_path), element_fractions="sometimes")


def test_fraction_vector_of_parsed_compositions():
    compositions = [Composition(formula) for formula in EXPECTED]
    vector = fraction_vector(*element_fractions(compositions))
    assert vector.dtype == np.float32 and vector.shape == (len(EXPECTED), MAX_Z)
    for row, formula in enumerate(EXPECTED):
        np.testing.assert_allclose(vector[row], _expected_vector(formula), rtol=1e-6, atol=0)
    # Padding (fraction 0) adds nothing; an element listed twice gets the sum of its fractions.
    indices = np.array([[7, 37, 0], [21, 21, 7]], dtype=np.uint8)
    fractions = np.array([[0.6, 0.4, 0.0], [0.1, 0.1, 0.8]])
    expected = np.zeros((2, MAX_Z), dtype=np.float32)
    expected[0, [7, 37]] = [0.6, 0.4]
    expected[1, [21, 7]] = [0.2, 0.8]
    np.testing.assert_allclose(fraction_vector(indices, fractions), expected, rtol=1e-6, atol=0)


def _rows(pool: CandidatePool) -> np.ndarray:
    found = pool.rows_of({Composition(formula).reduced_formula for formula in EXPECTED} | set(EXPECTED))
    by_key = {Composition(key).reduced_formula: row for key, row in found.items()}
    return np.array([by_key[Composition(formula).reduced_formula] for formula in EXPECTED])


def test_table_and_chunk_pools_gain_the_same_fraction_columns(tmp_path: Path):
    table_config = _config(tmp_path, _table(tmp_path), element_fractions=True)
    table = PoolLoader(table_config, tmp_path / "table", tmp_path).load(False)
    assert table.feature_names == [*descriptor_names(), *fraction_names()]
    chunk_config = _config(tmp_path, SPACE, element_fractions=True)
    extra = open_space(chunk_config.space).extra_names
    assert extra  # the perovskite space's own columns come after the fractions
    chunks = PoolLoader(chunk_config, tmp_path / "chunks", tmp_path).load(False)
    assert chunks.feature_names == [*descriptor_names(), *fraction_names(), *extra]
    from_table = table.take(_rows(table)).features
    from_chunks = chunks.take(_rows(chunks)).features
    assert from_table.shape == (3, N_DESCRIPTORS + MAX_Z) and from_chunks.shape == (
        3,
        N_DESCRIPTORS + MAX_Z + len(extra),
    )
    for row, formula in enumerate(EXPECTED):
        np.testing.assert_allclose(from_table[row, N_DESCRIPTORS:], _expected_vector(formula), rtol=1e-6, atol=0)
    width = N_DESCRIPTORS + MAX_Z
    np.testing.assert_allclose(from_chunks[:, :width], from_table, rtol=1e-5, atol=1e-6)
    # The composition descriptors are those of a pool without fractions, and so are the space's own columns.
    plain = PoolLoader(_config(tmp_path, SPACE, element_fractions=False), tmp_path / "plain", tmp_path).load(False)
    without = plain.take(_rows(plain)).features
    np.testing.assert_array_equal(from_chunks[:, :N_DESCRIPTORS], without[:, :N_DESCRIPTORS])
    np.testing.assert_array_equal(from_chunks[:, width:], without[:, N_DESCRIPTORS:])
    # Reopened from its cache, the chunk pool computes the fractions again.
    reopened = PoolLoader(chunk_config, tmp_path / "chunks", tmp_path).load(True)
    np.testing.assert_array_equal(reopened.take(_rows(reopened)).features, from_chunks)


def test_a_pool_cached_with_other_inputs_is_rebuilt_before_rounds_and_refused_after(tmp_path: Path):
    directory = tmp_path / "campaign"
    PoolLoader(_config(tmp_path, SPACE, element_fractions=False), directory, tmp_path).load(False)
    with pytest.raises(PoolCacheError, match="cached descriptors differ"):
        PoolLoader(_config(tmp_path, SPACE), directory, tmp_path).load(True)
    rebuilt = PoolLoader(_config(tmp_path, SPACE), directory, tmp_path).load(False)
    assert rebuilt.feature_names[N_DESCRIPTORS : N_DESCRIPTORS + MAX_Z] == fraction_names()
    with pytest.raises(PoolCacheError, match="cached descriptors differ"):
        PoolLoader(_config(tmp_path, SPACE, element_fractions=False), directory, tmp_path).load(True)


def test_a_campaign_checkpoint_records_the_fraction_inputs_and_predict_computes_them(tmp_path: Path, pool_csv: Path):
    from sbin_loop.loop import Campaign

    config = campaign_config(
        pool_csv, model=TINY_MODEL, features={"element_fractions": True}, budget={"initial": 6, "rounds": 1}
    )
    campaign = Campaign.from_config(config, tmp_path / "run")
    campaign.run()
    checkpoint = campaign.directory / campaign.store.rounds()[-1].checkpoint
    assert read_metadata(checkpoint)["feature_names"] == [*descriptor_names(), *fraction_names()]
    marked = load_surrogate(checkpoint).x_fraction  # the round's BNN knows which inputs are fractions
    assert marked[N_DESCRIPTORS:].eq(1).all() and marked[:N_DESCRIPTORS].eq(0).all()
    queries = tmp_path / "q.csv"
    pd.DataFrame({"formula": ["SrTiO3", "MgB2"]}).to_csv(queries, index=False)
    predict = ["model", "predict", "--model", str(checkpoint), "--input", str(queries), "--output", str(tmp_path / "p")]
    refused = runner.invoke(app, [*predict, "--no-element-fractions"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
    assert "trained with element fractions; give --element-fractions or neither flag" in refused.output
    assert not (tmp_path / "p").exists()
    for flags in ([], ["--element-fractions"]):
        result = runner.invoke(app, [*predict, *flags])
        assert result.exit_code == 0, result.output
        assert pd.read_csv(tmp_path / "p")["Tc_K_mean"].notna().all()


def _train(tmp_path: Path, rows: pd.DataFrame, name: str, *flags: str) -> tuple[Path, str]:
    data = tmp_path / f"{name}.csv"
    rows[["formula", "Tc_K"]].to_csv(data, index=False)
    out = tmp_path / name
    result = runner.invoke(app, ["model", "train", "--data", str(data), "--target", "Tc_K", "--out", str(out), *flags])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_model_train_adds_element_fractions_by_default_at_any_size(
    tmp_path: Path, supercon: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
):
    """Without a flag the fractions come with 20 rows as with many, as in a campaign; ``--no-element-fractions`` not."""
    monkeypatch.setattr(model_cli, "ModelConfig", lambda: ModelConfig(**TINY_MODEL, validation_interval=20))
    rows = supercon.iloc[:20]
    with_them, output = _train(tmp_path, rows, "auto")
    assert read_metadata(with_them)["feature_names"] == input_names(False, True)
    assert "element fractions on (--element-fractions)" in output and "inputs standardised" in output
    assert "boosted-tree inputs off (model.boosted_input_rows)" in output  # 1,000 rows from which trees stack
    # Below quantile_rows the fraction inputs keep their own scale (BNNSurrogate's fraction_inputs).
    model = load_surrogate(with_them)
    fractions = slice(N_DESCRIPTORS, N_DESCRIPTORS + MAX_Z)
    assert model.x_fraction[fractions].eq(1).all() and model.x_fraction[:N_DESCRIPTORS].eq(0).all()
    assert model.x_mean[fractions].eq(0).all() and model.x_std[fractions].eq(1).all()
    off, output = _train(tmp_path, rows, "off", "--no-element-fractions")
    assert read_metadata(off)["feature_names"] == input_names(False, False)
    assert "element fractions off (--element-fractions)" in output
    assert load_surrogate(off).x_fraction.eq(0).all()


def test_model_predict_computes_the_inputs_the_model_was_trained_on(
    tmp_path: Path, supercon: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(model_cli, "ModelConfig", lambda: ModelConfig(**TINY_MODEL, validation_interval=20))
    out, _ = _train(tmp_path, supercon.iloc[:40], "model", "--element-fractions")
    assert read_metadata(out)["feature_names"] == input_names(False, True) == [*descriptor_names(), *fraction_names()]
    queries = tmp_path / "q.csv"
    pd.DataFrame({"formula": ["SrTiO3", "Xx2O", "MgB2"]}).to_csv(queries, index=False)
    output = tmp_path / "p.csv"
    predict = ["model", "predict", "--model", str(out), "--input", str(queries), "--output", str(output)]
    refused = runner.invoke(app, [*predict, "--no-element-fractions"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
    assert isinstance(refused.exception, SystemExit)
    message = refused.output.strip()
    assert message.endswith("trained with element fractions; give --element-fractions or neither flag")
    assert "--sites" not in message and len(message.splitlines()) == 1
    assert not output.exists()
    result = runner.invoke(app, predict)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(output)
    assert frame["Tc_K_mean"].notna().tolist() == [True, False, True]
    result = runner.invoke(app, [*predict, "--element-fractions", "--output", str(tmp_path / "again.csv")])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "again.csv")["Tc_K_mean"].equals(frame["Tc_K_mean"])


def test_predict_names_each_flag_that_differs_from_training(tmp_path: Path):
    model = tmp_path / "m"
    assert model_cli._check_inputs(model, input_names(True, True), True, True) is True
    assert model_cli._check_inputs(model, input_names(True, True), True, None) is True
    assert model_cli._check_inputs(model, input_names(False, False), False, None) is False
    assert model_cli._check_inputs(model, None, False, True) is True  # no recorded names: not checked
    assert model_cli._check_inputs(model, None, False, None) is False
    assert input_names(True, True) == [*descriptor_names(), *fraction_names(), *site_descriptor_names()]
    with pytest.raises(ConfigError) as both:
        model_cli._check_inputs(model, input_names(True, True), False, False)
    assert "give --sites A_COLUMN,B_COLUMN" in str(both.value) and "give --element-fractions or" in str(both.value)
    with pytest.raises(ConfigError) as fractions_only:
        model_cli._check_inputs(model, input_names(False, False), False, True)
    assert str(fractions_only.value).startswith("--element-fractions:")
    assert str(fractions_only.value).endswith("without element fractions; give --no-element-fractions or neither flag")
    assert "--sites" not in str(fractions_only.value)
    for fractions in (True, None):  # neither flag: only --sites is checked
        with pytest.raises(ConfigError, match=r"^--sites: .* without site columns; leave --sites out$"):
            model_cli._check_inputs(model, input_names(False, True), True, fractions)


def test_a_campaign_stored_before_the_setting_existed_keeps_its_inputs(tmp_path: Path, pool_csv: Path):
    """Its stored config lacks ``features.element_fractions``: it resumes without fractions, on its cached pool."""
    from sbin_loop.loop import Campaign

    assert stored_campaign_config({"name": "x"})["features"] == {"element_fractions": False}
    kept = stored_campaign_config({"features": {"element_fractions": True, "structure": {"enabled": False}}})
    assert kept["features"] == {"element_fractions": True, "structure": {"enabled": False}}
    config = campaign_config(
        pool_csv, model=TINY_MODEL, features={"element_fractions": False}, budget={"initial": 6, "rounds": 1}
    )
    campaign = Campaign.from_config(config, tmp_path / "run")
    campaign.run()
    stored = campaign.store.campaign_doc()
    old = {**stored.config, "features": {"structure": stored.config["features"]["structure"]}}
    campaign.store.put_campaign(stored.model_copy(update={"config": old}))
    campaign.store.close()
    longer = campaign_config(pool_csv, model=TINY_MODEL, budget={"initial": 6, "rounds": 2})
    assert longer.features.element_fractions is True  # today's default, not set in the file
    resumed = Campaign.from_config(longer, tmp_path / "run")
    assert resumed.config.features.element_fractions is False
    resumed.run()
    last = resumed.directory / resumed.store.rounds()[-1].checkpoint
    assert read_metadata(last)["feature_names"] == descriptor_names()
    assert Campaign.open(tmp_path / "run").config.features.element_fractions is False

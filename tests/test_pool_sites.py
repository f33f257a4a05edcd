"""A pool filtered to its perovskites gives the model the A/B-site descriptors of the placement the filter found:
the perovskite rule descriptors, then the occupancy-weighted elemental properties of each site's species."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Element

from sbin_loop.campaign.resume import PoolLoader
from sbin_loop.candidates import CandidatePool, PoolCacheError
from sbin_loop.config import CampaignConfig, parse_config
from sbin_loop.extra_descriptors import site_descriptor_names, weighted_site_descriptors
from sbin_loop.features import composition_input_names, descriptor_names, element_property_table
from sbin_loop.model.sites import site_inputs
from sbin_loop.space.config import PerovskiteSpaceConfig, PoolSpaceConfig
from sbin_loop.space.perovskite import PerovskiteSpace, shannon_radius
from sbin_loop.space.pool_perovskites import pool_extra_names
from sbin_loop.space.rules import DESCRIPTOR_NAMES
from sbin_loop.space.spaces import PoolSpace
from sbin_loop.space.summary import summarize_space

FORMULAS = ["SrTiO3", "BaTiO3", "SrZrO3", "YBa2Cu3O7", "Ba0.6Sr0.4TiO3"]
"""Two A sites on Ti, two B sites under Sr, a cuprate the filter drops and a mixed A site."""


def _pool_csv(directory: Path) -> Path:
    path = directory / "pool.csv"
    pd.DataFrame({"formula": FORMULAS, "Tc_K": [0.3, 0.0, 0.0, 92.0, 0.0]}).to_csv(path, index=False)
    return path


def _config(source: Path, filtered: bool = True) -> CampaignConfig:
    space = {"kind": "pool", "source": str(source), **({"perovskite_filter": {}} if filtered else {})}
    data = {"name": "sites", "seed": 3, "objectives": [{"name": "Tc_K"}], "space": space}
    return parse_config({**data, "budget": {"initial": 2, "rounds": 1}})


def _descriptors(pool: CandidatePool) -> pd.DataFrame:
    block = pool.take(np.arange(len(pool)))
    return pd.DataFrame(block.features, index=block.ids, columns=pool.feature_names)


def test_filtered_pool_descriptors_resolve_the_a_and_b_sites(tmp_path: Path) -> None:
    config = _config(_pool_csv(tmp_path))
    pool = PoolLoader(config, tmp_path / "campaign", tmp_path).load(has_rounds=False)
    assert pool.feature_names == [*composition_input_names(True), *DESCRIPTOR_NAMES, *site_descriptor_names()]
    assert PoolSpace(config.space).extra_names == PerovskiteSpace(PerovskiteSpaceConfig()).extra_names
    frame = _descriptors(pool)
    assert list(frame.index) == ["SrTiO3", "BaTiO3", "SrZrO3", "Ba0.6Sr0.4TiO3"]
    radius = {ion: shannon_radius(ion, state, cn)[0] for ion, state, cn in (("Sr", 2, 12), ("Ba", 2, 12))}
    radius |= {ion: shannon_radius(ion, 4, 6)[0] for ion in ("Ti", "Zr")}
    for formula, a_site, b_site in (("SrTiO3", "Sr", "Ti"), ("BaTiO3", "Ba", "Ti"), ("SrZrO3", "Sr", "Zr")):
        row = frame.loc[formula]
        assert row["perovskite radius_A"] == pytest.approx(radius[a_site], rel=1e-6)
        assert row["perovskite radius_B"] == pytest.approx(radius[b_site], rel=1e-6)
        assert row["perovskite oxidation_state_A"] == pytest.approx(2.0)
        assert row["perovskite oxidation_state_B"] == pytest.approx(4.0)
    # Another A-site cation moves the A-site inputs only; another B-site cation the B-site ones.
    assert frame.loc["BaTiO3", "perovskite radius_B"] == frame.loc["SrTiO3", "perovskite radius_B"]
    assert frame.loc["SrZrO3", "perovskite radius_A"] == frame.loc["SrTiO3", "perovskite radius_A"]
    assert frame.loc["SrZrO3", "perovskite octahedral_factor"] > frame.loc["SrTiO3", "perovskite octahedral_factor"]


def test_space_stream_and_campaign_pool_hold_the_same_descriptors(tmp_path: Path) -> None:
    config = _config(_pool_csv(tmp_path))
    pool = PoolLoader(config, tmp_path / "campaign", tmp_path).load(has_rounds=False)
    chunk = next(PoolSpace(config.space).chunks())
    np.testing.assert_array_equal(_descriptors(pool)[list(pool_extra_names(config.space))].to_numpy(), chunk.extra)
    unfiltered = PoolSpace(PoolSpaceConfig(source=str(tmp_path / "pool.csv")))
    assert unfiltered.extra_names == () and next(unfiltered.chunks()).extra.shape == (5, 0)


def test_pool_cached_without_the_site_descriptors_is_rebuilt_or_refused(tmp_path: Path) -> None:
    config = _config(_pool_csv(tmp_path))
    loader = PoolLoader(config, tmp_path / "campaign", tmp_path)
    pool_dir = tmp_path / "campaign" / "pool"
    composition_only = PoolSpace(config.space).frame
    CandidatePool.from_frame(composition_only).save(pool_dir, loader.fingerprint)  # as a pool built before them
    with pytest.raises(PoolCacheError, match="cached descriptors differ"):
        loader.load(has_rounds=True)
    names = [*composition_input_names(True), *pool_extra_names(config.space)]
    assert loader.load(has_rounds=False).feature_names == names
    assert CandidatePool.load(pool_dir, names).feature_names[-1] == "B SpaceGroupNumber"
    unfiltered = _config(tmp_path / "pool.csv", filtered=False)
    assert PoolLoader(unfiltered, tmp_path / "other", tmp_path).fingerprint != loader.fingerprint


def test_pool_cached_with_the_rule_descriptors_only_is_rebuilt_or_refused(tmp_path: Path) -> None:
    config = _config(_pool_csv(tmp_path))
    loader = PoolLoader(config, tmp_path / "campaign", tmp_path)
    pool_dir = tmp_path / "campaign" / "pool"
    CandidatePool.from_frame(PoolSpace(config.space).frame, DESCRIPTOR_NAMES).save(pool_dir, loader.fingerprint)
    with pytest.raises(PoolCacheError, match="cached descriptors differ"):
        loader.load(has_rounds=True)
    assert loader.load(has_rounds=False).feature_names[-len(site_descriptor_names()) :] == site_descriptor_names()


def test_mixed_site_properties_are_the_occupancy_weighted_mean_of_its_elements(tmp_path: Path) -> None:
    frame = _descriptors(PoolLoader(_config(_pool_csv(tmp_path)), tmp_path / "campaign", tmp_path).load(False))
    table = element_property_table()
    element = {symbol: table.values[Element(symbol).Z - 1] for symbol in ("Ba", "Sr", "Ti")}
    a_names = [f"A {name}" for name in table.names]
    b_names = [f"B {name}" for name in table.names]
    mixed = frame.loc["Ba0.6Sr0.4TiO3"]
    np.testing.assert_allclose(mixed[a_names], 0.6 * element["Ba"] + 0.4 * element["Sr"], rtol=1e-6)
    np.testing.assert_allclose(mixed[b_names], element["Ti"], rtol=1e-6)
    assert mixed["A Number"] == pytest.approx(0.6 * 56 + 0.4 * 38)
    # Amounts are shares of the site, whatever their scale.
    np.testing.assert_array_equal(
        weighted_site_descriptors([{"Ba": 3.0, "Sr": 2.0}], [{"Ti": 0.5}]),
        weighted_site_descriptors([{"Ba": 0.6, "Sr": 0.4}], [{"Ti": 1.0}]),
    )
    with pytest.raises(ValueError, match="positive amounts"):
        weighted_site_descriptors([{}], [{"Ti": 1.0}])


def test_single_species_sites_give_the_model_the_sites_option_inputs(tmp_path: Path) -> None:
    pool = PoolLoader(_config(_pool_csv(tmp_path)), tmp_path / "campaign", tmp_path).load(False)
    frame = _descriptors(pool)
    rows = pd.DataFrame({"formula": ["SrTiO3", "BaTiO3", "SrZrO3"], "a": ["Sr", "Ba", "Sr"], "b": ["Ti", "Ti", "Zr"]})
    expected = site_inputs(rows, "formula", ("a", "b"))
    columns = [*descriptor_names(), *site_descriptor_names()]
    np.testing.assert_array_equal(frame.loc[rows["formula"], columns].to_numpy(), expected)


def test_space_summary_sample_names_every_site_column_once(tmp_path: Path) -> None:
    config = _config(_pool_csv(tmp_path)).space
    sample = summarize_space(config, sample_size=4).sample
    assert sample.columns.is_unique
    assert {"tolerance_factor", "A Number", "B Number"} <= set(sample.columns)
    assert len(sample.columns) == 1 + len(pool_extra_names(config))

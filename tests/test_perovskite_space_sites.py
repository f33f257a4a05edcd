"""An enumerated perovskite space gives its candidates the A/B-site descriptors a filtered pool gives: the perovskite
rule descriptors, then the occupancy-weighted elemental properties of each site's species."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition, Element

from sbin_loop.campaign.resume import PoolLoader
from sbin_loop.candidates import CandidatePool, PoolCacheError, pool_feature_names
from sbin_loop.config import parse_config
from sbin_loop.extra_descriptors import site_descriptor_names, weighted_site_descriptors
from sbin_loop.features import composition_input_names, element_property_table
from sbin_loop.space.chunks import CandidateChunk
from sbin_loop.space.config import PerovskiteSpaceConfig, PoolSpaceConfig
from sbin_loop.space.perovskite import PerovskiteSpace
from sbin_loop.space.pool_perovskites import pool_extra_names
from sbin_loop.space.rules import DESCRIPTOR_NAMES
from sbin_loop.space.spaces import PoolSpace
from sbin_loop.space.summary import summarize_space

SPACE = {
    "kind": "perovskite",
    "a_site": ["Sr", "Ba", "La"],
    "b_site": ["Ti", "Mn", "Zr"],
    "fraction_denominator": 4,
    "a_deficiency": [0.0, 0.25],
    "anion_deficiency": [0.0, 0.25],
}
"""Two species per site on a grid of quarters, with A-site and O deficiencies: 467 candidates."""

CANDIDATES = {
    "SrTiO3": ({"Sr": 1.0}, {"Ti": 1.0}),
    "Sr0.5Ba0.5TiO3": ({"Sr": 0.5, "Ba": 0.5}, {"Ti": 1.0}),
    "SrTi0.5Mn0.5O3": ({"Sr": 1.0}, {"Ti": 0.5, "Mn": 0.5}),
    "Ba0.75Sr0.25Ti0.25Mn0.75O3": ({"Ba": 0.75, "Sr": 0.25}, {"Ti": 0.25, "Mn": 0.75}),
    "Sr0.75Ti0.5Mn0.5O2.75": ({"Sr": 0.75}, {"Ti": 0.5, "Mn": 0.5}),
}
"""Candidates and their site occupancies: pure, A-mixed, B-mixed, both mixed, and A- and O-deficient."""


def _space() -> PerovskiteSpace:
    return PerovskiteSpace(PerovskiteSpaceConfig.model_validate(SPACE))


def _all(space: PerovskiteSpace) -> CandidateChunk:
    return CandidateChunk.concatenate(list(space.chunks(100)))


def _row(chunk: CandidateChunk, formula: str) -> int:
    hits = np.flatnonzero(chunk.ids == Composition(formula).reduced_formula)
    assert len(hits) == 1, formula
    return int(hits[0])


def _site_columns(space: PerovskiteSpace, chunk: CandidateChunk) -> np.ndarray:
    """The A-site and B-site property columns of a chunk's ``extra``, located by name."""
    start = space.extra_names.index(site_descriptor_names()[0])
    return chunk.extra[:, start:]


def _occupancies(space: PerovskiteSpace, chunk: CandidateChunk, row: int) -> tuple[dict, dict]:
    """A row's A-site and B-site occupancies read from its element arrays (A columns first, then B)."""
    config = space.config
    bounds = {"A": (0, config.max_species_a), "B": (config.max_species_a, config.max_species_a + config.max_species_b)}
    sites = {}
    for site, (start, stop) in bounds.items():
        pairs = zip(chunk.indices[row, start:stop], chunk.fractions[row, start:stop], strict=True)
        sites[site] = {Element.from_Z(int(z) + 1).symbol: float(amount) for z, amount in pairs if amount > 0}
    return sites["A"], sites["B"]


def test_site_columns_are_the_weighted_site_descriptors_of_each_candidate() -> None:
    space = _space()
    chunk = _all(space)
    columns = _site_columns(space, chunk)
    assert chunk.extra.dtype == np.float32 and columns.shape == (len(chunk), len(site_descriptor_names()))
    rows = [_row(chunk, formula) for formula in CANDIDATES]
    expected = weighted_site_descriptors(*zip(*CANDIDATES.values(), strict=True))
    np.testing.assert_allclose(columns[rows], expected, rtol=1e-6, atol=0)
    # Every candidate of the space, its occupancies read from its own element arrays.
    a_sites, b_sites = zip(*(_occupancies(space, chunk, row) for row in range(len(chunk))), strict=True)
    assert {len(site) for site in a_sites} == {1, 2} and {len(site) for site in b_sites} == {1, 2}
    np.testing.assert_allclose(columns, weighted_site_descriptors(a_sites, b_sites), rtol=1e-6, atol=0)


def test_a_mixed_site_holds_the_share_weighted_mean_of_its_elements() -> None:
    space = _space()
    chunk = _all(space)
    table = element_property_table()
    element = {symbol: table.values[Element(symbol).Z - 1] for symbol in ("Sr", "Ba", "Ti", "Mn")}
    frame = dict(zip(space.extra_names, chunk.extra[_row(chunk, "Ba0.75Sr0.25Ti0.25Mn0.75O3")], strict=True))
    a_values = [frame[f"A {name}"] for name in table.names]
    b_values = [frame[f"B {name}"] for name in table.names]
    np.testing.assert_allclose(a_values, 0.75 * element["Ba"] + 0.25 * element["Sr"], rtol=1e-6)
    np.testing.assert_allclose(b_values, 0.25 * element["Ti"] + 0.75 * element["Mn"], rtol=1e-6)
    assert frame["A Number"] == pytest.approx(0.75 * 56 + 0.25 * 38)
    # An A-site deficiency leaves the site's shares, so its properties, as they are.
    deficient = chunk.extra[_row(chunk, "Sr0.75Ti0.5Mn0.5O2.75")]
    full = chunk.extra[_row(chunk, "SrTi0.5Mn0.5O3")]
    width = len(site_descriptor_names())
    np.testing.assert_array_equal(deficient[-width:], full[-width:])
    np.testing.assert_allclose(deficient[-width : -width // 2], element["Sr"], rtol=1e-6)


def test_names_are_the_filtered_pools_names(tmp_path: Path) -> None:
    space = _space()
    (tmp_path / "pool.csv").write_text("formula\nSrTiO3\nSr0.5Ba0.5TiO3\n")
    pool = PoolSpace(PoolSpaceConfig(source=str(tmp_path / "pool.csv"), perovskite_filter={}))
    assert space.extra_names == pool.extra_names == (*DESCRIPTOR_NAMES, *site_descriptor_names())
    assert space.extra_names == pool_extra_names(pool.config)
    assert next(space.chunks()).extra.shape[1] == len(space.extra_names)
    # A composition in both gets the same site columns from the pool as from the enumerated space.
    enumerated, pooled = _all(space), next(pool.chunks())
    assert len(pooled) == 2
    rows = [_row(enumerated, formula) for formula in pooled.ids.tolist()]
    np.testing.assert_allclose(_site_columns(space, enumerated)[rows], _site_columns(space, pooled), rtol=1e-6, atol=0)


def test_another_species_moves_only_its_own_sites_columns() -> None:
    space = _space()
    chunk = _all(space)
    columns = _site_columns(space, chunk)
    n = len(element_property_table().names)
    sr, ba, zr = (columns[_row(chunk, formula)] for formula in ("SrTiO3", "BaTiO3", "SrZrO3"))
    number = site_descriptor_names().index("A Number")
    assert (sr[number], ba[number]) == (38, 56) and (sr[:n] != ba[:n]).sum() > 1
    np.testing.assert_array_equal(sr[n:], ba[n:])
    assert (sr[n:] != zr[n:]).any()
    np.testing.assert_array_equal(sr[:n], zr[:n])
    mixed = columns[_row(chunk, "Sr0.5Ba0.5TiO3")]
    assert mixed[number] == 47


def test_pool_cached_with_the_rule_descriptors_only_is_rebuilt_or_refused(tmp_path: Path) -> None:
    config = parse_config(
        {"name": "abo3", "objectives": [{"name": "y"}], "space": SPACE, "budget": {"initial": 2, "rounds": 1}}
    )
    loader = PoolLoader(config, tmp_path / "campaign", tmp_path)
    pool_dir = tmp_path / "campaign" / "pool"
    rules_only = (
        CandidateChunk(chunk.ids, chunk.indices, chunk.fractions, chunk.extra[:, : len(DESCRIPTOR_NAMES)])
        for chunk in _space().chunks(200)
    )
    old_names = pool_feature_names(DESCRIPTOR_NAMES)
    CandidatePool.write_meta(pool_dir, CandidatePool.write_chunks(rules_only, pool_dir), old_names, loader.fingerprint)
    with pytest.raises(PoolCacheError, match="cached descriptors differ"):
        loader.load(has_rounds=True)
    pool = loader.load(has_rounds=False)
    assert pool.feature_names == [*composition_input_names(True), *DESCRIPTOR_NAMES, *site_descriptor_names()]
    block = pool.take(np.array([0, len(pool) - 1]))
    assert block.features.shape == (2, len(pool.feature_names))


def test_space_summary_sample_shows_the_site_columns() -> None:
    sample = summarize_space(PerovskiteSpaceConfig.model_validate(SPACE), sample_size=3).sample
    assert sample.columns.is_unique and {"tolerance_factor", "A Number", "B Number"} <= set(sample.columns)
    assert len(sample.columns) == 1 + len(_space().extra_names)

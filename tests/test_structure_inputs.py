"""Structural descriptors as model inputs: measured where a result has a relaxed cell, explicitly missing elsewhere."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import OracleWrapper, campaign_config
from pymatgen.core import Lattice, Structure

from sbin_loop.features.config import StructureFeaturesConfig
from sbin_loop.features.structure_inputs import STRUCTURE_PRESENT, StructureInputs, relaxed_structure, site_groups
from sbin_loop.loop import Campaign
from sbin_loop.model.checkpoint import load_surrogate, read_metadata
from sbin_loop.oracles import JobRequest, Oracle, OracleOutcome


def _cubic(formula: str, a: float) -> Structure:
    groups = site_groups(formula)
    species = [groups["A"][0], groups["B"][0], groups["X"][0]]
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(a), species, [[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0]])


def test_site_groups_put_each_element_on_its_site():
    assert site_groups("Sr0.5La0.5TiO3") == {"A": ("La", "Sr"), "B": ("Ti",), "X": ("O",)}
    assert site_groups("LaAlO3") == {"A": ("La",), "B": ("Al",), "X": ("O",)}


def test_block_marks_measured_and_missing_rows():
    inputs = StructureInputs(StructureFeaturesConfig())
    names = inputs.names()
    values = inputs.featurize("SrTiO3", _cubic("SrTiO3", 3.905).as_dict())
    assert names[-1] == STRUCTURE_PRESENT and values.shape == (len(names) - 1,)
    named = dict(zip(names, values, strict=False))
    assert named["structure angle B-X-B mean"] == pytest.approx(180.0)
    assert named["structure cn B mean"] == 6

    block = inputs.block(np.array([5, 7, 9]), {7: values, 11: values + 1})
    assert block.shape == (3, len(names)) and block.dtype == np.float32
    assert block[:, -1].tolist() == [0.0, 1.0, 0.0]
    assert np.isnan(block[[0, 2], :-1]).all()
    np.testing.assert_allclose(block[1, :-1], values.astype(np.float32))


def test_unusable_structures_count_as_missing():
    inputs = StructureInputs(StructureFeaturesConfig())
    assert inputs.featurize("MgO", _cubic("SrTiO3", 3.9).as_dict()) is None  # not ABX3
    assert inputs.featurize("SrTiO3", {"lattice": "garbage"}) is None
    assert relaxed_structure(None) is None and relaxed_structure({"bulk": {"n_atoms": 5}}) is None


class WithRelaxedCell(OracleWrapper):
    """A dataset oracle that also returns a relaxed cubic cell per composition, as the defect workflows do."""

    def __init__(self, inner: Oracle, lattice: dict[str, float]) -> None:
        super().__init__(inner)
        self.lattice = lattice

    def poll(self, requests: list[JobRequest]) -> dict[str, OracleOutcome]:
        outcomes = self.inner.poll(requests)
        for request in requests:
            outcome = outcomes.get(request.job_id)
            if outcome is not None and outcome.status == "completed":
                cell = _cubic(request.formula, self.lattice[request.formula]).as_dict()
                outcomes[request.job_id] = outcome.model_copy(update={"document": {"bulk": {"structure": cell}}})
        return outcomes


PEROVSKITES = [f"{a}{b}O3" for a in ("Ca", "Sr", "Ba") for b in ("Ti", "Zr", "Sn", "Hf", "Ge")]


@pytest.fixture(scope="module")
def structured_campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Directory of a 2-round campaign whose oracle returns relaxed cells, and its rounds' final states."""
    base = tmp_path_factory.mktemp("structured")
    lattice = {formula: 3.8 + 0.05 * i for i, formula in enumerate(PEROVSKITES)}
    pool = base / "pool.csv"
    pd.DataFrame({"formula": PEROVSKITES, "Tc_K": [10 * lattice[f] - 30 for f in PEROVSKITES]}).to_csv(pool)
    config = campaign_config(pool, budget={"initial": 6, "rounds": 1})
    campaign = Campaign.from_config(config, base / "campaign")
    campaign.stages[0] = replace(campaign.stages[0], oracle=WithRelaxedCell(campaign.stages[0].oracle, lattice))
    campaign.run()
    return base / "campaign", [doc.state for doc in campaign.store.rounds()]


def test_campaign_model_takes_structural_inputs_of_measured_cells(structured_campaign: tuple[Path, list[str]]):
    directory, states = structured_campaign
    assert states == ["complete", "complete"]  # round 1 picked by scoring candidates whose structure is missing
    names = StructureInputs(StructureFeaturesConfig()).names()
    metadata = read_metadata(directory / "checkpoints" / "round_0001")
    assert metadata["feature_names"][-len(names) :] == names
    surrogate = load_surrogate(directory / "checkpoints" / "round_0001")
    assert surrogate.n_features == len(metadata["feature_names"])
    density = metadata["feature_names"].index("structure density")
    assert 3.0 < surrogate.x_mean[density].item() < 9.0  # the mean of the measured cells' densities, not 0
    # Every training candidate has a cell and trains twice, with and without it.
    assert surrogate.x_mean[-1].item() == pytest.approx(0.5)


def test_campaign_without_structures_uses_composition_descriptors_only(finished_campaign: Path):
    metadata = read_metadata(finished_campaign / "checkpoints" / "round_0000")
    assert STRUCTURE_PRESENT not in metadata["feature_names"]
    assert not any(name.startswith("structure ") for name in metadata["feature_names"])

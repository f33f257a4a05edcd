"""The mission campaign end to end, shrunk: CHGNet O-vacancy energies and replayed Tc of SuperCon perovskite oxides,
picked by EI on Tc and uncertainty on the vacancy energy, then ``sbin report``.

The config is ``configs/perovskite_tc_defects.yaml`` as shipped except for its size (``conftest.shrunk_mission``):
2 random picks, then one round of 2 (1 by EI, 1 by uncertainty), 10-atom cells, one vacancy site and short
relaxations, so the real CHGNet workflow runs 4 times. ``tests/test_shipped_configs.py`` checks the same campaign.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure
from typer.testing import CliRunner

from sbin_loop.cli import app
from sbin_loop.extra_descriptors import site_descriptor_names
from sbin_loop.features import composition_input_names
from sbin_loop.inspection import CampaignView, open_view
from sbin_loop.model.checkpoint import load_surrogate, read_metadata
from sbin_loop.space.rules import DESCRIPTOR_NAMES


@pytest.fixture(scope="module")
def mission(mission_campaign: Path) -> Path:
    return mission_campaign


def test_every_pick_has_both_objectives_from_its_oracle(mission: Path) -> None:
    view = open_view(mission)
    picks = view.selections()
    assert len(picks) == 4
    by_stage = {
        stage: {result.candidate_id: result.values for result in view.results if result.stage == stage}
        for stage in (0, 1)
    }
    assert set(by_stage[0]) == set(by_stage[1]) == set(picks["candidate_id"])
    assert all(set(values) == {"Ef_vac_O"} for values in by_stage[0].values())
    assert all(set(values) == {"Tc_K"} for values in by_stage[1].values())
    oracles = {result.stage: result.oracle for result in view.results}
    assert oracles[0].startswith("forcefield") and oracles[1] == "dataset"


def test_composite_batch_says_why_each_pick_was_made(mission: Path) -> None:
    later = open_view(mission).selections().query("round == 1")
    assert later["policy"].tolist() == ["expected_improvement", "uncertainty"]
    assert later["reason"].iloc[0].startswith("expected_improvement on Tc_K: qLogEI")
    assert later["reason"].iloc[1].startswith("uncertainty on Ef_vac_O: posterior_variance")


def test_tc_intervals_stay_in_its_support(mission: Path) -> None:
    view = open_view(mission)
    stored = view.intervals()
    assert set(stored["objective"]) == {"Tc_K", "Ef_vac_O"}
    tc = stored[stored["objective"] == "Tc_K"][["mean", "median", "lower", "upper"]].to_numpy(float)
    assert np.isfinite(tc).all() and tc.min() >= 0.0
    predicted = view.selections().query("round == 1")[["pred_mean", "pred_lower", "pred_upper"]].to_numpy(float)
    assert np.isfinite(predicted).all() and predicted.min() >= 0.0


def test_model_trains_on_the_a_and_b_site_descriptors_of_the_filtered_pool(mission: Path) -> None:
    checkpoints = sorted((mission / "checkpoints").glob("round_*"))
    assert checkpoints
    for checkpoint in checkpoints:
        names = read_metadata(checkpoint)["feature_names"]
        pool_names = [*composition_input_names(True), *DESCRIPTOR_NAMES, *site_descriptor_names()]
        assert names[: len(pool_names)] == pool_names
    surrogate = load_surrogate(checkpoints[-1])
    assert surrogate.n_features == len(names)
    radius_a, radius_b = (names.index(f"perovskite radius_{site}") for site in "AB")
    # The training rows' means: A-site cations (Ba, K, Sr, La, ...) are larger than B-site ones (Bi, Ti, Ni, ...).
    assert 1.1 < surrogate.x_mean[radius_a].item() < 1.8 and 0.5 < surrogate.x_mean[radius_b].item() < 1.0
    # The elemental site properties follow the same placement: A-site elements have the larger covalent radii.
    covalent_a, covalent_b = (names.index(f"{site} CovalentRadius") for site in "AB")
    assert surrogate.x_mean[covalent_a].item() > surrogate.x_mean[covalent_b].item() + 20.0


def _defect_and_structure_checks(view: CampaignView) -> None:
    defects = view.defects()
    assert len(defects) == 4
    for row, result in zip(defects.itertuples(), [r for r in view.results if r.stage == 0], strict=True):
        energies = [site["formation_energy"] for site in result.document["vacancies"]]
        assert row.Ef_vac_O_sites == energies and row.Ef_vac_O_mean == pytest.approx(np.mean(energies))
        assert result.values["Ef_vac_O"] == pytest.approx(row.Ef_vac_O_mean)
    lower, upper = defects["Ef_vac_O model lower"], defects["Ef_vac_O model upper"]
    assert lower.notna().all() and (lower <= upper).all()
    structures = view.structures()
    assert len(structures) == 4 and (structures["n_sites"] == 10).all()
    assert isinstance(structures["structure"].iloc[0], Structure)


def test_report_shows_the_defect_panel_and_the_structures(mission: Path, tmp_path: Path) -> None:
    view = open_view(mission)
    _defect_and_structure_checks(view)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(mission), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert '<figure id="defects">' in text and (tmp_path / "report_defects.png").is_file()
    assert "Defect quantities computed by the oracle" in text and "Ef_vac_O_sites" in text
    assert "Structures returned by the oracle" in text and "relaxed bulk supercell" in text
    assert "composite, per batch of 2: 1 by expected_improvement on Tc_K; 1 by uncertainty on Ef_vac_O" in text
    assert re.search(r"<td>expected_improvement on Tc_K: qLogEI", text)

"""The inspection API: frames equal to the stored documents, prospective calibration, optional columns."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import campaign_config
from pymatgen.core import Structure
from scipy import stats

from sbin_loop.inspection import CampaignView, open_view
from sbin_loop.inspection.plots import campaign_figures, defect_panels, plot_defects
from sbin_loop.loop import Campaign
from sbin_loop.model.intervals import Interval
from sbin_loop.status import NotACampaignError, open_campaign
from sbin_loop.stores import CampaignDoc, ResultDoc, RoundDoc, SelectionEntry


@pytest.fixture(scope="module")
def view(finished_campaign: Path) -> CampaignView:
    return open_view(finished_campaign)


@pytest.fixture(scope="module")
def stored(finished_campaign: Path) -> dict:
    store, doc = open_campaign(finished_campaign)
    try:
        return {"campaign": doc, "rounds": store.rounds(), "results": store.results(), "jobs": store.jobs()}
    finally:
        store.close()


def test_evaluations_match_results(view: CampaignView, stored: dict) -> None:
    frame = view.evaluations()
    results = stored["results"]
    assert len(frame) == len(results) == 6 + 2 * 4
    assert list(frame["evaluation"]) == list(range(1, len(results) + 1))
    assert list(frame["job_id"]) == [result.job_id for result in results]
    assert frame["Tc_K"].tolist() == [result.values["Tc_K"] for result in results]
    assert frame["best_so_far"].tolist() == frame["Tc_K"].cummax().tolist()
    best_row = frame["Tc_K"].idxmax()
    assert frame["best_candidate"].iloc[-1] == frame["candidate_id"].iloc[best_row]


def test_rounds_selections_training_and_intervals_match_rounds(view: CampaignView, stored: dict) -> None:
    rounds = stored["rounds"]
    frame = view.rounds_frame()
    assert frame["round"].tolist() == [0, 1, 2]
    assert frame["best_observed"].tolist() == [doc.best_observed.observed for doc in rounds]
    assert frame["best_upper"].tolist() == [doc.best_observed.interval.upper for doc in rounds]

    picks = view.selections()
    entries = [(doc.round, entry) for doc in rounds for entry in doc.selected]
    assert len(picks) == len(entries)
    assert picks["candidate_id"].tolist() == [entry.candidate_id for _, entry in entries]
    assert picks["policy"].tolist() == ["random"] * 6 + ["expected_improvement"] * 8
    later = picks[picks["round"] > 0]
    assert later["acquisition_value"].tolist() == [entry.acquisition_value for r, entry in entries if r > 0]
    assert later["pred_upper"].tolist() == [entry.prediction.upper for r, entry in entries if r > 0]
    assert picks.loc[picks["round"] == 0, "pred_mean"].isna().all()
    measured = {(result.round, result.candidate_id): result.values["Tc_K"] for result in stored["results"]}
    assert picks["observed"].tolist() == [measured[(r, entry.candidate_id)] for r, entry in entries]

    training = view.training()
    assert training["final_nll"].tolist() == [doc.training["final_nll"] for doc in rounds]

    intervals = view.intervals()
    assert len(intervals) == sum(len(entries) for doc in rounds for entries in doc.intervals.values())
    assert set(intervals["group"]) == {"selected", "best_observed", "top_predicted"}
    assert np.allclose(intervals["width"], intervals["upper"] - intervals["lower"])

    widths = view.interval_widths()
    first = [entry.prediction.width for entry in rounds[1].selected]
    assert widths.loc[1, "picks before measurement"] == pytest.approx(np.mean(first))
    assert np.isnan(widths.loc[0, "picks before measurement"])


def test_predictions_are_the_prospective_ones(view: CampaignView) -> None:
    predictions = view.predictions()
    assert len(predictions) == 8 and (predictions["round"] > 0).all()
    inside = (predictions["observed"] >= predictions["pred_lower"]) & (
        predictions["observed"] <= predictions["pred_upper"]
    )
    assert predictions["inside"].tolist() == inside.tolist()
    # At the stored level the assumed-normal test is the stored-interval test.
    assert ((predictions["z"].abs() <= stats.norm.ppf(0.975)) == predictions["inside"]).all()
    calibration = view.calibration()
    assert calibration.loc[calibration["level"] == 0.95, "observed"].item() == pytest.approx(
        predictions["inside"].mean()
    )
    assert (calibration["n"] == 8).all()
    assert calibration["observed"].is_monotonic_increasing


def _synthetic_view(view: CampaignView, n: int, scale: float) -> CampaignView:
    """A one-round view whose observations are drawn from the predictive distribution ``calibration`` assumes,
    with intervals ``scale`` times too narrow or wide."""
    rng = np.random.default_rng(0)
    centre = rng.uniform(0, 5, n)  # log1p space
    spread = rng.uniform(0.2, 1.0, n)
    observed = np.expm1(centre + spread * rng.standard_normal(n))
    half = stats.norm.ppf(0.975) * spread * scale
    entries, results = [], []
    for i in range(n):
        lower, upper = np.expm1(centre[i] - half[i]), np.expm1(centre[i] + half[i])
        prediction = Interval(
            mean=np.expm1(centre[i]),
            median=np.expm1(centre[i]),
            std=1.0,
            lower=lower,
            upper=upper,
            t_lower=lower,
            t_upper=upper,
            mc_mean_lower=lower,
            mc_mean_upper=upper,
            n_draws=100,
            level=0.95,
        )
        entries.append(
            SelectionEntry(
                candidate_id=f"c{i}",
                formula="NbN",
                policy="p",
                acquisition="a",
                acquisition_value=0.0,
                prediction=prediction,
            )
        )
        results.append(
            ResultDoc(
                campaign="test",
                job_id=f"j{i}",
                round=1,
                candidate_id=f"c{i}",
                formula="NbN",
                values={"Tc_K": observed[i]},
                oracle="synthetic",
            )
        )
    round_doc = RoundDoc(campaign="test", round=1, state="complete", seed=0, selected=entries)
    return dataclasses.replace(view, rounds=[round_doc], results=results, jobs=[])


@pytest.mark.parametrize(("scale", "calibrated"), [(1.0, True), (0.5, False)])
def test_calibration_recovers_coverage(view: CampaignView, scale: float, calibrated: bool) -> None:
    calibration = _synthetic_view(view, 4000, scale).calibration()
    inside_band = (calibration["observed"] >= calibration["band_lower"] - 0.01) & (
        calibration["observed"] <= calibration["band_upper"] + 0.01
    )
    assert inside_band.all() == calibrated
    if calibrated:
        assert np.allclose(calibration["observed"], calibration["level"], atol=0.03)


FIXTURES = Path(__file__).parent / "fixtures" / "chgnet_defects"


def _forcefield_view(view: CampaignView) -> CampaignView:
    """``view`` as a two-stage campaign (CHGNet defect workflow, then the replayed Tc) whose stage-0 results are the
    real CHGNet outcomes stored under ``tests/fixtures/chgnet_defects``."""
    config = dict(view.campaign.config)
    config["objectives"] = [*config["objectives"], {"name": "Ef_vac_O", "unit": "eV"}]
    forcefield = {"kind": "forcefield", "defects": {"vacancies": ["O"], "sites_per_species": 1}}
    config["oracles"] = [{**forcefield, "values": {"Ef_vac_O": "Ef_vac_O_mean"}}, config["oracles"][0]]
    results = []
    for path in sorted(FIXTURES.glob("r*.json")):
        outcome = json.loads(path.read_text())
        round_index, candidate = path.stem.split("_", 1)
        results.append(
            ResultDoc(
                campaign="test",
                job_id=outcome["job_id"],
                round=int(round_index[1:]),
                candidate_id=candidate,
                formula=outcome["document"]["formula"],
                values=outcome["values"],
                oracle="forcefield:CHGNet",
                provenance=outcome["provenance"],
                document=outcome["document"],
            )
        )
    campaign = view.campaign.model_copy(update={"config": config})
    return dataclasses.replace(view, campaign=campaign, results=results, rounds=[], jobs=[])


def test_structures_and_defects_come_from_the_oracles_declarations(view: CampaignView) -> None:
    assert view.structures().empty and view.defects().empty and plot_defects(view) is None
    assert set(view.outputs()["kind"]) == {"target"}  # a dataset replay declares its objectives only

    real = _forcefield_view(view)
    outputs = real.outputs().set_index(["stage", "name"])
    assert outputs.loc[(0, "relaxed bulk supercell"), "location"] == "document.bulk.structure"
    assert outputs.loc[(0, "Ef_vac_O"), "kind"] == "defect_energy"  # the objective the workflow's mean is stored as
    assert (1, "Ef_vac_O") not in outputs.index  # SuperCon has no such column: the replay does not claim it
    assert [output.name for output in defect_panels(real)] == [
        "Ef_vac_O_sites",
        "log10_vac_O_site_fraction",
        "vac_O_per_cm3",
    ]

    defects = real.defects()
    assert len(defects) == len(real.results) == 4
    for row, result in zip(defects.itertuples(index=False), real.results, strict=True):
        document = result.document
        assert row.Ef_vac_O_sites == [site["formation_energy"] for site in document["vacancies"]]
        assert row.Ef_vac_O_mean == document["statistics"]["O"]["mean"] == result.values["Ef_vac_O"]
        assert row.log10_vac_O_site_fraction == document["densities"]["O"]["log10_site_fraction"]
        assert row.vac_O_per_cm3 == document["densities"]["O"]["per_cm3"]
    assert defects["Ef_vac_O model mean"].isna().all()  # no round stored, so no model interval

    structures = real.structures()
    assert len(structures) == 4 and set(structures["output"]) == {"relaxed bulk supercell"}
    first = real.results[0].document["bulk"]
    assert structures["structure"].iloc[0] == Structure.from_dict(first["structure"])
    assert (structures["n_sites"] == first["n_atoms"]).all()
    assert structures["a"].iloc[0] == pytest.approx(Structure.from_dict(first["structure"]).lattice.a)
    assert "defects" in campaign_figures(real)


def test_every_figure_drawn_for_a_finished_campaign(view: CampaignView) -> None:
    figures = campaign_figures(view)
    assert list(figures) == ["best_so_far", "selections", "parity", "calibration", "uncertainty"]
    for figure in figures.values():
        for axes in figure.axes:
            if axes.get_label() != "<colorbar>":
                assert axes.get_xlabel() and axes.get_ylabel()
    parity_axes = figures["parity"].axes[0]
    assert "(K)" in parity_axes.get_xlabel() and "(K)" in parity_axes.get_ylabel()


def test_new_campaign_has_empty_frames_and_no_figures(tmp_path: Path, pool_csv: Path) -> None:
    Campaign.from_config(campaign_config(pool_csv), tmp_path / "new")
    view = open_view(tmp_path / "new")
    assert view.rounds == [] and view.results == []
    for frame in (view.rounds_frame(), view.evaluations(), view.selections(), view.predictions(), view.training()):
        assert frame.empty
    assert view.calibration()["n"].eq(0).all()
    assert campaign_figures(view) == {}


def test_open_view_is_read_only(finished_campaign: Path) -> None:
    before = {path: path.read_bytes() for path in finished_campaign.rglob("*") if path.is_file()}
    open_view(finished_campaign).evaluations()
    after = {path: path.read_bytes() for path in finished_campaign.rglob("*") if path.is_file()}
    assert after == before


def test_open_view_errors(tmp_path: Path) -> None:
    with pytest.raises(NotACampaignError):
        open_view(tmp_path)
    with pytest.raises(ValueError, match="campaign name"):
        open_view("mongodb://user:secret@localhost:1/")


def test_view_keeps_the_campaign_document(view: CampaignView, stored: dict) -> None:
    campaign: CampaignDoc = stored["campaign"]
    assert view.campaign == campaign
    assert view.objective.name == "Tc_K" and view.unit("Tc_K") == "K" and view.unit("other") == ""

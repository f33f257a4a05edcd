"""The inspection API: frames equal to the stored documents, prospective calibration, optional columns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import campaign_config
from pymatgen.core import Lattice, Structure
from scipy import stats

from sbin_loop.inspection import CampaignView, open_view
from sbin_loop.inspection.plots import campaign_figures, defect_columns, plot_defects
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


def test_structures_and_defects_shown_when_present(view: CampaignView) -> None:
    assert view.structures().empty and defect_columns(view) == [] and plot_defects(view) is None
    structure = Structure(
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )
    results = [
        result.model_copy(
            update={
                "values": {**result.values, "defect_density_cm3": 10.0 ** (15 + position % 4)},
                "provenance": {**result.provenance, "relaxed_structure": structure.as_dict()},
            }
        )
        for position, result in enumerate(view.results)
    ]
    rich = dataclasses.replace(view, results=results)
    structures = rich.structures()
    assert len(structures) == len(results)
    assert structures["space_group"].iloc[0] == "Pm-3m" and structures["n_sites"].iloc[0] == 5
    assert structures["a"].iloc[0] == pytest.approx(3.905)
    assert structures["key"].iloc[0] == "relaxed_structure"
    assert rich.value_columns() == ["Tc_K", "defect_density_cm3"]
    assert rich.evaluations()["defect_density_cm3"].notna().all()
    assert defect_columns(rich) == ["defect_density_cm3"]
    assert "defects" in campaign_figures(rich)


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

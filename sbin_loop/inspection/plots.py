"""Plots of a campaign, one function per view, each returning a matplotlib ``Figure`` (or ``None`` without data).

Figures are built with the object-oriented API (no pyplot state), so they work headless, in reports and in notebooks
(a ``Figure`` displays itself as the last expression of a cell). ``FIGURES`` lists every view in report order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

from sbin_loop.inspection.declared import defect_outputs, site_values, stage_outputs
from sbin_loop.inspection.frames import CampaignView
from sbin_loop.oracles.outputs import OracleOutput

ROUND_COLORMAP = "viridis"
LOG1P_TICKS = (0, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000)
ACQUISITION_SCALES = {"qLogEI": "ln(EI / {unit})"}
"""What an acquisition value measures, by acquisition name (``unit``: the objective's unit)."""


def _with_unit(label: str, unit: str) -> str:
    return f"{label} ({unit})" if unit else label


def _objective_scale(view: CampaignView, axes: Axes, *which: str) -> str:
    """Put value axes on the model's scale (``log1p`` for a log1p-modelled objective) and say so in the label."""
    if view.objective.transform != "log1p":
        return ""
    for name in which:
        getattr(axes, f"set_{name}scale")("function", functions=(np.log1p, np.expm1))
        axis = getattr(axes, f"{name}axis")
        axis.set_major_locator(FixedLocator(LOG1P_TICKS))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_locator(NullLocator())
    return ", log(1 + y) scale"


def _round_colors(rounds: object, n_rounds: int) -> dict:
    """Scatter keyword arguments colouring points by round on one scale for the whole campaign."""
    return {"c": rounds, "cmap": ROUND_COLORMAP, "vmin": 0, "vmax": max(n_rounds - 1, 1)}


def _round_colorbar(figure: Figure, mappable: object, axes: Axes) -> None:
    figure.colorbar(mappable, ax=axes, label="round")


def plot_best_so_far(view: CampaignView) -> Figure | None:
    """Best measured value so far vs evaluations, every measurement, and the model's 95% interval of the best one.

    The band is the interval stored at the end of each round for the best measured candidate, by the model retrained
    on that round's results; it is drawn from the round's last evaluation to the next round's.
    """
    evaluations = view.evaluations()
    name, unit = view.objective.name, view.objective.unit
    if name not in evaluations or evaluations[name].isna().all():
        return None
    rounds = view.rounds_frame()
    rounds = rounds[rounds["best_mean"].notna()]
    figure = Figure(figsize=(8, 4.8), layout="constrained")
    axes = figure.add_subplot()
    if not rounds.empty:
        level = rounds["best_level"].iloc[-1]
        axes.fill_between(
            rounds["n_evaluations"],
            rounds["best_lower"],
            rounds["best_upper"],
            step="post",
            alpha=0.2,
            color="tab:blue",
            label=f"{level:.0%} interval of the best candidate (model after each round)",
        )
        axes.plot(rounds["n_evaluations"], rounds["best_mean"], "o", color="tab:blue", label="model mean of the best")
    points = axes.scatter(
        evaluations["evaluation"],
        evaluations[name],
        s=14,
        alpha=0.7,
        label="each measurement",
        **_round_colors(evaluations["round"], len(view.rounds)),
    )
    axes.step(evaluations["evaluation"], evaluations["best_so_far"], where="post", color="black", label="best so far")
    scale = _objective_scale(view, axes, "y")
    axes.set_xlabel("evaluations (count)")
    axes.set_ylabel(_with_unit(f"{name}", unit) + scale)
    best = evaluations.iloc[-1]
    axes.set_title(f"Best {name} so far: {best['best_so_far']:.4g} {unit} ({best['best_candidate']})")
    figure.legend(loc="outside lower center", ncols=2, fontsize="small")
    axes.grid(alpha=0.3)
    _round_colorbar(figure, points, axes)
    return figure


def plot_selections(view: CampaignView) -> Figure | None:
    """Why each pick was made: its acquisition value by round, and its predicted mean vs uncertainty at pick time.

    Left: acquisition value of each pick (for batch qLogEI, the value of the batch up to and including that pick),
    coloured by the value measured afterwards. Right: the model's mean and standard deviation for each pick before it
    was measured; picks to the right exploit, picks to the top explore.
    """
    picks = view.selections()
    if picks.empty or (picks["acquisition_value"].isna().all() and picks["pred_mean"].isna().all()):
        return None
    name, unit = view.objective.name, view.objective.unit
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    scored = picks[picks["acquisition_value"].notna()]
    jitter = (scored["rank"] / max(picks["rank"].max(), 1) - 0.5) * 0.6
    points = left.scatter(scored["round"] + jitter, scored["acquisition_value"], c=scored["observed"], cmap="plasma")
    figure.colorbar(points, ax=left, label=_with_unit(f"measured {name}", unit))
    acquisitions = sorted(scored["acquisition"].unique())
    scale = [ACQUISITION_SCALES.get(name, "").format(unit=unit or "unit") for name in acquisitions]
    left.set_xlabel("round (picks spread in pick order)")
    left.set_ylabel(f"acquisition value ({', '.join(filter(None, [*acquisitions, *scale]))})")
    left.set_title("Acquisition value of each pick")
    left.grid(alpha=0.3)
    predicted = picks[picks["pred_mean"].notna()]
    points = right.scatter(
        predicted["pred_mean"], predicted["pred_std"], **_round_colors(predicted["round"], len(view.rounds))
    )
    _round_colorbar(figure, points, right)
    right.set_xlabel(_with_unit(f"predicted mean {name} at pick time", unit))
    right.set_ylabel(_with_unit("predicted standard deviation", unit))
    right.set_title("Exploit (right) or explore (up)")
    right.grid(alpha=0.3)
    return figure


def plot_parity(view: CampaignView) -> Figure | None:
    """Prediction made before each measurement vs the measured value, with the stored interval as error bars."""
    predictions = view.predictions()
    if predictions.empty:
        return None
    name, unit = view.objective.name, view.objective.unit
    figure = Figure(figsize=(6.4, 5.6), layout="constrained")
    axes = figure.add_subplot()
    median = predictions["pred_median"]  # the median lies inside the quantile interval; a skewed mean may not
    errors = np.vstack([median - predictions["pred_lower"], predictions["pred_upper"] - median])
    axes.errorbar(predictions["observed"], median, yerr=errors, fmt="none", ecolor="0.6", elinewidth=0.8, zorder=1)
    points = axes.scatter(
        predictions["observed"],
        median,
        zorder=2,
        s=18,
        **_round_colors(predictions["round"], len(view.rounds)),
    )
    _round_colorbar(figure, points, axes)
    limits = [min(predictions["observed"].min(), median.min()), max(predictions["observed"].max(), median.max())]
    axes.plot(limits, limits, "k--", linewidth=1, label="predicted = measured")
    scale = _objective_scale(view, axes, "x", "y")
    level = predictions["pred_level"].iloc[0]
    mae = (median - predictions["observed"]).abs().mean()
    axes.set_title(
        f"{len(predictions)} picks: {predictions['inside'].mean():.0%} inside their {level:.0%} interval, "
        f"MAE {mae:.3g} {unit}".strip()
    )
    axes.set_xlabel(_with_unit(f"measured {name}", unit) + scale)
    axes.set_ylabel(_with_unit(f"predicted {name} before measurement (median)", unit) + scale)
    axes.legend(loc="upper left", fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def plot_calibration(view: CampaignView) -> Figure | None:
    """Prospective calibration: expected vs observed coverage of central intervals predicted before measurement.

    The star uses the stored quantile interval as is. The line derives other levels from one assumption: the
    predictive distribution is normal in the objective's modelled space (log(1 + y) for a log1p objective), centred on
    and scaled to the stored interval. The shaded band is where a calibrated model's observed coverage falls 95% of
    the time for this number of picks; points below it mean overconfident intervals.
    """
    calibration = view.calibration()
    n = int(calibration["n"].iloc[0])
    if n == 0:
        return None
    predictions = view.predictions()
    stored_level = predictions["pred_level"].iloc[0]
    figure = Figure(figsize=(6, 5.4), layout="constrained")
    axes = figure.add_subplot()
    axes.fill_between(
        calibration["level"],
        calibration["band_lower"],
        calibration["band_upper"],
        color="0.85",
        label=f"calibrated model, 95% range for {n} picks",
    )
    axes.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    axes.plot(calibration["level"], calibration["observed"], "o-", label="observed (normal in transformed space)")
    axes.plot(
        [stored_level],
        [predictions["inside"].mean()],
        "*",
        markersize=14,
        color="tab:red",
        label=f"stored {stored_level:.0%} quantile interval",
    )
    axes.set_xlabel("expected coverage (nominal level of the central interval, fraction)")
    axes.set_ylabel("observed coverage (fraction of picks inside, fraction)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_title(f"Prospective calibration of {view.objective.name}")
    axes.legend(loc="upper left", fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def plot_uncertainty(view: CampaignView) -> Figure | None:
    """Mean interval width per round: picks before measurement, and every stored group after retraining."""
    widths = view.interval_widths()
    if widths.empty:
        return None
    name, unit = view.objective.name, view.objective.unit
    figure = Figure(figsize=(7.5, 4.6), layout="constrained")
    axes = figure.add_subplot()
    labels = {
        "picks before measurement": "picks, predicted before measurement",
        "selected": "picks, after retraining on them",
        "best_observed": "best measured candidates",
        "top_predicted": "best predicted, not yet measured",
    }
    for column in widths.columns:
        series = widths[column].dropna()
        axes.plot(series.index, series, "o-", label=labels.get(column, column))
    axes.set_xlabel("round")
    axes.set_ylabel(_with_unit(f"mean {view.config.intervals.level:.0%} interval width of {name}", unit))
    axes.set_title("Uncertainty over rounds")
    axes.legend(loc="best", fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def defect_panels(view: CampaignView) -> list[OracleOutput]:
    """The defect quantities drawn, one panel each: those the oracles declare, less statistics over sites.

    A statistic (``Ef_vac_O_mean``) is drawn in the panel of the per-site energies it summarises.
    """
    return [output for output in defect_outputs(view) if output.statistic_of is None]


def plot_defects(view: CampaignView) -> Figure | None:
    """Defect quantities the oracles declared, for each evaluated pick by round, one panel per quantity.

    Formation energies of every sampled site (grey) and their mean (black), with the 95% interval of the model
    retrained after the round where the campaign learns that energy (blue bars); equilibrium defect densities (site
    fraction, log10, and per cm³ on a log axis).
    """
    frame = view.defects()
    panels = defect_panels(view)
    if frame.empty or not panels:
        return None
    statistics = {(o.statistic_of, o.statistic): o.name for o in defect_outputs(view) if o.statistic_of}
    learnt = {
        o.statistic_of: o.objective
        for outputs in stage_outputs(view).values()
        for o in outputs
        if o.objective is not None and o.statistic == "mean" and o.statistic_of
    }
    figure = Figure(figsize=(5.4 * len(panels), 4.6), layout="constrained")
    for axes, output in zip(np.atleast_1d(figure.subplots(1, len(panels))), panels, strict=True):
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(frame))
        if output.per_site:
            rounds, values = site_values(frame, output.name)
            axes.scatter(rounds, values, s=12, color="0.6", label="each sampled site")
            mean = statistics.get((output.name, "mean"))
            if mean in frame:
                axes.scatter(frame["round"] + jitter, frame[mean], s=22, color="black", label="mean over sites")
            objective = learnt.get(output.name)
            lower = f"{objective} model lower"
            if objective and lower in frame and frame[lower].notna().any():
                centre = frame[f"{objective} model median"]  # inside the quantile interval, unlike a skewed mean
                spread = np.vstack([centre - frame[lower], frame[f"{objective} model upper"] - centre])
                axes.errorbar(
                    frame["round"] + jitter + 0.25,
                    centre,
                    yerr=spread,
                    fmt="o",
                    ms=3,
                    color="tab:blue",
                    label=f"model interval of {objective} after the round",
                )
            axes.legend(loc="best", fontsize="small")
        else:
            axes.scatter(frame["round"] + jitter, frame[output.name], s=16)
            if (frame[output.name].dropna() > 0).all() and frame[output.name].notna().any():
                axes.set_yscale("log")
        axes.set_xlabel("round")
        axes.set_ylabel(_with_unit(output.name, output.unit))
        axes.set_title(f"{output.name} of the picks")
        axes.grid(alpha=0.3)
    return figure


@dataclass(frozen=True)
class FigureSpec:
    """One view of a campaign: a file-friendly name, a title and the function drawing it."""

    name: str
    title: str
    draw: Callable[[CampaignView], Figure | None]

    @property
    def caption(self) -> str:
        """The drawing function's docstring, as one paragraph."""
        return " ".join((self.draw.__doc__ or "").replace("``", "").split())


FIGURES = (
    FigureSpec("best_so_far", "Best so far", plot_best_so_far),
    FigureSpec("selections", "Picks and why", plot_selections),
    FigureSpec("parity", "Predicted before measurement vs measured", plot_parity),
    FigureSpec("calibration", "Prospective calibration", plot_calibration),
    FigureSpec("uncertainty", "Uncertainty shrinkage", plot_uncertainty),
    FigureSpec("defects", "Defect quantities of the picks", plot_defects),
)
"""Every view, in report order."""


def campaign_figures(view: CampaignView) -> dict[str, Figure]:
    """Every figure that has data, by ``FigureSpec.name``, in report order."""
    figures = {spec.name: spec.draw(view) for spec in FIGURES}
    return {name: figure for name, figure in figures.items() if figure is not None}

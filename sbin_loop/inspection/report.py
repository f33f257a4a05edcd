"""A self-contained HTML report of a campaign: provenance, every figure (embedded PNG), key tables and the config.

Each figure is also written as a PNG beside the HTML file (``<stem>_<figure>.png``), for slides and READMEs.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sbin_loop import __version__
from sbin_loop.inspection.frames import CampaignView
from sbin_loop.inspection.plots import FIGURES, FigureSpec, campaign_figures
from sbin_loop.status import ranked_by_mean
from sbin_loop.stores.config import StoreConfig
from sbin_loop.stores.documents import utc_now

DPI = 110
PICK_COLUMNS = (
    "round",
    "rank",
    "formula",
    "policy",
    "reason",
    "acquisition_value",
    "pred_mean",
    "pred_lower",
    "pred_upper",
    "oracles",
    "observed",
    "expected_gain",
)
"""Columns of ``CampaignView.selections`` shown in the report (``expected_gain`` added by ``pick_table``)."""

MISSING = "–"
"""What an empty cell shows (no value, not applicable)."""

LOG_ACQUISITIONS = ("qLogEI", "qLogNEI")
"""Acquisitions whose value is the logarithm of the expected improvement (in the objective's unit)."""

NEGLIGIBLE_LOG_GAIN = -20.0
"""A log-EI below this (an expected improvement under e^-20, about 2e-9 of a unit) is no expected gain at all: the
pick was made because a batch had to be filled, not because the model expected anything from it."""

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; max-width: 900px; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.table-wrap { max-width: 100%; overflow-x: auto; }
"""


class ReportError(OSError):
    """A report that cannot be written where it was asked to be; the message says where to write it instead."""


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_report`` wrote.

    Attributes:
        html: The HTML report.
        images: The PNG of each figure, by figure name.
    """

    html: Path
    images: dict[str, Path]


def cell_text(value: object) -> str:
    """How one table cell reads: missing as ``–``, lists and mappings joined, numbers to four significant digits."""
    if isinstance(value, dict):
        return ", ".join(f"{key}: {cell_text(item)}" for key, item in value.items()) or MISSING
    if isinstance(value, list | tuple | set | np.ndarray):
        return ", ".join(cell_text(item) for item in value) or MISSING
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return MISSING if math.isnan(value) else f"{float(value):.4g}"
    return str(value)


def _table(frame: pd.DataFrame) -> str:
    """An HTML table of formatted cells (escaped), in a container that scrolls sideways when it is too wide."""
    cells = frame.astype(object).map(cell_text) if not frame.empty else frame
    return f'<div class="table-wrap">{cells.to_html(index=False, border=0, escape=True)}</div>'


def expected_gain(acquisition: object, value: object) -> str:
    """``negligible`` for a log-EI pick whose value says it expected no gain, else empty."""
    if acquisition in LOG_ACQUISITIONS and isinstance(value, float) and value < NEGLIGIBLE_LOG_GAIN:
        return f"negligible (log EI {value:.3g} < {NEGLIGIBLE_LOG_GAIN:g})"
    return ""


def pick_table(view: CampaignView) -> pd.DataFrame:
    """The picks as the report shows them, with ``expected_gain`` flagging picks made with nothing left to gain."""
    picks = view.selections()
    if not picks.empty:
        picks["expected_gain"] = [
            expected_gain(acquisition, value)
            for acquisition, value in zip(picks["acquisition"], picks["acquisition_value"], strict=True)
        ]
    return picks.reindex(columns=list(PICK_COLUMNS))


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n"


def provenance(view: CampaignView) -> pd.DataFrame:
    """Where the campaign and this report come from, as ``field``/``value`` rows."""
    oracles = sorted({result.oracle for result in view.results} | {job.oracle for job in view.jobs})
    versions = sorted({str(result.provenance["version"]) for result in view.results if "version" in result.provenance})
    complete = sum(doc.state == "complete" for doc in view.rounds)
    rows = {
        "campaign": view.campaign.campaign,
        "read from": view.source,
        "created at": view.campaign.created_at,
        "run with sbin": view.campaign.sbin_version,
        "oracles (config)": " → ".join(settings.kind for settings in view.config.oracles),
        "oracle (jobs)": ", ".join(oracles) or "no jobs yet",
        "oracle version": ", ".join(versions) or "not recorded",
        "policy": policy_text(view),
        "rounds complete": f"{complete} of {view.config.budget.rounds + 1}",
        "evaluations": f"{len(view.results)} ({sum(job.state == 'failed' for job in view.jobs)} failed jobs)",
        "report made at": utc_now(),
        "report made with sbin": __version__,
    }
    return pd.DataFrame({"field": list(rows), "value": list(rows.values())})


def policy_text(view: CampaignView) -> str:
    """The policy in one line: its rule and objective, or each component of a composite with its share of a batch."""
    policy = view.config.policy
    if policy.kind != "composite":
        return f"{policy.kind} on {view.objective.name} ({view.objective.goal})"
    default = view.config.objectives[0].name
    parts = [
        f"{rule.count} by {rule.kind} on {', '.join(rule.objective_names()) or default}" for rule in policy.components
    ]
    return f"composite, per batch of {policy.batch_size}: {'; '.join(parts)}"


def _candidate_tables(view: CampaignView) -> str:
    """Best measured and best predicted candidates with their intervals, from the last round that has them."""
    intervals = view.intervals()
    if intervals.empty:
        return "<p>No round is complete yet.</p>"
    last = intervals[intervals["round"] == intervals["round"].max()]
    columns = ["candidate_id", "formula", "objective", "observed", "mean", "lower", "upper", "level"]
    parts = []
    for group, title in (("best_observed", "Best measured"), ("top_predicted", "Best predicted, not yet measured")):
        rows = last[last["group"] == group]
        if group == "top_predicted" and not rows.empty:
            ranked = ranked_by_mean(rows.to_dict("records"), view.objective.name, view.objective.goal)
            rows = pd.DataFrame(ranked, columns=rows.columns)
        if not rows.empty:
            parts.append(f"<h3>{title} (model after round {int(last['round'].iloc[0])})</h3>{_table(rows[columns])}")
    return "\n".join(parts)


def _figure(spec: FigureSpec, png: bytes) -> str:
    source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    title = html.escape(spec.title)
    return (
        f'<figure id="{spec.name}"><h3>{title}</h3><img alt="{title}" src="{source}">'
        f"<figcaption>{html.escape(spec.caption)}</figcaption></figure>"
    )


def shown_config(view: CampaignView) -> dict:
    """The campaign's stored config with its store URI redacted (a campaign stored by an older sbin may hold one)."""
    config = dict(view.campaign.config)
    store = config.get("store")
    if isinstance(store, dict) and isinstance(store.get("uri"), str):
        config["store"] = {**store, "uri": StoreConfig.redact(store["uri"])}
    return config


def render_html(view: CampaignView, images: dict[str, bytes]) -> str:
    """The report as one HTML document with the PNG images embedded (base64).

    Args:
        view: The campaign.
        images: PNG bytes by figure name (figures without data are left out).
    """
    name = html.escape(view.campaign.campaign)
    figures = "\n".join(_figure(spec, images[spec.name]) for spec in FIGURES if spec.name in images)
    missing = [spec.title for spec in FIGURES if spec.name not in images]
    if missing:
        figures += f"<p>Not shown, no data yet: {html.escape(', '.join(missing))}.</p>"
    picks = pick_table(view)
    structures = view.structures().drop(columns="structure")
    defects = view.defects()
    sections = [
        _section("Provenance", _table(provenance(view))),
        _section("Oracle stages", _table(view.stages())),
        _section("Candidates", _candidate_tables(view)),
        _section("Figures", figures),
        _section("Rounds", _table(view.rounds_frame().drop(columns=["created_at", "updated_at"], errors="ignore"))),
        _section("Picks and predictions made before measurement", _table(picks)),
        _section("Calibration of predictions made before measurement", _table(view.calibration())),
        _section("Model training", _table(view.training())),
        _section("Defect quantities computed by the oracle", _table(defects)) if not defects.empty else "",
        _section("Structures returned by the oracle", _table(structures)) if not structures.empty else "",
        _section("Campaign config", f"<pre>{html.escape(yaml.safe_dump(shown_config(view), sort_keys=False))}</pre>"),
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>sbin campaign {name}</title>'
        f"<style>{_STYLE}</style></head>\n<body><h1>sbin campaign {name}</h1>\n{''.join(sections)}</body></html>\n"
    )


def write_report(view: CampaignView, out: Path) -> ReportFiles:
    """Write the HTML report and a PNG of each figure beside it.

    Args:
        view: The campaign.
        out: Path of the HTML file; its directory is created if needed.
    """
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"--out: cannot create {out.parent} ({error.strerror}); write the report elsewhere") from None
    if not os.access(out.parent, os.W_OK):
        raise ReportError(f"--out: cannot write to {out.parent}; give a writable file, e.g. --out /tmp/report.html")
    images, paths = {}, {}
    for name, figure in campaign_figures(view).items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        images[name] = buffer.getvalue()
        paths[name] = out.with_name(f"{out.stem}_{name}.png")
        paths[name].write_bytes(images[name])
    out.write_text(render_html(view, images), encoding="utf-8")
    return ReportFiles(html=out, images=paths)

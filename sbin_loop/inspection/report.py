"""A self-contained HTML report of a campaign: provenance, every figure (embedded PNG), key tables and the config.

Each figure is also written as a PNG beside the HTML file (``<stem>_<figure>.png``), for slides and READMEs.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from sbin_loop import __version__
from sbin_loop.inspection.frames import CampaignView
from sbin_loop.inspection.plots import FIGURES, FigureSpec, campaign_figures
from sbin_loop.stores.documents import utc_now

DPI = 110
PICK_COLUMNS = (
    "round",
    "rank",
    "formula",
    "acquisition_value",
    "pred_mean",
    "pred_lower",
    "pred_upper",
    "oracles",
    "observed",
)
"""Columns of ``CampaignView.selections`` shown in the report."""

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
"""


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_report`` wrote.

    Attributes:
        html: The HTML report.
        images: The PNG of each figure, by figure name.
    """

    html: Path
    images: dict[str, Path]


def _table(frame: pd.DataFrame) -> str:
    """An HTML table, numbers to four significant digits (cells are escaped)."""
    return frame.to_html(index=False, na_rep="", float_format="{:.4g}".format, border=0)


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
        "policy": f"{view.config.policy.kind} on {view.objective.name} ({view.objective.goal})",
        "rounds complete": f"{complete} of {view.config.budget.rounds + 1}",
        "evaluations": f"{len(view.results)} ({sum(job.state == 'failed' for job in view.jobs)} failed jobs)",
        "report made at": utc_now(),
        "report made with sbin": __version__,
    }
    return pd.DataFrame({"field": list(rows), "value": list(rows.values())})


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
    picks = view.selections().reindex(columns=list(PICK_COLUMNS))
    structures = view.structures().drop(columns="structure")
    sections = [
        _section("Provenance", _table(provenance(view))),
        _section("Oracle stages", _table(view.stages())),
        _section("Candidates", _candidate_tables(view)),
        _section("Figures", figures),
        _section("Rounds", _table(view.rounds_frame().drop(columns=["created_at", "updated_at"], errors="ignore"))),
        _section("Picks and predictions made before measurement", _table(picks)),
        _section("Calibration of predictions made before measurement", _table(view.calibration())),
        _section("Model training", _table(view.training())),
        _section("Structures returned by the oracle", _table(structures)) if not structures.empty else "",
        _section("Campaign config", f"<pre>{html.escape(yaml.safe_dump(view.campaign.config, sort_keys=False))}</pre>"),
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
    out.parent.mkdir(parents=True, exist_ok=True)
    images, paths = {}, {}
    for name, figure in campaign_figures(view).items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        images[name] = buffer.getvalue()
        paths[name] = out.with_name(f"{out.stem}_{name}.png")
        paths[name].write_bytes(images[name])
    out.write_text(render_html(view, images), encoding="utf-8")
    return ReportFiles(html=out, images=paths)

"""``sbin report`` and the inspection notebook, on a small finished campaign."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from nbclient import NotebookClient
from typer.testing import CliRunner

import sbin_loop
from sbin_loop.cli import app
from sbin_loop.inspection.frames import open_view
from sbin_loop.inspection.report import cell_text, pick_table, render_html
from sbin_loop.status import open_campaign

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "inspect_rounds.ipynb"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_writes_self_contained_html_and_pngs(finished_campaign: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared" / "quick.html"
    result = CliRunner().invoke(app, ["report", str(finished_campaign), "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = ["best_so_far", "selections", "parity", "calibration", "uncertainty"]
    pngs = [tmp_path / "shared" / f"quick_{name}.png" for name in names]
    assert sorted(tmp_path.joinpath("shared").iterdir()) == sorted([out, *pngs])
    assert all(png.read_bytes().startswith(PNG_MAGIC) for png in pngs)

    text = out.read_text()
    embedded = [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]
    assert embedded == [png.read_bytes() for png in pngs]
    assert "<script" not in text and 'src="http' not in text
    config = yaml.safe_load(re.search(r"<h2>Campaign config</h2>\s*<pre>(.*?)</pre>", text, re.S).group(1))
    assert config["name"] == "test" and config["policy"]["batch_size"] == 4
    for needle in ("Provenance", "run with sbin", sbin_loop.__version__, "dataset", "Best measured", "Model training"):
        assert needle in text
    assert "Structures returned" not in text


def test_report_defaults_into_the_campaign_and_refuses_other_directories(
    tmp_path: Path, finished_campaign: Path
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in finished_campaign.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(finished_campaign)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert CliRunner().invoke(app, ["report", str(copy)]).exit_code == 0
    assert (copy / "report.html").is_file() and (copy / "report_parity.png").is_file()

    result = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "not a sbin campaign" in result.output


def test_report_tables_read_cleanly_and_scroll_when_wide(finished_campaign: Path) -> None:
    html = render_html(open_view(finished_campaign), {})
    cells = re.findall(r"<td>(.*?)</td>", html, re.S)
    assert cells
    for bad in ("&lt;NA&gt;", "<NA>", "None", "nan", "NaN", "[", "]"):
        assert not [cell for cell in cells if bad in cell], bad
    assert html.count("<table") == html.count('<div class="table-wrap"><table')
    assert ".table-wrap { max-width: 100%; overflow-x: auto; }" in html
    assert "–" in cells  # round 0's picks have no acquisition value nor prediction


def test_cells_are_formatted() -> None:
    assert [cell_text(value) for value in (None, pd.NA, float("nan"), [1, 2.5], {"a": 1}, 1234.5678, 3, True)] == [
        "–",
        "–",
        "–",
        "1, 2.5",
        "a: 1",
        "1235",
        "3",
        "yes",
    ]


def test_picks_with_nothing_left_to_gain_are_flagged(finished_campaign: Path, tmp_path: Path) -> None:
    directory = tmp_path / "campaign"
    shutil.copytree(finished_campaign, directory)
    store, _ = open_campaign(directory)
    try:
        last = store.rounds()[-1]
        hopeless = last.selected[0].model_copy(update={"acquisition": "qLogEI", "acquisition_value": -50.0})
        store.update_round(last, selected=[hopeless, *last.selected[1:]])
    finally:
        store.close()
    view = open_view(directory)
    picks, selections = pick_table(view), view.selections()
    flagged = set(zip(picks["round"], picks["rank"], strict=True)) - set(
        zip(*(picks[picks["expected_gain"] == ""][column] for column in ("round", "rank")), strict=True)
    )
    hopeless_rows = selections[(selections["acquisition"] == "qLogEI") & (selections["acquisition_value"] < -20)]
    assert (last.round, 0) in flagged
    assert flagged == set(zip(hopeless_rows["round"], hopeless_rows["rank"], strict=True))
    assert not any(round_index == 0 for round_index, _ in flagged)  # random picks have no acquisition value
    assert "negligible (log EI -50 &lt; -20)" in render_html(open_view(directory), {})


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_notebook_runs_top_to_bottom(finished_campaign: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBIN_CAMPAIGN_DIR", str(finished_campaign))
    monkeypatch.setenv("PYTHONPATH", str(Path(sbin_loop.__file__).parents[1]))  # the sbin_loop under test
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": NOTEBOOK.parent}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 5
    text = "".join(output.get("text", "") for output in outputs)
    assert "No defect quantities" in text and "No structures" in text

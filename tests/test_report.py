"""``sbin report`` and the inspection notebook, on a small finished campaign."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from typer.testing import CliRunner

import sbin_loop
from sbin_loop.cli import app

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

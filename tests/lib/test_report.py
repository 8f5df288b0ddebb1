from __future__ import annotations

import re
from pathlib import Path

import papermill
import pytest
from plotly.offline import get_plotlyjs

from lib.run.report import render_html, write_index

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "notebooks"
BANNER = {
    "stage": "ok",
    "status": "ok",
    "duration": "1.0 s",
    "params_digest": "abc123",
    "finished_at": "now",
    "error": None,
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nb") / "ok.ipynb"
    papermill.execute_notebook(
        str(FIXTURES / "ok.ipynb"),
        str(out),
        parameters={"project": {"name": "churn"}},
        kernel_name="python3",
        progress_bar=False,
    )
    return out


@pytest.mark.slow
def test_report_embeds_plotly_once_and_loads_nothing_remote(executed, tmp_path):
    html = tmp_path / "ok.html"
    render_html(executed, html, banner=BANNER, hide_code=False)
    text = html.read_text()
    assert text.count(get_plotlyjs()[:500]) == 1
    assert "Plotly.newPlot" in text
    assert not re.search(r"<script[^>]+src=", text)
    assert 'id="quire-status"' in text and 'data-status="ok"' in text
    assert "abc123" in text
    assert "setup_notebook" in text  # code shown by default


@pytest.mark.slow
def test_hide_code_drops_inputs_but_keeps_figures(executed, tmp_path):
    html = tmp_path / "ok.html"
    render_html(executed, html, banner=BANNER, hide_code=True)
    text = html.read_text()
    assert "setup_notebook" not in text
    assert "Plotly.newPlot" in text


def test_index_lists_every_stage_with_status(tmp_path):
    status = {
        "run": {"dataset": "churn", "params_digest": "d1", "started_at": "t", "status": "ok"},
        "stages": {
            "ingest": {
                "status": "ok",
                "duration": "2.0 s",
                "params_digest": "d1",
                "report": "01_ingest.html",
                "reason": "its parameters changed",
            }
        },
    }
    write_index(tmp_path, status)
    text = (tmp_path / "index.html").read_text()
    assert '<a href="01_ingest.html">' in text
    assert re.search(
        r'data-stage="ingest">\s*<td>01_ingest.ipynb</td>\s*<td class="ok">ok</td>\s*'
        r"<td>its parameters changed</td>\s*<td>2.0 s</td>",
        text,
    )

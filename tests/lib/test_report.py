from __future__ import annotations

import json
import re
from pathlib import Path

import papermill
import pytest
from plotly.offline import get_plotlyjs

from lib.core.contracts.status import (
    HistoryStage,
    StageRecord,
    Status,
    empty_status,
    read_status,
    write_status,
)
from lib.run import history
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
    write_index(tmp_path, Status.model_validate(status))
    text = (tmp_path / "index.html").read_text()
    assert '<a href="01_ingest.html">' in text
    assert re.search(
        r'data-stage="ingest">\s*<td>01_ingest.ipynb</td>\s*<td class="ok">ok</td>\s*'
        r"<td>its parameters changed</td>\s*<td>2.0 s</td>",
        text,
    )


# status.json as run_all has written it since the run history was added: the typed contract must
# read it, and write it back unchanged.
SAVED_STATUS = """{
  "run": {
    "id": "a1b2c3d4e5f6",
    "dataset": "churn",
    "params_digest": "3dc879c6691e",
    "started_at": "2026-11-30 10:00:00 UTC",
    "status": "failed",
    "pid": 4242,
    "finished_at": "2026-11-30 10:02:00 UTC"
  },
  "stages": {
    "ingest": {
      "status": "up to date",
      "duration": "10.2 s",
      "params_digest": "3dc879c6691e",
      "finished_at": "2026-11-29 09:00:00 UTC",
      "report": "01_ingest.html",
      "error": null,
      "reason": "nothing it depends on changed",
      "inputs": {
        "notebook": "aa",
        "params": "bb",
        "lib": "cc",
        "upstream": "dd",
        "inputs": "ee"
      },
      "outputs": "ff",
      "run": "0f0f0f0f0f0f",
      "mlflow_runs": []
    },
    "train": {
      "status": "failed",
      "duration": "3.1 s",
      "params_digest": "3dc879c6691e",
      "finished_at": "2026-11-30 10:01:00 UTC",
      "report": "02_train.failed.html",
      "error": "02_train.ipynb failed in cell 5 (In [4] in the report): ValueError: bad",
      "reason": "its parameters changed",
      "inputs": null,
      "outputs": null,
      "run": "a1b2c3d4e5f6"
    },
    "evaluate": {
      "status": "skipped",
      "duration": null,
      "params_digest": "3dc879c6691e",
      "finished_at": "2026-11-30 10:01:00 UTC",
      "report": null,
      "error": null,
      "reason": "an earlier stage failed",
      "inputs": null,
      "outputs": null,
      "run": "a1b2c3d4e5f6"
    }
  },
  "history": [
    {
      "id": "a1b2c3d4e5f6",
      "started_at": "2026-11-30 10:00:00 UTC",
      "finished_at": "2026-11-30 10:02:00 UTC",
      "status": "failed",
      "note": null,
      "params_digest": "3dc879c6691e",
      "stages": [
        {
          "stage": "train",
          "status": "failed",
          "duration": "3.1 s",
          "reason": "its parameters changed",
          "report": "runs/a1b2c3d4e5f6/02_train.failed.html",
          "error": "02_train.ipynb failed in cell 5 (In [4] in the report): ValueError: bad",
          "mlflow_runs": [
            {"run_id": "r1", "label": "quire-churn v1", "url": "http://127.0.0.1:5000/#/r1"}
          ]
        }
      ]
    }
  ]
}
"""


def test_status_json_in_the_saved_format_is_read_and_written_back_unchanged(tmp_path):
    path = tmp_path / "status.json"
    path.write_text(SAVED_STATUS)
    status = read_status(path)
    assert status.run.id == "a1b2c3d4e5f6" and status.run.pid == 4242
    assert status.stages["ingest"].inputs == {
        "notebook": "aa", "params": "bb", "lib": "cc", "upstream": "dd", "inputs": "ee"
    }  # fmt: skip
    assert status.stages["train"].error.startswith("02_train.ipynb failed in cell 5")
    assert status.stages["evaluate"].duration is None
    assert status.history[0].stages[0].mlflow_runs[0]["run_id"] == "r1"
    out = tmp_path / "again.json"
    write_status(out, status)
    assert json.loads(out.read_text()) == json.loads(SAVED_STATUS)
    assert list(json.loads(out.read_text())["stages"]["train"]) == list(
        json.loads(SAVED_STATUS)["stages"]["train"]
    )  # keys in the same order: a diff of two status files stays readable


def test_status_keeps_keys_it_does_not_know(tmp_path):
    path = tmp_path / "status.json"
    path.write_text('{"run": {"id": "x", "host": "h"}, "stages": {}, "extra": [1]}')
    write_status(path, read_status(path))
    assert json.loads(path.read_text()) == {
        "run": {"id": "x", "host": "h"},
        "stages": {},
        "extra": [1],
    }


def test_no_status_yet_reads_as_empty_and_writes_run_and_stages(tmp_path):
    status = read_status(tmp_path / "status.json")
    assert status == empty_status()
    write_status(tmp_path / "status.json", status)
    assert json.loads((tmp_path / "status.json").read_text()) == {"run": {}, "stages": {}}


def test_close_run_archives_the_runs_reports_and_keeps_the_newest(tmp_path):
    (tmp_path / "01_ingest.html").write_text("report")
    status = Status.model_validate(json.loads(SAVED_STATUS))
    status = status.model_copy(
        update={
            "stages": {
                **status.stages,
                "ingest": StageRecord(status="ok", report="01_ingest.html", run="a1b2c3d4e5f6"),
            }
        }
    )
    closed = history.close_run(tmp_path, status, keep=1)
    (entry,) = closed.history
    assert [s.stage for s in entry.stages] == ["ingest", "train", "evaluate"]
    assert entry.stages[0] == HistoryStage(
        stage="ingest",
        status="ok",
        duration=None,
        reason=None,
        report="runs/a1b2c3d4e5f6/01_ingest.html",
        error=None,
        mlflow_runs=[],
    )
    assert (tmp_path / "runs" / "a1b2c3d4e5f6" / "01_ingest.html").read_text() == "report"
    assert status.history[0].stages[0].stage == "train"  # the argument is left as it was

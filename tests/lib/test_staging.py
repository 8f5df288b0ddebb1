"""Staging areas: clones, redirected paths, the journal's roll-forward, registry changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lib.core import staging_area, tracking
from lib.core.contracts.journal import read_journal
from lib.core.contracts.status import StageRecord
from lib.run import staging


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    data, reports = tmp_path / "data", tmp_path / "reports"
    (data / "monitoring" / "m" / "latest").mkdir(parents=True)
    (data / "monitoring" / "m" / "latest" / "summary.json").write_text('{"run_id": "old"}')
    (data / "monitoring" / "m" / "history.parquet").write_bytes(b"old history")
    reports.mkdir()
    (reports / "04_monitor.html").write_text("old report")
    (reports / "04_monitor.failed.html").write_text("old failure")
    return data, reports


def _outputs(data: Path, reports: Path) -> list[Path]:
    return [
        data / "monitoring" / "m",
        reports / "04_monitor.html",
        reports / "04_monitor.failed.html",
        reports / "04_monitor_evidently.html",  # absent before the run
    ]


@pytest.fixture
def area(project, monkeypatch) -> staging_area.Staging:
    data, reports = project
    made = staging_area.Staging.begin("monitor", _outputs(data, reports), data, reports)
    monkeypatch.setenv(staging_area.ENV, str(made.root))
    staging_area._active.cache_clear()
    yield made
    staging_area._active.cache_clear()


def test_begin_clones_outputs_with_hard_links(project, area):
    data, reports = project
    final = data / "monitoring" / "m" / "history.parquet"
    staged = area.staged(data / "monitoring" / "m") / "history.parquet"
    assert staged.read_bytes() == b"old history"
    assert os.stat(staged).st_ino == os.stat(final).st_ino  # a link, not a copy
    assert area.staged(reports / "04_monitor.html").read_text() == "old report"
    assert not area.staged(reports / "04_monitor_evidently.html").exists()
    assert area.root.is_relative_to(data / staging_area.AREA)
    assert area.staged(reports / "04_monitor.html").is_relative_to(reports / staging_area.AREA)


def test_location_maps_outputs_only_and_published_maps_back(project, area):
    data, _ = project
    latest = data / "monitoring" / "m" / "latest"
    inside = staging_area.location(latest)
    assert inside == area.staged(data / "monitoring" / "m") / "latest"
    assert staging_area.published(inside) == latest
    other = data / "processed" / "churn"  # another stage's output: read in place
    assert staging_area.location(other) == other
    assert staging_area.published(other) == other


def test_location_is_identity_outside_a_staged_run(project, monkeypatch):
    monkeypatch.delenv(staging_area.ENV, raising=False)
    data, _ = project
    assert staging_area.location(data / "monitoring" / "m") == data / "monitoring" / "m"
    assert staging_area.record_registry("alias", "m", "champion", "3") is False


def _write_new_set(data: Path, reports: Path, area: staging_area.Staging) -> None:
    from lib.core.atomic import write_text

    latest = staging_area.location(data / "monitoring" / "m" / "latest")
    write_text(latest / "summary.json", '{"run_id": "new"}')
    write_text(staging_area.location(data / "monitoring" / "m" / "history.parquet"), "new history")
    write_text(staging_area.location(reports / "04_monitor_evidently.html"), "new evidently")
    write_text(area.staged(reports / "04_monitor.html"), "new report")
    area.staged(reports / "04_monitor.failed.html").unlink()


def test_writes_in_the_area_leave_the_published_set_untouched(project, area):
    data, reports = project
    _write_new_set(data, reports, area)
    assert (data / "monitoring" / "m" / "history.parquet").read_bytes() == b"old history"
    assert json.loads((data / "monitoring" / "m" / "latest" / "summary.json").read_text()) == {
        "run_id": "old"
    }
    assert (reports / "04_monitor.html").read_text() == "old report"
    assert not (reports / "04_monitor_evidently.html").exists()


def test_commit_and_apply_publish_the_whole_set(project, area):
    data, reports = project
    _write_new_set(data, reports, area)
    journal = staging.commit(area, data, StageRecord(status="ok"))
    assert staging.pending_journal(data) == journal
    staging.apply(journal)
    assert (data / "monitoring" / "m" / "history.parquet").read_text() == "new history"
    assert "new" in (data / "monitoring" / "m" / "latest" / "summary.json").read_text()
    assert (reports / "04_monitor.html").read_text() == "new report"
    assert (reports / "04_monitor_evidently.html").read_text() == "new evidently"
    assert not (reports / "04_monitor.failed.html").exists()  # absent from the new set
    staging.apply(journal)  # a crash after it: the roll-forward does nothing more
    assert (reports / "04_monitor.html").read_text() == "new report"
    staging.finish(journal, data)
    assert staging.pending_journal(data) is None
    assert not any(Path(r).exists() for r in area.roots)


def test_roll_forward_after_a_crash_between_the_renames(project, area):
    data, reports = project
    _write_new_set(data, reports, area)
    journal = staging.commit(area, data, StageRecord(status="ok"))
    pending = staging.pending_journal(data)
    assert pending is not None
    folder = data / "monitoring" / "m"
    os.rename(folder, folder.with_name(".m.replaced"))  # the crash: old set aside, new not in
    staging.apply(pending)
    assert (folder / "history.parquet").read_text() == "new history"
    assert not folder.with_name(".m.replaced").exists()
    staging.finish(journal, data)


def test_discard_all_removes_uncommitted_areas(project, area):
    data, reports = project
    _write_new_set(data, reports, area)
    assert staging.discard_all(data, reports) == ["monitor"]
    assert not list((data / staging_area.AREA).glob("*-*"))
    assert not list((reports / staging_area.AREA).glob("*-*"))
    assert (reports / "04_monitor.html").read_text() == "old report"


def test_registry_changes_are_recorded_and_read_back(area):
    tracking.set_alias("quire-x", tracking.CHAMPION, "7")  # no MLflow call: recorded only
    tracking.set_version_tag("quire-x", "7", "quire.reference_dir", "/r/v7")
    assert staging_area.staged_alias("quire-x", tracking.CHAMPION) == "7"
    assert staging_area.staged_alias("quire-y", tracking.CHAMPION) is None
    assert area.registry_changes() == {
        "aliases": {"champion": ["quire-x", "7"]},
        "tags": [["quire-x", "7", "quire.reference_dir", "/r/v7"]],
    }


def test_a_journal_in_the_saved_format_rolls_forward(project, area):
    """A journal written before the typed contract (same JSON) is read and applied."""
    data, reports = project
    _write_new_set(data, reports, area)
    moves = [[staged, final, Path(staged).exists()] for final, staged in area.outputs.items()]
    record = {"status": "ok", "duration": "1.0 s", "params_digest": "d1", "finished_at": "t",
              "report": "04_monitor.html", "error": None, "reason": "forced (--force)",
              "inputs": {"notebook": "n"}, "outputs": None, "run": "r1"}  # fmt: skip
    saved = {"stage": "monitor", "moves": moves, "registry": {"aliases": {}, "tags": []},
             "roots": list(area.roots), "record": record}  # fmt: skip
    path = data / staging_area.AREA / staging_area.JOURNAL
    path.write_text(json.dumps(saved, indent=1))
    journal = staging.pending_journal(data)
    assert journal is not None and journal == read_journal(path)
    assert journal.stage == "monitor" and journal.record.reason == "forced (--force)"
    assert journal.record.inputs == {"notebook": "n"}
    assert json.loads(journal.model_dump_json(exclude_unset=True)) == saved  # same format
    staging.apply(journal)
    assert (reports / "04_monitor.html").read_text() == "new report"
    assert not (reports / "04_monitor.failed.html").exists()
    staging.finish(journal, data)
    assert staging.pending_journal(data) is None

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.core.contracts.status import StageRecord
from lib.core.errors import ParamsError, StageFailure
from lib.core.params import load_params
from lib.run import fingerprint, plan
from lib.run.stages import STAGES, Followup, Stage, get_stage, output_paths, select_stages
from tests.conftest import dirs_overrides, tiny_training_overrides

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"


def test_all_by_default_in_order():
    assert select_stages() == list(STAGES)


def test_only_and_from_accept_names_and_stems():
    assert [s.name for s in select_stages(only=["01_ingest"])] == ["ingest"]
    assert [s.name for s in select_stages(start="ingest")] == [s.name for s in STAGES]


def test_unknown_stage_lists_the_known_ones():
    with pytest.raises(ParamsError, match="unknown stage 'trian'; the stages are: ingest"):
        get_stage("trian")


def test_only_and_from_together_is_an_error():
    with pytest.raises(ParamsError, match="--only or --from, not both"):
        select_stages(only=["ingest"], start="ingest")


def test_outside_inputs_follow_the_raw_files(tmp_path):
    raw = tmp_path / "raw.csv"
    raw.write_text("a,label\n1,0\n2,1\n")
    params = load_params(
        overrides=[f"data.source={raw}", "data.target=label", *dirs_overrides(tmp_path)]
    )
    ingest = get_stage("ingest")
    before = fingerprint.outside_inputs(ingest, params)
    assert fingerprint.outside_inputs(ingest, params) == before
    raw.write_text("a,label\n1,0\n3,1\n")
    assert fingerprint.outside_inputs(ingest, params) != before
    raw.unlink()
    missing = fingerprint.outside_inputs(ingest, params)
    assert missing.startswith("unreadable") and missing != fingerprint.outside_inputs(
        ingest, params
    )
    assert fingerprint.outside_inputs(get_stage("train"), params) == ""


def test_ingest_digest_follows_what_ingest_wrote(tmp_path):
    from lib.data.ingest import run_ingest

    params = load_params(overrides=tiny_training_overrides(tmp_path))
    ingest = get_stage("ingest")
    assert fingerprint.outputs_digest(ingest, params) is None  # nothing ingested yet
    run_ingest(params)
    digest = fingerprint.outputs_digest(ingest, params)
    assert digest is not None and digest == fingerprint.outputs_digest(ingest, params)
    processed = tmp_path / "data" / "processed" / "churn"
    assert output_paths(ingest, params)[0] == processed
    (processed / "test.parquet").write_bytes(b"damaged")
    assert fingerprint.outputs_digest(ingest, params) is None


def test_outputs_are_layout_paths_and_the_report_files(tmp_path):
    params = load_params(overrides=dirs_overrides(tmp_path))
    data, reports = tmp_path / "data", tmp_path / "reports"
    assert output_paths(get_stage("monitor"), params) == [
        data / "monitoring" / "quire-churn",
        reports / "04_monitor_evidently.html",
        *(reports / f"04_monitor{s}" for s in (".html", ".ipynb", ".failed.html", ".failed.ipynb")),
    ]
    assert output_paths(get_stage("evaluate"), params)[0] == data / "reference" / "quire-churn"
    assert [p.name for p in output_paths(get_stage("train"), params)] == [
        "02_train.html", "02_train.ipynb", "02_train.failed.html", "02_train.failed.ipynb"
    ]  # fmt: skip


def _alerted(tmp_path, *extra):
    params = load_params(overrides=[*dirs_overrides(tmp_path), *extra])
    summary = tmp_path / "data" / "monitoring" / "quire-churn" / "latest" / "summary.json"
    summary.parent.mkdir(parents=True)
    saved = json.loads((FIXTURES / "monitoring_summary.json").read_text())
    alerts = [
        {
            "rule": "key_feature",
            "severity": "critical",
            "message": "key features drifted: tenure",
            "details": {},
        }
    ]
    summary.write_text(json.dumps(saved | {"alerts": alerts}))
    return params


def test_monitor_reports_its_alerts_after_it_ran(tmp_path):
    params = _alerted(tmp_path)
    followup = get_stage("monitor").after_run(params)
    assert followup == Followup(alerts=("key_feature: key features drifted: tenure",))
    assert get_stage("ingest").after_run is None


def test_retrain_on_alert_reruns_ingest_to_evaluate_only_when_labels_came_back(tmp_path):
    params = _alerted(tmp_path, "monitor.retrain_on_alert=true")
    hook = get_stage("monitor").after_run
    assert hook(params).rerun == ()  # no labels yet: nothing to learn from
    labels = tmp_path / "data" / "feedback" / "quire-churn"
    labels.mkdir(parents=True)
    (labels / "ids.csv").write_text("request_id,row,churned\nabc,0,1\n")
    followup = hook(params)
    assert followup.rerun == ("ingest", "train", "evaluate") and followup.force == ("ingest",)
    assert followup.alerts == ("key_feature: key features drifted: tenure",)
    off = _alerted(tmp_path / "off", "monitor.retrain_on_alert=true", "ingest.feedback=false")
    assert hook(off).rerun == ()


PARTS = {"notebook": "n", "params": "p", "lib": "l", "upstream": "u", "inputs": "i"}


def test_plan_says_why_a_stage_runs():
    ok = StageRecord(status="ok", inputs=PARTS, outputs="o")
    assert plan.why(None, PARTS, "o") == "it has not run before"
    assert plan.why(StageRecord(status="failed"), PARTS, "o") == "its last run failed"
    assert plan.why(StageRecord(status="ok"), PARTS, "o") == "no fingerprint recorded yet"
    assert plan.why(ok, PARTS, "o") is None
    assert plan.why(ok.model_copy(update={"status": "up to date"}), PARTS, "o") is None
    changed = {**PARTS, "params": "p2", "inputs": "i2"}
    assert plan.why(ok, changed, "o") == "its parameters changed; its input data changed"
    assert plan.why(ok, PARTS, None) == "its outputs are missing or were changed"
    assert plan.why(ok, PARTS, "other") == "its outputs are missing or were changed"


def test_span_walks_earlier_stages_and_force_names_stages():
    only_monitor = [get_stage("monitor")]
    assert [s.name for s in plan.span(only_monitor)] == ["ingest", "train", "evaluate", "monitor"]
    custom = [Stage("x", "x.ipynb", ("project",))]
    assert plan.span(custom) == custom
    assert plan.forced_names(only_monitor, True) == {"monitor"}
    assert plan.forced_names(only_monitor, ["ingest"]) == {"ingest"}
    assert plan.forced_names(only_monitor, False) == set()


def test_stage_failures_render_the_one_line_run_all_prints():
    raised = StageFailure("01_ingest.ipynb", 5, "DataValidationError", "data.source: gone",
                          report_cell=4)  # fmt: skip
    assert raised.line == (
        "01_ingest.ipynb failed in cell 5 (In [4] in the report): DataValidationError: "
        "data.source: gone"
    )
    stopped = StageFailure("slow.ipynb", 3, None, "the cell ran too long", "make it faster")
    assert str(stopped) == "slow.ipynb failed in cell 3: the cell ran too long; make it faster"
    unknown = StageFailure("x.ipynb", None, "OSError", "disk full")
    assert unknown.line == "x.ipynb failed: OSError: disk full"

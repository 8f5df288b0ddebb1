"""The monitor stage end to end on a tiny trained model: production batch, prediction log, labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.core.contracts import predlog
from lib.core.contracts.summary import MonitorSummary, read_summary, write_summary
from lib.core.errors import DataValidationError, ParamsError
from lib.core.params import Params, load_params
from lib.data.ingest import load_manifest
from lib.monitoring import inputs, monitor
from lib.monitoring.evidently_report import save_evidently_report
from lib.monitoring.monitor_results import append_history, load_latest
from tests.conftest import monitor_overrides
from tests.lib.test_alerts import Receiver


@pytest.fixture(scope="module")
def root(monitored_root: Path) -> Path:
    return monitored_root


SUMMARY_FIXTURE = Path(__file__).parents[1] / "fixtures" / "contracts" / "monitoring_summary.json"


def params_for(root: Path, *extra: str) -> Params:
    return load_params(overrides=monitor_overrides(root, *extra))


def test_production_batch_drift_is_found_and_alerted(root):
    with Receiver([200]) as hook:
        result = monitor.run_monitor(params_for(root), webhook_url=hook.url)
    drifted = {c.column for c in result.features.columns if c.drifted}
    # the generator shifts these two by 0.5 sd and adds a payment method unseen in training
    assert {"monthly_charges", "avg_session_minutes", "payment_method"} <= drifted
    assert "signup_date" not in {c.column for c in result.features.columns}  # dates left out
    assert len(result.current.frame) == 1500 and result.current.y is not None
    rules = {a.rule for a in result.alerting.alerts}
    assert "key_feature" in rules
    assert hook.bodies and hook.bodies[0]["run_id"] == result.run_id
    assert result.alerting.delivery is not None and result.alerting.delivery.delivered
    assert result.quality.current_metrics is not None and result.quality.windows is not None
    # every window of the batch is shifted and the estimate follows realized quality: the
    # diagnosis is covariate shift, never concept drift (Page-Hinkley alone used to say so)
    concept = result.quality.concept
    assert concept.kind == "covariate shift" and not concept.drift
    assert concept.windows == [str(k) for k in result.windows.diagnosis.windows["window"]]
    assert "concept_drift" not in rules and "window_drift" in rules
    assert result.reference.warnings == []  # 300 rows per window on both sides
    monitor.check_gate(result)


def test_weekly_windows_on_a_reference_spread_over_years_are_warned_about(root):
    """The test split's signup dates span 2018-2024: a week of it holds one or two rows."""
    result = monitor.run_monitor(params_for(root, "monitor.window=1W"), webhook_url="")
    small = [w for w in result.reference.warnings if "monitor.window '1W'" in w]
    assert len(small) == 1 and "bands learned from windows this small" in small[0]
    assert "at least 30 rows" in result.reference_note()  # the report shows it


def test_results_are_saved_for_the_dashboard_and_history_grows(root):
    params = params_for(root)
    first = monitor.run_monitor(params, webhook_url="")
    second = monitor.run_monitor(params, webhook_url="")
    saved = load_latest(second.out_dir)
    assert saved["summary"].run_id == second.run_id
    lineage = saved["summary"].lineage  # the dashboard shows where the version came from
    assert lineage is not None and lineage["version"] == str(second.version) and lineage["run_id"]
    assert lineage["data_manifest"]["dataset"] == "churn" and lineage["params_digest"]
    assert saved["summary"].drifted == [c.column for c in second.features.columns if c.drifted]
    # summary.json keeps the keys, and their order, of the files earlier versions wrote
    written = json.loads((second.out_dir / "latest" / "summary.json").read_text())
    assert list(written) == list(json.loads(SUMMARY_FIXTURE.read_text()))
    assert written["concept"]["checked"] is True and "alarm_row" in written["concept"]
    assert set(saved["distributions"]) >= {"monthly_charges", "prediction", "proba_1"}
    # the per-window tables, both sides, as the shared schema names them
    drift, perf = saved["window_drift"], saved["window_performance"]
    assert set(drift["period"]) == {"reference", "current"}
    assert {"monthly_charges", "prediction", "proba_1"} <= set(drift["column"])
    assert list(drift.columns) == [
        "period", "window", "start", "end", "rows", "column", "method", "statistic", "lower",
        "upper", "alert",
    ]  # fmt: skip
    assert drift["alert"].dtype == bool and perf["alert_realized"].dtype == bool
    assert {"roc_auc"} <= set(perf["metric"]) and perf["realized"].notna().any()
    assert saved["multivariate"]["method"].eq("pca_reconstruction").all()
    assert {"missing_rate", "unseen", "reason"} <= set(saved["window_quality"].columns)
    assert written["concept"]["kind"] == second.quality.concept.kind
    history = saved["history"]
    assert {first.run_id, second.run_id} <= set(history["run_id"])
    per_run = history.groupby("run_id")["column"].count()
    assert (per_run == len(second.features.columns)).all()
    alerts = [json.loads(x) for x in (second.out_dir / "alerts.jsonl").read_text().splitlines()]
    assert {a["run_id"] for a in alerts} >= {first.run_id, second.run_id}


def test_history_keeps_only_the_latest_runs(tmp_path):
    rows = pd.DataFrame({"run_id": ["a"], "column": ["x"]})
    for run in "abcd":
        append_history(tmp_path / "h.parquet", rows.assign(run_id=run), keep_runs=2)
    assert pd.read_parquet(tmp_path / "h.parquet")["run_id"].tolist() == ["c", "d"]


def test_a_window_of_rows_from_a_file_with_no_drift(root):
    """The processed test split itself, as current data: nothing should drift."""
    test_split = root / "data" / "processed" / "churn" / "test.parquet"
    params = params_for(root, f"monitor.current={test_split}", "monitor.window_rows=100")
    result = monitor.run_monitor(params, webhook_url="")
    assert len(result.current.frame) == 100
    assert not result.features.dataset_drift
    assert result.features.drifted_share <= 0.1


def write_log(root: Path, params: Params) -> pd.DataFrame:
    """Serve the production batch through the server's own code paths into a prediction log.

    Once per project (modules share it): the labels by request and row are returned either way.
    """
    from lib.serving.loading import load_model
    from server.predlog import PredictionLog

    model = load_model(params)
    batch_path = Path(load_manifest(params).production_batch)
    frame = inputs.conform(pd.read_parquet(batch_path), model.schema, batch_path)
    folder = root / "data" / "predictions" / model.name
    if predlog.log_files(folder):
        logged = predlog.read_log(folder, by_time=True)
        return logged[["request_id", "row"]].assign(churned=frame["churned"].to_numpy())
    log = PredictionLog(folder, flush_rows=400)
    log.start()
    stamps = pd.date_range("2026-11-01", periods=3, freq="D")
    for i, part in enumerate(np.array_split(frame, 3)):
        labels, proba = model.predict(part[model.schema.names()])
        features = {n: part[n].to_numpy() for n in model.schema.names()}
        log.append(
            predlog.log_columns(
                features,
                request_id=f"req{i}",
                model_version=model.version,
                prediction=labels,
                proba=proba,
                classes=model.schema.classes,
                now=stamps[i],
            )
        )
    log.close()
    parts = np.array_split(frame, 3)
    return pd.concat(
        [
            pd.DataFrame(
                {"request_id": f"req{i}", "row": np.arange(len(p)), "churned": p["churned"]}
            )
            for i, p in enumerate(parts)
        ],
        ignore_index=True,
    )


def test_prediction_log_window_with_labels_joined_by_request(root, tmp_path):
    params = params_for(root)
    labels = write_log(root, params)
    labels.sample(frac=1.0, random_state=0).to_csv(tmp_path / "labels.csv", index=False)
    params = params_for(
        root,
        "monitor.current=log",
        "monitor.since=2026-11-02",
        f"monitor.labels={tmp_path / 'labels.csv'}",
    )
    result = monitor.run_monitor(params, webhook_url="")
    assert len(result.current.frame) == 1000  # two of the three days
    assert result.current.versions == [result.version]
    assert result.current.y is not None and pd.notna(result.current.y).all()
    expected = labels[labels["request_id"] != "req0"]["churned"].to_numpy()
    assert np.array_equal(result.current.y.astype(int), expected)
    assert "monthly_charges" in {c.column for c in result.features.columns if c.drifted}


def test_empty_log_window_says_how_to_fix_it(root):
    params = params_for(root, "monitor.current=log", "monitor.since=2030-01-01")
    if not (root / "data" / "predictions").exists():
        write_log(root, params_for(root))
    with pytest.raises(DataValidationError, match=r"no logged predictions between monitor.since"):
        monitor.run_monitor(params, webhook_url="")


def test_bad_parameters_name_the_key(root, tmp_path):
    with pytest.raises(ParamsError, match=r"monitor.alerts.key_features: \['nope'\]"):
        monitor.run_monitor(params_for(root, "monitor.alerts.key_features=[nope]"), webhook_url="")
    with pytest.raises(ParamsError, match=r"monitor.columns/exclude: \['ghost'\]"):
        monitor.run_monitor(params_for(root, "monitor.exclude=[ghost]"), webhook_url="")
    bad = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["x"], "label": [1]}).to_csv(bad, index=False)
    with pytest.raises(DataValidationError, match=r"labels.csv: label join columns"):
        monitor.run_monitor(
            params_for(root, f"monitor.labels={bad}", "monitor.label_key=[customer_id]"),
            webhook_url="",
        )


def test_unknown_class_in_labels_names_row_and_column(tmp_path):
    from lib.data.schema import ColumnSchema, Schema

    schema = Schema(
        features=[ColumnSchema(name="x", kind="numeric")], target="y", task="binary", classes=[0, 1]
    )
    with pytest.raises(DataValidationError, match=r"f.csv: target 'y' row 3: '7' is not one of"):
        inputs.align_target(pd.Series([0, 1, 7]), schema, Path("f.csv"))


def test_evidently_report_is_saved_as_html(root):
    params = params_for(root)
    result = monitor.run_monitor(params, webhook_url="")
    outcome = save_evidently_report(result, params)
    path = outcome.value
    assert outcome.ok and path is not None and path.name == "04_monitor_evidently.html"
    text = path.read_text()
    assert "<html" in text.lower() and len(text) > 50_000


def test_prediction_log_without_labels_checks_drift_only(root):
    if not (root / "data" / "predictions").exists():
        write_log(root, params_for(root))
    result = monitor.run_monitor(params_for(root, "monitor.current=log"), webhook_url="")
    assert result.current.y is None and result.quality.current_metrics is None
    concept = result.quality.concept  # no labels: concept drift unchecked, the kind still known
    assert (concept.checked, concept.drift) == (False, False)
    assert concept.reason.startswith("no labels for the current rows")
    assert concept.kind == "covariate shift" and "monthly_charges" in (concept.features or [])
    written = json.loads((result.out_dir / "latest" / "summary.json").read_text())
    assert written["concept"]["checked"] is False and written["concept"]["kind"] == concept.kind
    assert written["current"]["labelled"] == 0
    perf = result.windows.performance  # estimated without labels, nothing realized
    current = perf[perf["period"] == "current"]
    assert current["estimated"].notna().any() and current["realized"].isna().all()
    assert written["current"]["model_versions"] == [str(result.version)]
    assert "prediction" in {c.column for c in result.outputs.columns}
    monitor.check_gate(result)


# --- the persisted contracts: summary.json and the prediction log -------------------------------


def test_a_summary_from_the_previous_version_reads_and_writes_back_byte_for_byte(tmp_path):
    summary = read_summary(SUMMARY_FIXTURE)
    assert summary.run_id == "f2c7ea44c050" and summary.version == "1"
    assert summary.current.rows == 1500 and summary.current.labelled == 1500
    assert summary.reference.rows == 120 and summary.drift_share_threshold == 0.5
    assert summary.concept.checked and summary.concept.reference_error == pytest.approx(
        0.38333, 1e-4
    )
    assert [a.rule for a in summary.alerts] == ["key_feature", "drift_share"]
    assert summary.webhook is not None and summary.webhook.attempts == 0
    assert summary.current_metrics is not None
    assert summary.current_metrics["roc_auc"]["value"] == pytest.approx(0.746286, 1e-5)
    assert summary.lineage is not None and summary.lineage["data_manifest"]["rows"] == 600
    write_summary(tmp_path / "summary.json", summary)
    assert (tmp_path / "summary.json").read_bytes() == SUMMARY_FIXTURE.read_bytes()


def test_a_summary_keeps_absent_and_unknown_keys_and_nan_as_it_found_them(tmp_path):
    raw = json.loads(SUMMARY_FIXTURE.read_text())
    del raw["lineage"], raw["webhook"]  # as written before lineage and webhooks existed
    raw["current_metrics"]["roc_auc"]["ci_low"] = float("nan")
    raw["added_later"] = {"x": 1}
    text = json.dumps(raw, indent=1, allow_nan=True) + "\n"
    (tmp_path / "old.json").write_text(text)
    summary = read_summary(tmp_path / "old.json")
    assert summary.lineage is None and summary.webhook is None
    assert summary.current_metrics is not None
    assert np.isnan(summary.current_metrics["roc_auc"]["ci_low"])
    write_summary(tmp_path / "new.json", summary)
    assert (tmp_path / "new.json").read_text() == text


def test_an_unreadable_summary_names_the_file_the_field_and_the_fix(tmp_path):
    with pytest.raises(DataValidationError, match=r"no monitoring results yet; run the monitor"):
        read_summary(tmp_path / "summary.json")
    raw = json.loads(SUMMARY_FIXTURE.read_text())
    del raw["verdict"]
    raw["current"]["rows"] = "many"
    (tmp_path / "summary.json").write_text(json.dumps(raw))
    with pytest.raises(DataValidationError, match=r"summary.json: .*current.rows, verdict\); run"):
        read_summary(tmp_path / "summary.json")
    (tmp_path / "summary.json").write_text('{"run_id": "a", ')  # cut short
    with pytest.raises(DataValidationError, match=r"summary.json: not JSON"):
        read_summary(tmp_path / "summary.json")
    assert isinstance(read_summary(SUMMARY_FIXTURE), MonitorSummary)


def test_the_prediction_log_reader_filters_by_time_and_request_and_orders_rows(tmp_path):
    from server.predlog import PredictionLog

    assert predlog.read_log(tmp_path).empty  # nothing served yet
    log = PredictionLog(tmp_path, flush_rows=2)
    log.start()
    served = [("late", "2026-11-03T10:00"), ("early", "2026-11-01T10:00"), ("mid", "2026-11-02")]
    for request_id, when in served:
        log.append(
            predlog.log_columns(
                {"tenure": np.array([1.0, 2.0, 3.0])},
                request_id=request_id,
                model_version="3",
                prediction=np.array([0, 1, 1]),
                proba=np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]),
                classes=[0, 1],
                now=pd.Timestamp(when),
            )
        )
    log.close()
    as_written = predlog.read_log(tmp_path)  # files of 2 rows, in name (write time) order
    assert as_written["request_id"].tolist() == ["late"] * 3 + ["early"] * 3 + ["mid"] * 3
    frame = predlog.read_log(tmp_path, by_time=True)
    assert list(frame.columns[:1]) == ["tenure"]
    assert {*predlog.LOG_COLUMNS, "proba_0", "proba_1"} <= set(frame.columns)
    assert frame["request_id"].tolist() == ["early"] * 3 + ["mid"] * 3 + ["late"] * 3
    assert frame["row"].tolist() == [0, 1, 2] * 3 and str(frame["time"].dt.tz) == "UTC"
    window = predlog.read_log(tmp_path, since="2026-11-02", until="2026-11-03T10:00")
    assert set(window["request_id"]) == {"mid"}
    one = predlog.read_log(tmp_path, request_id="late")
    assert one["proba_1"].tolist() == [0.1, 0.8, 0.6] and set(one["model_version"]) == {"3"}
    assert [c for c in frame.columns if not predlog.is_log_column(c)] == ["tenure"]


def test_labels_match_float_coded_classes():
    """A 0/1 target read as floats (classes 0.0, 1.0) matches labels written 0/1, 1.0 or "1"."""
    from lib.data.schema import Schema
    from lib.monitoring.inputs import align_target

    schema = Schema(target="vote", task="binary", classes=[0.0, 1.0], features=[])
    got = align_target(pd.Series([1, 0, 1.0, "1", None], dtype=object), schema, Path("v.csv"))
    assert got.iloc[:4].tolist() == [1.0, 0.0, 1.0, 1.0] and pd.isna(got.iloc[4])
    with pytest.raises(DataValidationError) as info:
        align_target(pd.Series(["2"]), schema, Path("v.csv"))
    assert "v.csv: target 'vote' row 1: '2' is not one of the model's classes" in str(info.value)


def test_no_checkable_column_skips_evidentlys_report(tmp_path):
    """A table whose only feature is its date leaves no drift column: Evidently's preset would
    divide by zero, so its report is skipped (and the stage goes on)."""
    from types import SimpleNamespace

    params = load_params(overrides=monitor_overrides(tmp_path))
    result = SimpleNamespace(features=SimpleNamespace(columns=[]))
    assert save_evidently_report(result, params).value is None  # type: ignore[arg-type]
    assert not (tmp_path / "reports").exists()


def test_the_log_sorted_by_time_is_pandas_stable_sort_ties_and_gaps_included(tmp_path):
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "time": pd.to_datetime("2026-11-01", utc=True)
            + pd.to_timedelta(rng.integers(0, 5, n), unit="h"),  # many tied times
            "request_id": rng.choice(["b", "a", "c", None], n),  # ties and missing ids
            "row": rng.integers(0, 3, n),
        }
    )
    frame.iloc[:200].to_parquet(tmp_path / "part-0001.parquet")
    frame.iloc[200:].to_parquet(tmp_path / "part-0002.parquet")
    want = frame.sort_values(["time", "request_id", "row"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(predlog.read_log(tmp_path, by_time=True), want)
    want.to_parquet(tmp_path / "part-0001.parquet")  # already in order: read as it is
    (tmp_path / "part-0002.parquet").unlink()
    pd.testing.assert_frame_equal(predlog.read_log(tmp_path, by_time=True), want)

"""Issue #18 done-when: per-window monitoring finds where and why a model's inputs or concept moved.

A scikit-learn model is trained on hand-made data whose truth follows a known P(y|x); the
reference (its scored rows) and the current rows are written to Parquet and read back, then go
through the monitor's findings layer (windows, every per-window check, the diagnosis, the
concept verdict and the alert rules) as the monitor stage runs it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lib.core.param_sections import AlertParams, MonitorParams
from lib.data.drift_profile import build_profile
from lib.data.schema import ColumnSchema, Schema
from lib.model.reference import profile_kinds
from lib.monitoring.alerts import Facts, evaluate_rules, window_facts
from lib.monitoring.diagnosis import CONCEPT, COVARIATE
from lib.monitoring.findings import WindowFindings, find_quality, find_windows
from lib.monitoring.inputs import Current, Reference, drift_kinds

NUMERIC = ["x1", "x2", "x3"]
FEATURES = [*NUMERIC, "plan"]
WINDOW_ROWS = 500
REFERENCE_ROWS = 6000
CURRENT_WINDOWS = 5
SCHEMA = Schema(
    target="y",
    task="binary",
    classes=[0, 1],
    features=[ColumnSchema(name=n, kind="numeric") for n in NUMERIC]
    + [ColumnSchema(name="plan", kind="categorical")],
)
PARAMS = MonitorParams(
    window=f"{WINDOW_ROWS} rows",
    bootstrap=50,
    alerts=AlertParams(key_features=[], metric_drop={}),
)


def features(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            # bounded: a value outside the reference's range (a data-quality alert) is then
            # possible only where a shift put it
            "x1": rng.uniform(-2, 2, n).round(2),
            "x2": rng.uniform(-2, 2, n).round(2),
            "x3": rng.uniform(0, 10, n).round(1),
            "plan": rng.choice(["basic", "pro", "max"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def truth(x: pd.DataFrame, rng: np.random.Generator, x1_weight: float = 2.0) -> np.ndarray:
    """P(y=1|x): a logistic function of x1, x2 and the plan (x3 carries no signal)."""
    logit = x1_weight * x["x1"] - 1.0 * x["x2"] + 0.8 * (x["plan"] == "pro") - 0.3
    return (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(int)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    x = features(4000, rng)
    pipe = make_pipeline(
        make_column_transformer(
            (StandardScaler(), NUMERIC), (OneHotEncoder(handle_unknown="ignore"), ["plan"])
        ),
        LogisticRegression(),
    )
    return pipe.fit(x, truth(x, rng))


def scored(model, frame: pd.DataFrame) -> pd.DataFrame:
    proba = model.predict_proba(frame[FEATURES])
    return frame.assign(
        prediction=model.classes_[proba.argmax(axis=1)], proba_0=proba[:, 0], proba_1=proba[:, 1]
    )


def sides(model, tmp_path: Path, current: pd.DataFrame) -> tuple[Reference, Current]:
    """Write both sides to Parquet and read them back as the monitor's Reference and Current."""
    rng = np.random.default_rng(1)
    x = features(REFERENCE_ROWS, rng)
    scored(model, x.assign(y=truth(x, rng))).to_parquet(tmp_path / "reference.parquet")
    current.to_parquet(tmp_path / "current.parquet")
    ref_frame = pd.read_parquet(tmp_path / "reference.parquet")
    profile = build_profile(ref_frame, profile_kinds(SCHEMA, ref_frame))
    ref = Reference(frame=ref_frame, profile=profile, source=str(tmp_path / "reference.parquet"))
    cur_frame = pd.read_parquet(tmp_path / "current.parquet")
    out = scored(model, cur_frame)
    cur = Current(
        frame=cur_frame[FEATURES],
        source=str(tmp_path / "current.parquet"),
        pred=out["prediction"].to_numpy(),
        proba=out[["proba_0", "proba_1"]].to_numpy(),
        y=cur_frame["y"].to_numpy().astype(object),
    )
    return ref, cur


def monitor_windows(ref: Reference, cur: Current) -> tuple[WindowFindings, list, object]:
    """Run the per-window findings, the concept verdict and the alert rules, as the stage does."""
    kinds = drift_kinds(SCHEMA, PARAMS)
    found = find_windows(ref, cur, SCHEMA, kinds, PARAMS, seed=0)
    quality = find_quality(ref, cur, SCHEMA, PARAMS, seed=0, diagnosis=found.diagnosis)
    facts = Facts(
        dataset_drift=False,
        drifted_share=0.0,
        drifted=[],
        prediction_drifted=[],
        missing_jumps={},
        metric_drops=[],
        concept_drift=quality.concept.drift,
        concept_reason=quality.concept.reason,
        windows=window_facts(**found.tables(), chance=found.diagnosis.chance),
    )
    return found, evaluate_rules(facts, PARAMS.alerts), quality.concept


def window_names(lo: int, hi: int) -> list[str]:
    """The keys of current windows ``lo``..``hi`` (1-based) of WINDOW_ROWS rows."""
    return [f"rows {(i - 1) * WINDOW_ROWS + 1:,}-{i * WINDOW_ROWS:,}" for i in range(lo, hi + 1)]


def current_rows(rng: np.random.Generator) -> pd.DataFrame:
    return features(WINDOW_ROWS * CURRENT_WINDOWS, rng)


def test_a_shift_in_two_windows_alerts_there_only_names_the_features_and_is_no_concept_drift(
    model, tmp_path
):
    rng = np.random.default_rng(2)
    x = current_rows(rng)
    shifted = np.arange(2 * WINDOW_ROWS, 4 * WINDOW_ROWS)  # windows 3 and 4
    x.loc[shifted, "x1"] += 1.0
    x.loc[shifted, "x3"] += 2.5
    ref, cur = sides(model, tmp_path, x.assign(y=truth(x, rng)))  # P(y|x) unchanged
    found, alerts, concept = monitor_windows(ref, cur)

    drift = found.drift[(found.drift["period"] == "current") & found.drift["alert"]]
    feature_alerts = drift[drift["column"].isin(FEATURES)]
    assert sorted(set(feature_alerts["window"])) == window_names(3, 4)
    for window in window_names(3, 4):  # both shifted features, in both windows
        assert {"x1", "x3"} <= set(feature_alerts.loc[feature_alerts["window"] == window, "column"])
    multi = found.multivariate[found.multivariate["period"] == "current"]
    assert multi.loc[multi["alert"], "window"].tolist() == window_names(3, 4)

    d = found.diagnosis
    assert d.kind == COVARIATE and d.kind_windows == window_names(3, 4)
    assert {f["column"] for f in d.features[:2]} == {"x1", "x3"}
    assert not concept.drift and concept.kind == COVARIATE
    assert "concept" not in concept.reason.lower()
    rules = {a.rule: a for a in alerts}
    assert "concept_drift" not in rules
    assert set(rules["window_drift"].details["windows"]) == set(window_names(3, 4))
    alerted = set()  # every per-window rule that fired names windows 3 and 4 only
    for alert in alerts:
        if "windows" in alert.details:
            alerted |= set(alert.details["windows"])
    assert alerted == set(window_names(3, 4))
    assert "x1" in rules["window_drift"].message and "x3" in rules["window_drift"].message


def test_a_changed_concept_with_unmoved_inputs_is_concept_drift(model, tmp_path):
    rng = np.random.default_rng(3)
    x = current_rows(rng)
    y = truth(x, rng)
    late = np.arange(3 * WINDOW_ROWS, 5 * WINDOW_ROWS)  # windows 4 and 5: x1 now works against y
    y[late] = truth(x.iloc[late], rng, x1_weight=-2.0)
    ref, cur = sides(model, tmp_path, x.assign(y=y))
    found, alerts, concept = monitor_windows(ref, cur)

    perf = found.performance
    auc = perf[(perf["period"] == "current") & (perf["metric"] == "roc_auc")].set_index("window")
    # the estimate holds (inputs did not move) while the realized value falls
    assert not auc["alert_estimated"].any()
    assert auc.loc[window_names(4, 5), "alert_realized"].all()
    assert (
        auc.loc[window_names(4, 5), "realized"] < auc.loc[window_names(4, 5), "estimated_lower"]
    ).all()
    assert not auc.loc[window_names(1, 3), "alert_realized"].any()

    d = found.diagnosis
    assert d.kind == CONCEPT and d.kind_windows == window_names(4, 5)
    assert concept.drift and concept.kind == CONCEPT and concept.windows == window_names(4, 5)
    assert "is below what the estimate explains" in concept.reason
    # the Page-Hinkley alarm stays as supporting evidence, raised after the change began
    assert concept.alarm_row is not None and concept.alarm_row >= 3 * WINDOW_ROWS
    assert "Supporting evidence: the error rate rose (Page-Hinkley" in concept.reason
    drift = found.drift
    where = (drift["period"] == "current") & drift["window"].isin(window_names(4, 5))
    assert not drift.loc[where & drift["column"].isin(FEATURES), "alert"].any()
    assert d.features == []  # no feature moved where performance fell
    assert d.segment is not None and d.segment.column == "x1"  # where x1's sign flip hurts most
    rules = {a.rule: a for a in alerts}
    assert {"concept_drift", "realized_performance"} <= set(rules)
    assert "estimated_performance" not in rules
    assert set(rules["realized_performance"].details["windows"]) == set(window_names(4, 5))


def test_windows_follow_the_first_date_column_by_period_and_a_wrong_time_column_is_named(
    model, tmp_path
):
    from lib.core.errors import ParamsError

    rng = np.random.default_rng(4)
    x = current_rows(rng)
    days = pd.Timestamp("2026-03-02") + pd.to_timedelta(np.arange(len(x)) // 100, unit="D")
    ref, cur = sides(model, tmp_path, x.assign(y=truth(x, rng)))
    schema = SCHEMA.model_copy(
        update={"features": [*SCHEMA.features, ColumnSchema(name="day", kind="datetime")]}
    )
    ref_days = pd.Timestamp("2025-12-01") + pd.to_timedelta(np.arange(REFERENCE_ROWS) // 70, "D")
    ref = Reference(frame=ref.frame.assign(day=ref_days), profile=ref.profile, source=ref.source)
    cur = Current(frame=cur.frame.assign(day=days), source=cur.source, pred=cur.pred,
                  proba=cur.proba, y=cur.y)  # fmt: skip
    weekly = PARAMS.model_copy(update={"window": "1W"})
    found = find_windows(ref, cur, schema, drift_kinds(schema, weekly), weekly, seed=0)
    windows = found.diagnosis.windows
    # 25 days from Monday 2 March: three whole weeks and one of 4 days, keyed by the week
    assert windows["window"].tolist()[0] == "2026-03-02/2026-03-08" and len(windows) == 4
    assert windows["start"].iloc[0] == pd.Timestamp("2026-03-02")
    ref_keys = found.drift.loc[found.drift["period"] == "reference", "window"].unique()
    assert ref_keys[0] == "2025-12-01/2025-12-07"  # the reference cut by its own weeks
    assert found.warnings == []  # 490 reference rows a week
    # a reference of the same rows spread over years: 2-3 rows a week, a band of noise
    sparse_days = pd.Timestamp("2019-01-07") + pd.to_timedelta(np.arange(REFERENCE_ROWS) * 3, "D")
    sparse = Reference(frame=ref.frame.assign(day=sparse_days), profile=ref.profile,
                       source=ref.source)  # fmt: skip
    thin = find_windows(sparse, cur, schema, drift_kinds(schema, weekly), weekly, seed=0)
    assert len(thin.warnings) == 1
    assert re.search(r"monitor.window '1W' cuts the reference into \d+ windows of a median "
                     r"[23] rows.*at least 30 rows", thin.warnings[0])  # fmt: skip
    wrong = weekly.model_copy(update={"time_column": "when"})
    with pytest.raises(ParamsError, match=r"monitor.time_column: 'when' is not a column"):
        find_windows(ref, cur, schema, drift_kinds(schema, wrong), wrong, seed=0)


def test_a_value_the_ingested_data_held_is_not_out_of_range(model, tmp_path):
    """The stage widens the reference's range by the schema's: x3 spans [0, 10] in the reference,
    and the project's data reached 35."""
    rng = np.random.default_rng(5)
    cur = current_rows(rng)
    cur.loc[1200, "x3"] = 25.0  # window 3: far past the reference's range, inside the data's
    cur.loc[2200, "x3"] = 80.0  # window 5: far past both
    cur = cur.assign(y=truth(cur, rng))
    ref, current = sides(model, tmp_path, cur)
    kinds = drift_kinds(SCHEMA, PARAMS)
    ranged = SCHEMA.model_copy(
        update={
            "features": [
                c.model_copy(update={"min": 0.0, "max": 35.0}) if c.name == "x3" else c
                for c in SCHEMA.features
            ]
        }
    )
    for schema, alerted in ((SCHEMA, {3, 5}), (ranged, {5})):
        found = find_windows(ref, current, schema, kinds, PARAMS, seed=0)
        x3 = found.quality[
            (found.quality["period"] == "current") & (found.quality["column"] == "x3")
        ]
        assert set(np.flatnonzero(x3["alert"].to_numpy()) + 1) == alerted
    assert x3["reason"].iloc[4] == "1 outside the ingested range [0, 35] ('80.0')"

"""monitor.reference: champion, training, a file or a date range - labelled, scored, and warned.

The seasonal case shows why the choice matters: a reference spanning a full year raises no drift
on a later year of the same seasons; a one-season reference does, on data that did not change.
The built-in generator has no seasonality (signup dates are uniform, no feature follows the
month), so a synthetic seasonal table and the El Nino sea temperatures that statsmodels ships
stand in for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.core.contracts.predlog import PREDICTION
from lib.core.errors import DataValidationError, ParamsError
from lib.core.params import Params, load_params
from lib.core.refspec import reference_spec
from lib.data.drift import check_drift
from lib.data.drift_profile import build_profile
from lib.data.schema import ColumnSchema, Schema
from lib.model.reference import scored_frame
from lib.monitoring import coverage, inputs
from lib.monitoring.reference_rows import load_reference
from tests.conftest import monitor_overrides

# --- parsing monitor.reference --------------------------------------------------------------


def test_reference_spec_tells_the_kinds_apart():
    assert reference_spec("champion").kind == "champion"
    assert reference_spec(" training ").kind == "training"
    assert reference_spec("data/ref-2024..csv").kind == "file"
    spec = reference_spec("2024-01-01..2024-03-31")
    assert spec.kind == "range" and spec.start == pd.Timestamp("2024-01-01")
    assert spec.end == pd.Timestamp("2024-04-01")  # the last day is included


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024-01..2024-06", r"monitor.reference: '2024-01..2024-06' is not a date range; write "),
        ("2024-02-30..2024-03-01", r"monitor.reference: '2024-02-30..2024-03-01': .*calendar days"),
        ("2024-06-01..2024-01-01", r"ends before it starts; write the earlier day first"),
    ],
)
def test_a_bad_date_range_names_the_key_and_the_format(text, message):
    with pytest.raises(ParamsError, match=message) as info:
        reference_spec(text)
    assert info.value.key == "monitor.reference"


# --- the outputs a reference carries --------------------------------------------------------

SCHEMA = Schema(
    features=[ColumnSchema(name="x", kind="numeric"), ColumnSchema(name="proba_x", kind="numeric")],
    target="y",
    task="binary",
    classes=["no", "yes"],
)


def test_scored_frame_replaces_stale_outputs_and_keeps_features_and_target():
    rows = pd.DataFrame(
        {"x": [1.0, 2.0], "proba_x": [0.1, 0.2], "y": ["no", "yes"], PREDICTION: ["yes", "yes"]}
    )
    proba = np.array([[0.8, 0.2], [0.3, 0.7]])
    frame, names = scored_frame(rows, SCHEMA, np.array(["no", "yes"]), proba)
    assert names == ["prediction", "proba_no", "proba_yes"]
    assert list(frame.columns) == ["x", "proba_x", "y", "prediction", "proba_no", "proba_yes"]
    assert frame[PREDICTION].tolist() == ["no", "yes"]  # the model's, not the file's
    assert frame["proba_yes"].tolist() == [0.2, 0.7] and frame["proba_x"].tolist() == [0.1, 0.2]
    assert rows[PREDICTION].tolist() == ["yes", "yes"]  # the input is not modified


# --- the seasonal case ----------------------------------------------------------------------


def seasonal(year: int, per_day: int = 2, seed: int = 0) -> pd.DataFrame:
    """A year of rows whose 'temp' follows the month (cold winters, warm summers)."""
    rng = np.random.default_rng(seed + year)
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D").repeat(per_day)
    season = 10 * np.sin(2 * np.pi * (days.dayofyear.to_numpy() - 100) / 365.25)
    return pd.DataFrame({"day": days, "temp": 12 + season + rng.normal(0, 2, len(days))})


def elnino() -> pd.DataFrame:
    """Monthly El Nino sea surface temperatures 1950-2010, one row per month, in time order."""
    import statsmodels.api as sm

    wide = sm.datasets.elnino.load_pandas().data
    months = {name: i + 1 for i, name in enumerate(wide.columns[1:])}
    long = wide.melt(id_vars="YEAR", var_name="month", value_name="temp")
    parts = {"year": long["YEAR"].astype(int), "month": long["month"].map(months), "day": 1}
    long["day"] = pd.to_datetime(pd.DataFrame(parts))
    return long[["day", "temp"]].sort_values("day", ignore_index=True)


def drifted(reference: pd.DataFrame, current: pd.DataFrame) -> bool:
    report = check_drift(build_profile(reference, {"temp": "numeric"}), current, columns=["temp"])
    return report.columns[0].drifted


TEMP = Schema(features=[ColumnSchema(name="temp", kind="numeric")], target="t", task="regression")


def summer(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["day"].dt.month.isin([6, 7, 8])]


def test_a_full_year_reference_sees_no_drift_where_a_one_season_reference_does():
    reference, later = seasonal(2023), seasonal(2024)
    assert not drifted(reference, later)
    assert drifted(summer(reference), later)  # the same seasons, read as drift
    assert coverage.coverage_warnings(reference, later, TEMP, {"temp": "numeric"}, "day") == []
    found = coverage.coverage_warnings(summer(reference), later, TEMP, {"temp": "numeric"}, "day")
    assert len(found) == 3
    assert found[0].startswith(
        "monitor.reference: the reference spans 3 months of 'day' (2023-06-01..2023-08-31) but "
        "the current data 12 months (2024-01-01..2024-12-31)"
    )
    assert "a full cycle (a whole year for seasonal data)" in found[0]
    assert "fall in months of 'day' the reference has no row in (Jan, Feb" in found[1]
    assert "of the current values of 'temp' lie outside the reference's range" in found[2]


def test_el_nino_temperatures_a_full_cycle_against_a_one_season_reference():
    data = elnino()
    years = data["day"].dt.year
    reference, later = data[years.between(1950, 1969)], data[years.between(1970, 1989)]
    assert not drifted(reference, later)
    assert drifted(summer(reference), later)
    found = coverage.coverage_warnings(summer(reference), later, TEMP, {"temp": "numeric"}, "day")
    # twenty summers span as long as the current data: the months show what is missing
    assert "spans" not in found[0] and found[0].startswith(
        "monitor.reference: 75% of the current rows fall in months of 'day' the reference has no "
        "row in (Jan, Feb, Mar, Apr, May, Sep, Oct, Nov, Dec; the reference covers Jun, Jul, Aug)"
    )
    assert "of the current values of 'temp' lie outside the reference's range" in found[1]
    full = coverage.coverage_warnings(reference, later, TEMP, {"temp": "numeric"}, "day")
    assert not [w for w in full if "'day'" in w]  # twenty whole years cover every month


def test_a_reference_as_wide_as_the_current_data_gives_no_range_warning():
    rng = np.random.default_rng(3)
    ref, cur = pd.Series(rng.normal(0, 1, 2000)), pd.Series(rng.normal(0, 1, 500))
    assert coverage.range_warning(ref, cur, "x") is None
    one_outlier = pd.concat([cur, pd.Series([40.0])], ignore_index=True)
    assert coverage.range_warning(ref, one_outlier, "x") is None  # one value does not warn
    shifted = coverage.range_warning(ref, cur + 3, "x")
    assert shifted is not None and shifted.startswith("monitor.reference: ")
    span = coverage.time_span_warning(
        pd.Series(pd.date_range("2024-01-01", periods=10, freq="D")),
        pd.Series(pd.date_range("2025-01-01", periods=10, freq="D")),
        "day",
    )
    assert span is None  # as long as the current span, if not the same days


# --- against a trained champion -------------------------------------------------------------


@pytest.fixture(scope="module")
def root(monitored_root: Path) -> Path:
    return monitored_root


def params_for(root: Path, *extra: str) -> Params:
    return load_params(overrides=monitor_overrides(root, *extra))


@pytest.fixture(scope="module")
def champion(root: Path):
    from lib.serving.loading import load_model

    return load_model(params_for(root), fast=False)


def load(root: Path, model, reference: str, schema: Schema | None = None):
    params = params_for(root, f"monitor.reference={reference}")
    return load_reference(
        params, schema or model.schema, model.name, model.version, scorer=model.predict
    )


@pytest.mark.slow  # needs the trained project (ingest, train, evaluate)
def test_a_file_reference_keeps_its_labels_and_is_scored_like_the_champions(root, champion):
    saved = load(root, champion, "champion")
    plain = saved.frame.drop(columns=[c for c in saved.frame if c.startswith(("pred", "proba_"))])
    path = root / "plain_reference.parquet"
    plain.to_parquet(path, index=False)
    ref = load(root, champion, str(path))
    assert ref.kind == "file" and ref.source == str(path) and ref.warnings == []
    assert list(ref.frame.columns) == list(saved.frame.columns)
    assert ref.frame["churned"].notna().all()  # the labels are kept
    pd.testing.assert_series_equal(ref.frame[PREDICTION], saved.frame[PREDICTION])
    assert np.allclose(ref.frame["proba_1"], saved.frame["proba_1"])
    assert {PREDICTION, "proba_1"} <= set(ref.profile.columns)  # prediction drift is checked
    unlabelled = root / "unlabelled_reference.csv"
    plain.drop(columns="churned").to_csv(unlabelled, index=False)
    ref = load(root, champion, str(unlabelled))
    assert "churned" not in ref.frame.columns and ref.frame[PREDICTION].notna().all()
    assert ref.warnings == [
        f"monitor.reference={unlabelled}: the reference has no values of the target 'churned', "
        "so quality is not compared with it; add the target column"
    ]


@pytest.mark.slow  # needs the trained project (ingest, train, evaluate)
def test_a_training_reference_is_the_train_split_scored_by_the_champion(root, champion):
    from lib.data.ingest import load_processed

    saved = load(root, champion, "champion")
    ref = load(root, champion, "training")
    train = load_processed(params_for(root)).splits["train"]
    assert ref.kind == "training" and len(ref.frame) == len(train)
    assert list(ref.frame.columns) == list(saved.frame.columns)
    assert ref.frame["signup_date"].is_monotonic_increasing  # time order, for windows
    pred, _ = champion.predict(ref.frame[champion.schema.names()])
    assert (ref.frame[PREDICTION].to_numpy() == pred).all()
    assert sorted(ref.frame["customer_id"]) == sorted(train["customer_id"])
    assert ref.warnings and "quality on them is optimistic" in ref.warnings[0]


@pytest.mark.slow  # needs the trained project (ingest, train, evaluate)
def test_a_date_range_reference_holds_the_rows_of_those_days(root, champion):
    from lib.data.ingest import load_processed

    every = pd.concat(load_processed(params_for(root)).splits.values(), ignore_index=True)
    days = every["signup_date"]
    expected = int(((days >= "2020-01-01") & (days < "2021-01-01")).sum())
    ref = load(root, champion, "2020-01-01..2020-12-31")
    assert ref.kind == "range" and len(ref.frame) == expected > 0
    assert ref.frame["signup_date"].dt.year.eq(2020).all()
    assert ref.frame["churned"].notna().all() and ref.frame[PREDICTION].notna().all()


@pytest.mark.slow  # needs the trained project (ingest, train, evaluate)
def test_reference_errors_name_the_key_and_the_fix(root, champion):
    with pytest.raises(DataValidationError, match=r"monitor.reference=1990-01-01..1990-12-31: "
                       r"no rows of the processed data have 'signup_date' in that range \(the "
                       r"data spans 20\d\d-\d\d-\d\d..20\d\d-\d\d-\d\d\); choose days"):  # fmt: skip
        load(root, champion, "1990-01-01..1990-12-31")
    with pytest.raises(DataValidationError, match=r"monitor.reference: no file matches .*nowhere"):
        load(root, champion, str(root / "nowhere.parquet"))
    undated = champion.schema.model_copy(
        update={
            "date_column": None,
            "features": [f for f in champion.schema.features if f.kind != "datetime"],
        }
    )
    with pytest.raises(ParamsError, match=r"a date range needs a time column, and the data has"):
        load(root, champion, "2020-01-01..2020-12-31", schema=undated)


@pytest.mark.slow  # needs the trained project (ingest, train, evaluate)
def test_coverage_warns_when_the_champions_reference_spans_less_time(root, champion):
    """A time-ordered slice of the reference against the whole current batch."""
    saved = load(root, champion, "champion")
    frame = saved.frame.sort_values("signup_date")
    narrow = frame[frame["signup_date"] < frame["signup_date"].quantile(0.3)]
    ref = inputs.Reference(frame=narrow, profile=saved.profile, source="narrow")
    cur = inputs.Current(frame=frame, source="whole", pred=frame[PREDICTION].to_numpy(), proba=None)
    kinds = inputs.drift_kinds(champion.schema, params_for(root).monitor)
    warned = coverage.with_coverage(ref, cur, champion.schema, kinds, params_for(root))
    assert warned.warnings and "of 'signup_date'" in warned.warnings[0]
    same = coverage.with_coverage(saved, cur, champion.schema, kinds, params_for(root))
    assert same.warnings == []


@pytest.mark.slow  # a whole monitor run
def test_the_monitor_stage_runs_on_a_training_reference_with_its_labels(root):
    from lib.monitoring.monitor import run_monitor

    result = run_monitor(params_for(root, "monitor.reference=training"), webhook_url="")
    assert result.reference.kind == "training" and len(result.reference.frame) > 300
    assert result.quality.reference_metrics is not None  # labels and scores were kept
    assert "prediction" in {c.column for c in result.outputs.columns}


def test_preflight_looks_for_a_file_only_when_monitor_reference_names_one(tmp_path):
    from lib.data.preflight import file_problems

    def header(path: Path) -> list[str]:
        return []

    def lines(reference: str) -> list[str]:
        params = load_params(
            overrides=monitor_overrides(tmp_path, f"monitor.reference={reference}")
        )
        return [x for x in file_problems(params, header) if "monitor.reference" in x]

    assert lines("training") == [] and lines("2024-01-01..2024-12-31") == []
    missing = lines(str(tmp_path / "nowhere.csv"))
    assert len(missing) == 1 and "nowhere.csv" in missing[0]

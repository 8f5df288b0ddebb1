"""Parameters that fit the data and the task, checked all at once before anything is trained."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lib.core import tasks
from lib.core.errors import ParamsError
from lib.core.params import derived_name, load_params
from lib.data import preflight
from lib.data.ingest import run_ingest
from lib.data.schema import ColumnSchema, Schema
from tests.conftest import dirs_overrides, small_frame


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def user_params(tmp_path: Path, *extra: str, presets: list[Path] | None = None):
    csv = tmp_path / "shop.csv"
    if not csv.exists():
        small_frame(90).to_csv(csv, index=False)
    return load_params(
        presets or [],
        [f"data.source={csv}", "data.target=label", *dirs_overrides(tmp_path), *extra],
    )


# --- defaults that belong to the built-in data and to the task -----------------------------


def test_the_built_in_datas_settings_apply_to_the_built_in_data_only(tmp_path):
    builtin = load_params(overrides=dirs_overrides(tmp_path))
    assert builtin.data.target == "churned" and builtin.data.id_column == "customer_id"
    assert builtin.evaluate.segments == ["contract_type", "plan_tier", "region", "payment_method"]
    assert builtin.monitor_current() == "production"
    assert "params/builtin/generator.yaml" in builtin.source_of("evaluate.segments")

    mine = user_params(tmp_path)
    assert mine.project.name == "shop"  # from the file's name, not the built-in 'churn'
    assert mine.data.id_column is None and mine.data.date_column is None
    assert mine.evaluate.segments == "auto" and mine.monitor.alerts.key_features == "auto"
    assert mine.monitor_current() == "log"
    assert mine.source_of("evaluate.segments") == "params/base.yaml"


def test_a_source_without_a_target_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ParamsError) as info:
        load_params(overrides=["data.source=x.csv", *dirs_overrides(tmp_path)])
    assert info.value.key == "data.target"
    assert "data.target is not set for data.source 'x.csv'" in str(info.value)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("generator", "churn"),
        ("data/raw/sales-*.csv", "sales"),
        ("a b/My Table.parquet", "My-Table"),
    ],
)
def test_project_name_auto_comes_from_the_source(source, name):
    assert derived_name(source) == name


def test_task_defaults_never_leak_into_another_task():
    assert tasks.floors("auto", "binary") == {"roc_auc": 0.6}
    assert tasks.floors("auto", "regression") == {"r2": 0.05}
    assert tasks.floors("auto", "multiclass", 3) == {"balanced_accuracy": 0.4}
    assert tasks.metric_drop("auto", "regression") == {"r2": 0.1}
    assert tasks.metric_drop("auto", "multiclass") == {"f1_macro": 0.05}
    assert tasks.floors({"mae": 3.0}, "regression") == {"mae": 3.0}
    for task in ("binary", "multiclass", "regression"):
        assert set(tasks.floors("auto", task, 4)) <= set(tasks.SCORES[task])
        assert set(tasks.metric_drop("auto", task)) <= set(tasks.MONITORED[task])


def test_a_preset_map_replaces_and_null_clears(tmp_path):
    preset = write(
        tmp_path / "p.yaml",
        "evaluate:\n  floors: {f1_macro: 0.8}\n  segments: null\n"
        "monitor:\n  alerts:\n    metric_drop: {accuracy: 0.1}\n    key_features: null\n",
    )
    params = load_params([preset], ["evaluate.floors.accuracy=0.5", *dirs_overrides(tmp_path)])
    # a listed map replaces the one before it whole; one key set by -p adds to it
    assert params.evaluate.floors == {"f1_macro": 0.8, "accuracy": 0.5}
    env = {"QUIRE__EVALUATE__FLOORS__LOG_LOSS": "0.7"}
    assert load_params([preset], env=env).evaluate.floors == {"f1_macro": 0.8, "log_loss": 0.7}
    assert params.evaluate.segments == [] and params.monitor.alerts.key_features == []
    assert params.monitor.alerts.metric_drop == {"accuracy": 0.1}
    cleared = load_params([preset], ["evaluate.floors=null", *dirs_overrides(tmp_path)])
    assert cleared.evaluate.floors == {}
    assert cleared.source_of("evaluate.floors") == "-p evaluate.floors"


def test_a_later_map_does_not_merge_with_the_defaults(tmp_path):
    preset = write(tmp_path / "p.yaml", "data:\n  columns: {plan: categorical}\n")
    params = load_params(
        [preset], ["data.columns={tenure: numeric}", "data.source=x.csv", "data.target=y"]
    )
    assert params.data.columns == {"tenure": "numeric"}


# --- auto segments --------------------------------------------------------------------------


def test_auto_segments_pick_the_low_cardinality_features_fewest_values_first():
    def cat(name: str, n: int) -> ColumnSchema:
        return ColumnSchema(name=name, kind="categorical", categories=[str(i) for i in range(n)])

    schema = Schema(
        target="y",
        task="binary",
        classes=[0, 1],
        features=[
            cat("city", 40),  # too many values
            cat("plan", 3),
            ColumnSchema(name="x", kind="numeric"),
            ColumnSchema(name="paperless", kind="boolean"),
            cat("region", 5),
            cat("one", 1),  # nothing to compare
            cat("tier", 4),
            cat("band", 6),
        ],
    )
    assert preflight.segment_columns("auto", schema) == ["paperless", "plan", "tier", "region"]
    assert preflight.segment_columns(["city"], schema) == ["city"]


# --- one message, every problem, where each came from ---------------------------------------


def test_every_problem_in_one_message_with_its_layer_and_a_suggestion(tmp_path):
    preset = write(
        tmp_path / "mine.yaml",
        "data:\n  id_column: shop_id\nevaluate:\n  segments: [charges, plann]\n"
        "  floors: {rmse: 3}\nmonitor:\n  alerts:\n    key_features: [tenur]\n",
    )
    params = user_params(tmp_path, presets=[preset])
    frame = small_frame(90)
    with pytest.raises(ParamsError) as info:
        from lib.data.params_check import check_columns

        check_columns(params, read=lambda _p: ([tmp_path / "shop.csv"], [frame]))
    message = str(info.value)
    where = f"(from {preset})"
    assert "5 parameter problem(s), found before anything was trained" in message
    assert f"data.id_column {where}: no column 'shop_id' in the data" in message
    assert f"evaluate.segments {where}: no column 'plann' in the data; did you mean 'plan'?" in (
        message
    )
    assert f"monitor.alerts.key_features {where}: no column 'tenur'" in message
    assert "did you mean 'tenure'?" in message
    # the schema is inferred without the missing id column, so kinds and metrics are checked too
    assert f"evaluate.segments {where}: 'charges': not a categorical or boolean feature" in message
    assert "use some of plan, paperless" in message
    assert f"evaluate.floors {where}: 'rmse': not a binary metric" in message
    assert info.value.key == "data.id_column"


def test_metric_and_file_problems(tmp_path):
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"label": [0, 1]}).to_csv(labels, index=False)
    params = user_params(
        tmp_path,
        "train.primary_metric=rmse",
        "monitor.alerts.metric_drop={r2: 0.1}",
        "monitor.current=production",
        f"monitor.reference={tmp_path / 'nowhere.csv'}",
        f"monitor.labels={labels}",
        "monitor.label_key=[order_id]",
    )
    schema = Schema(target="label", task="binary", classes=[0, 1], features=[])
    found = preflight.problems(
        params, ["label"], schema, lambda p: preflight.file_columns(p, params)
    )
    text = "\n".join(found)
    assert (
        "train.primary_metric (from -p train.primary_metric): 'rmse': not a binary metric" in text
    )
    assert "monitor.alerts.metric_drop (from -p monitor.alerts.metric_drop): 'r2'" in text
    assert "'production' is the built-in generator's batch" in text
    assert "monitor.reference (from -p monitor.reference):" in text and "nowhere.csv" in text
    assert "has no column 'order_id'" in text
    assert len(found) == 5


def test_ingest_stops_before_writing_anything(tmp_path):
    params = user_params(tmp_path, "evaluate.segments=[tenure, plan]", "ingest.split.by_time=true")
    with pytest.raises(ParamsError) as info:
        run_ingest(params)
    message = str(info.value)
    assert "2 parameter problem(s)" in message
    assert "evaluate.segments (from -p evaluate.segments): 'tenure'" in message
    assert "a time split needs data.date_column" in message
    assert not (tmp_path / "data" / "processed").exists()


def test_the_check_report_says_what_auto_means_here(tmp_path):
    from lib.data.params_check import check_columns

    params = user_params(tmp_path)
    report = check_columns(params).format()
    assert "evaluate.segments: auto -> ['paperless', 'plan']" in report
    assert "evaluate.floors: auto -> {'roc_auc': 0.6}" in report
    assert "monitor.current: auto -> log" in report
    assert report.rstrip().endswith("(nothing trained)")


def test_the_task_tables_name_the_metrics_the_scorers_know():
    """lib.core.tasks (what the checks accept) and lib.model.metrics (what training scores)
    name the same metrics per task."""
    from lib.model import metrics

    for task in ("binary", "multiclass", "regression"):
        assert set(metrics._BY_TASK[task]) == set(tasks.METRICS[task]), task


# --- a column named as one of the prediction log's own ------------------------------------


def _tips(tmp_path: Path, *extra: str):
    """plotly's tips table as it ships: its 'time' column (Lunch, Dinner) is a feature."""
    import gzip

    import plotly

    packaged = Path(plotly.__file__).parent / "package_data" / "datasets" / "tips.csv.gz"
    csv = tmp_path / "tips.csv"
    csv.write_bytes(gzip.decompress(packaged.read_bytes()))
    return load_params([], [f"data.source={csv}", "data.target=smoker",
                            *dirs_overrides(tmp_path), *extra])  # fmt: skip


def test_a_column_named_as_the_logs_own_is_refused_before_ingest_with_the_fix(tmp_path):
    # the server logged a timestamp over tips' 'time' in every row, and the monitor then
    # called 'time' drifted (chi-square p = 0 in every window) on the table's own rows
    with pytest.raises(ParamsError) as info:
        run_ingest(_tips(tmp_path))
    message = str(info.value)
    assert "1 parameter problem(s)" in message
    assert (
        "data (from -p data.source): column 'time' has a name the prediction log gives its own "
        "columns (request_id, row, time, model_version, prediction, proba_<class>), so every "
        "served row's log would overwrite it; rename it with data.rename: {time: time_value} "
        "(any free name), or drop it with data.drop: [time]"
    ) in message
    assert not (tmp_path / "data" / "processed").exists()


def test_data_rename_gives_the_column_a_free_name_everywhere_it_is_read(tmp_path):
    from lib.data.readers import read_table

    params = _tips(tmp_path, "data.rename={time: meal_time}")
    result = run_ingest(params)
    assert "meal_time" in result.schema.names() and "time" not in result.schema.names()
    raw = read_table(Path(params.data.source), params.data.csv, params.data.rename)
    assert sorted(raw["meal_time"].unique()) == ["Dinner", "Lunch"]
    # dropping it instead also passes the check
    assert preflight.reserved_columns(_tips(tmp_path, "data.drop=[time]"), raw.columns) == []


def test_data_rename_cannot_take_a_name_in_use(tmp_path):
    from lib.core.errors import DataValidationError
    from lib.data.readers import read_table

    params = _tips(tmp_path, "data.rename={time: day}")
    with pytest.raises(DataValidationError, match="renames a column to 'day', which the file"):
        read_table(Path(params.data.source), params.data.csv, params.data.rename)
    with pytest.raises(ParamsError, match="'time' and 'sex' are both renamed to 'x'"):
        _tips(tmp_path, "data.rename={time: x, sex: x}")

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lib.core.errors import DataValidationError
from lib.core.param_sections import ChecksParams, DataParams
from lib.data.schema import Schema
from lib.data.validate import infer_schema
from tests.conftest import small_frame

PATH = Path("data/raw/fixture.csv")


def infer(frame: pd.DataFrame, **data: object) -> Schema:
    params = DataParams(target="label", id_column=None, date_column=None, **data)
    return infer_schema(frame, params, ChecksParams(), PATH)


def test_kinds_ranges_and_categories():
    schema = infer(small_frame())
    kinds = {c.name: c.kind for c in schema.features}
    assert kinds == {
        "tenure": "numeric",
        "charges": "numeric",
        "plan": "categorical",
        "paperless": "boolean",
        "joined": "datetime",
    }
    assert schema.column("plan").categories == ["basic", "max", "pro"]
    assert schema.column("tenure").min >= 1
    assert schema.task == "binary" and schema.classes == [0, 1]


def test_declared_kind_wins():
    schema = infer(small_frame(), columns={"tenure": "categorical"})
    assert schema.column("tenure").kind == "categorical"
    assert schema.column("tenure").declared


def test_mostly_numeric_column_with_text_names_row_and_value():
    frame = small_frame().astype({"tenure": object})
    frame.loc[41, "tenure"] = "abc"
    with pytest.raises(DataValidationError) as info:
        infer(frame)
    assert str(info.value).startswith(
        "data/raw/fixture.csv: column 'tenure' row 42: 'abc' is not a number"
    )
    assert "declare the column categorical" in str(info.value)
    assert (info.value.row, info.value.column, info.value.check) == (42, "tenure", "wrong_type")


def test_missing_target():
    with pytest.raises(
        DataValidationError, match=r"target column 'label' is missing \(columns: tenure"
    ):
        infer(small_frame().drop(columns="label"))


def test_target_with_one_class():
    frame = small_frame().assign(label=1)
    with pytest.raises(
        DataValidationError, match=r"target 'label' has one class \(1\) in 60 labelled rows"
    ):
        infer(frame)


def test_required_declared_column_missing():
    with pytest.raises(DataValidationError, match=r"required column 'region' is missing"):
        infer(small_frame(), columns={"region": "categorical"})


@pytest.mark.parametrize(
    ("labels", "task"),
    [
        (["a", "b"] * 30, "binary"),
        (["a", "b", "c"] * 20, "multiclass"),
        ([0, 1, 2, 3] * 15, "multiclass"),
        ([float(i) / 7 for i in range(60)], "regression"),
        (list(range(60)), "regression"),
    ],
)
def test_task_inference(labels, task):
    assert infer(small_frame().assign(label=labels)).task == task


def test_binary_task_with_three_classes_is_an_error():
    frame = small_frame().assign(label=["a", "b", "c"] * 20)
    with pytest.raises(DataValidationError, match="data.task is 'binary' but target 'label' has 3"):
        infer(frame, task="binary")


def test_schema_round_trips(tmp_path):
    schema = infer(small_frame())
    schema.save(tmp_path / "schema.json")
    assert Schema.load(tmp_path / "schema.json") == schema
    assert Schema.load(tmp_path / "schema.json").sha256() == schema.sha256()


def test_categorical_missing_values_stay_missing():
    from lib.data.schema import to_categorical

    out = to_categorical(pd.Series(["a", None, float("nan"), 3], dtype=object))
    assert out.isna().tolist() == [False, True, True, False]
    assert out.dropna().tolist() == ["a", "3"]
    assert to_categorical(pd.Series([2007.0, None])).tolist()[0] == "2007"

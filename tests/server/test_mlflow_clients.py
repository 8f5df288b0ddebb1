"""MLflow's own scoring client, unmodified, against Quire's /invocations on a real server.

Also the logged model's own ``serving_input_example.json`` (what MLflow checks a model against
before it logs it), and the ``dataframe_split`` bodies that pandas cannot build a frame from.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lib.core import tracking
from lib.serving.contract import check_rows
from tests.server.helpers import quiet_client, real_server


@pytest.fixture(scope="module")
def client(served_params):
    with quiet_client(served_params) as c:
        yield c


@pytest.fixture(scope="module")
def serving_example(served_params, client, tmp_path_factory) -> dict[str, Any]:
    """The served model's ``serving_input_example.json``, from its MLflow artifacts."""
    import mlflow

    tracking.setup(served_params)
    uri = client.app.state.serving.current().uri
    folder = tmp_path_factory.mktemp("example")
    path = mlflow.artifacts.download_artifacts(
        f"{uri}/serving_input_example.json", dst_path=str(folder)
    )
    with open(path) as f:
        example: dict[str, Any] = json.load(f)
    return example


def frame_with_missing_values(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame: numbers float (a missing one NaN), dates as datetimes."""
    frame = pd.DataFrame(rows)
    frame["signup_date"] = pd.to_datetime(frame["signup_date"])
    numbers = frame.select_dtypes("number").columns
    frame[numbers] = frame[numbers].astype(float)
    return frame


@pytest.mark.slow
def test_mlflows_own_client_scores_a_frame_with_missing_values(
    served_root, test_rows, tmp_path, client, serving_example
):
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    frame = frame_with_missing_values(test_rows)
    assert frame.isna().any(axis=None)  # NaN in numbers, None in strings: sent as NaN/null
    model = client.app.state.serving.current()
    expected = model.predict(check_rows(test_rows, model.schema))[0].tolist()
    example_rows = client.post("/predict/batch", json=_records(serving_example)).json()
    with real_server(
        served_root / "data", served_root / "mlruns", tmp_path / "server.log",
        prediction_log="false",
    ) as (base, _):  # fmt: skip
        host, port = base.removeprefix("http://").split(":")
        mlflow_client = ScoringServerClient(host, int(port))
        mlflow_client.wait_server_ready(timeout=10)
        answer = mlflow_client.invoke(frame)
        assert answer.get_predictions(predictions_format="ndarray").tolist() == expected
        # the model's own serving example: the same labels as through /predict/batch
        split = serving_example["dataframe_split"]
        from_example = mlflow_client.invoke(pd.DataFrame(split["data"], columns=split["columns"]))
        labels = from_example.get_predictions(predictions_format="ndarray").tolist()
        assert labels == [p["prediction"] for p in example_rows["predictions"]]


def _records(example: dict[str, Any]) -> list[dict[str, Any]]:
    """The example's rows for /predict/batch: its NaN (MLflow's missing value) as null."""
    split = example["dataframe_split"]
    return [
        {k: None if v != v else v for k, v in zip(split["columns"], row, strict=True)}
        for row in split["data"]
    ]


def _post(client: TestClient, body: Any) -> Any:
    """POST /invocations with NaN written as MLflow's client writes it."""
    content = json.dumps(body)
    return client.post(
        "/invocations", content=content, headers={"content-type": "application/json"}
    )


def test_the_models_serving_example_as_posted(client, serving_example):
    assert "NaN" in json.dumps(serving_example)  # the example has missing values
    answer = _post(client, serving_example)
    assert answer.status_code == 200, answer.text
    expected = client.post("/predict/batch", json=_records(serving_example)).json()
    assert answer.json()["predictions"] == [p["prediction"] for p in expected["predictions"]]
    split = serving_example["dataframe_split"]
    indexed = {"dataframe_split": {**split, "index": [f"r{i}" for i in range(len(split["data"]))]}}
    assert _post(client, indexed).json() == answer.json()


def test_nan_is_a_missing_value_in_every_kind_of_column(client, test_rows):
    row = test_rows[0]
    model = client.app.state.serving.current()
    for column in ("age", "region", "signup_date", "is_senior"):
        answer = _post(client, {"dataframe_records": [{**row, column: float("nan")}]})
        expected = model.predict(check_rows([{**row, column: None}], model.schema))[0]
        assert answer.status_code == 200, (column, answer.text)
        assert answer.json()["predictions"] == expected.tolist(), column


def _split(columns: Any, data: Any, **more: Any) -> dict[str, Any]:
    return {"dataframe_split": {"columns": columns, "data": data, **more}}


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("columns not a list", "BAD_REQUEST",
         "row 0, field 'dataframe_split.columns': expected a list of column names"),
        ("data not a list", "BAD_REQUEST",
         "row 0, field 'dataframe_split.data': expected a list of rows (lists of values)"),
        ("data [null]", "BAD_REQUEST",
         "row 0, field 'dataframe_split.data': expected 3 values (one per column), got null"),
        ("a row of scalars", "BAD_REQUEST",
         "row 1, field 'dataframe_split.data': expected 3 values (one per column), got int"),
        ("a list as a column name", "BAD_REQUEST",
         "row 0, field 'dataframe_split.columns[1]': expected a name, got list"),
        ("an object as a column name", "BAD_REQUEST",
         "row 0, field 'dataframe_split.columns[0]': expected a name, got dict"),
        ("more values than columns", "BAD_REQUEST",
         "row 1, field 'dataframe_split.data': expected 3 values (one per column), got 4 values"),
        ("every row with fewer values than columns", "BAD_REQUEST",
         "row 0, field 'dataframe_split.data': expected 3 values (one per column), got 2"),
        ("a column twice", "BAD_REQUEST",
         "row 0, field 'dataframe_split.columns': names sent twice: ['a']"),
        ("an index of another length", "BAD_REQUEST",
         "row 0, field 'dataframe_split.index': expected a list of 2 labels"),
        ("no columns", "INVALID_PARAMETER_VALUE",
         "row 0, field 'dataframe_split.columns': missing; send the column names"),
    ],
)  # fmt: skip
def test_malformed_dataframe_split_is_a_400_in_mlflow_shape(client, case, code, message):
    rows = [[1, 2, 3], [4, 5, 6]]
    body = {
        "columns not a list": _split("a", rows),
        "data not a list": _split(["a", "b", "c"], 5),
        "data [null]": _split(["a", "b", "c"], [None]),
        "a row of scalars": _split(["a", "b", "c"], [[1, 2, 3], 4]),
        "a list as a column name": _split(["a", ["b"], "c"], rows),
        "an object as a column name": _split([{"a": 1}, "b", "c"], rows),
        "more values than columns": _split(["a", "b", "c"], [[1, 2, 3], [4, 5, 6, 7]]),
        "every row with fewer values than columns": _split(["a", "b", "c"], [[1, 2], [4, 5]]),
        "a column twice": _split(["a", "b", "a"], rows),
        "an index of another length": _split(["a", "b", "c"], rows, index=[0]),
        "no columns": {"dataframe_split": {"data": rows}},
    }[case]
    answer = client.post("/invocations", json=body)
    assert answer.status_code == 400
    assert answer.json() == {"error_code": code, "message": message}


def test_a_short_row_ends_with_missing_values_as_in_pandas(client, test_rows):
    """pandas (so MLflow) fills a row shorter than the longest with missing values."""
    rows = test_rows[:2]
    columns = list(rows[0])
    short = [rows[1][c] for c in columns[:-3]]
    answer = _post(client, _split(columns, [[rows[0][c] for c in columns], short]))
    assert answer.status_code == 200, answer.text
    padded = {**rows[1], **dict.fromkeys(columns[-3:])}
    expected = client.post("/predict/batch", json=[rows[0], padded]).json()["predictions"]
    assert answer.json()["predictions"] == [p["prediction"] for p in expected]


def test_invocations_predictions_are_counted(client, test_rows):
    def counted() -> float:
        text = client.get("/metrics").text
        lines = [x for x in text.splitlines() if x.startswith("quire_predictions_total{")]
        return sum(float(x.rsplit(" ", 1)[1]) for x in lines)

    before = counted()
    answer = client.post("/invocations", json={"dataframe_records": test_rows[:6]})
    assert answer.status_code == 200
    assert counted() == before + 6

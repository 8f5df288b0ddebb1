"""The id column end to end: accepted on every route, never a model input, echoed and logged."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lib.core.contracts import predlog
from lib.core.layout import feedback_dir, predictions_dir
from lib.data import feedback
from lib.serving.predictor import LoadedModel
from server.config import Settings
from server.main import create_app
from tests.server.helpers import v2_body

pytestmark = pytest.mark.slow
ID = "customer_id"  # the tiny model's data.id_column


@pytest.fixture(scope="module")
def client(served_params):
    with TestClient(create_app(Settings(log_flush_seconds=0.1), served_params)) as c:
        yield c


def with_ids(rows: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [{**r, ID: f"{prefix}-{i}"} for i, r in enumerate(rows)]


def logged(served_params, request_id: str) -> pd.DataFrame:
    folder = predictions_dir(served_params.project.data_dir, "quire-churn")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = predlog.read_log(folder, request_id=request_id)
        if not rows.empty:
            return rows.sort_values(predlog.ROW)
        time.sleep(0.1)
    raise AssertionError(f"{request_id} never reached the prediction log")


def test_every_route_accepts_echoes_and_logs_the_id_and_never_gives_it_to_the_model(
    client, served_params, test_rows, monkeypatch
):
    seen: list[set[str]] = []
    original = LoadedModel.predict

    def spy(self, data):
        seen.append(set(data.columns))
        return original(self, data)

    monkeypatch.setattr(LoadedModel, "predict", spy)
    rows = with_ids(test_rows[:3], "C")
    plain = client.post("/predict/batch", json=test_rows[:3]).json()["predictions"]
    answers = {
        "predict": client.post("/predict", json=rows[0]),
        "predict/batch": client.post("/predict/batch", json=rows),
        "invocations": client.post("/invocations", json={"dataframe_records": rows}),
        "v2": client.post("/v2/models/quire-churn/infer", json=v2_body(rows)),
    }
    for route, answer in answers.items():
        assert answer.status_code == 200, (route, answer.text)
    single, batch = answers["predict"].json(), answers["predict/batch"].json()
    assert single["predictions"][0]["id"] == "C-0"
    assert [p["id"] for p in batch["predictions"]] == ["C-0", "C-1", "C-2"]
    assert [p["prediction"] for p in batch["predictions"]] == [p["prediction"] for p in plain]
    assert answers["invocations"].json() == {
        "predictions": [p["prediction"] for p in plain],
        "ids": ["C-0", "C-1", "C-2"],
    }
    csv = client.post(
        "/invocations",
        content=pd.DataFrame(rows).to_csv(index=False),
        headers={"content-type": "text/csv"},
    )
    assert csv.json() == answers["invocations"].json()  # the id column of a CSV body too
    outputs = {o["name"]: o for o in answers["v2"].json()["outputs"]}
    assert outputs["id"] == {
        "name": "id",
        "shape": [3],
        "datatype": "BYTES",
        "data": ["C-0", "C-1", "C-2"],
    }
    features = set(client.app.state.serving.current().schema.names())
    assert ID not in features and seen and all(columns == features for columns in seen)
    for route, answer in answers.items():
        log = logged(served_params, answer.headers["x-request-id"])
        expected = ["C-0"] if route == "predict" else ["C-0", "C-1", "C-2"]
        assert log[ID].tolist() == expected, route
    no_id = logged(
        served_params, client.post("/predict", json=test_rows[0]).headers["x-request-id"]
    )
    assert no_id[ID].isna().all()  # the column is there, null: the request sent no id


def test_ids_of_other_types_are_echoed_as_sent_and_logged_as_text(client, served_params, test_rows):
    rows = [{**test_rows[0], ID: 17}, {**test_rows[1], ID: 18.0}, {**test_rows[2], ID: None}]
    answer = client.post("/predict/batch", json=rows)
    assert [p["id"] for p in answer.json()["predictions"]] == [17, 18.0, None]
    log = logged(served_params, answer.headers["x-request-id"])
    assert log[ID].tolist() == ["17", "18", None]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([1, 2], "expected a string or an integer id, got list"),
        ({"a": 1}, "expected a string or an integer id, got dict"),
        (True, "expected a string or an integer id, got bool"),
        (1.5, "expected a string or an integer id, got float"),
        ("x" * 5000, "an id has at most 200 characters, got 5,000"),
        (10**19, "an integer id must be below 10^18 in size; send a longer one as a string"),
        (10**23, "a number id must be below 2^53; send a string"),  # orjson reads it as a float
    ],
)
def test_a_malformed_id_is_a_4xx_naming_the_row_and_field_on_every_route(
    client, test_rows, value, reason
):
    rows = [test_rows[0], {**test_rows[1], ID: value}]
    message = f"row 1, field {ID!r}: {reason}"
    single = client.post("/predict", json=rows[1])
    assert single.status_code == 422
    assert single.json()["error"]["message"] == message.replace("row 1", "row 0")
    batch = client.post("/predict/batch", json=rows)
    assert batch.status_code == 422 and batch.json()["error"]["message"] == message
    mlflow = client.post("/invocations", json={"dataframe_records": rows})
    assert mlflow.status_code == 400
    assert mlflow.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": message}
    v2 = client.post(
        "/v2/models/quire-churn/infer", json=v2_body([{**test_rows[0], ID: "ok"}, rows[1]])
    )
    assert v2.status_code == 400 and v2.json() == {"error": message}
    assert len(single.text) < 1000  # the huge value is not echoed back


def test_an_id_too_long_to_read_is_a_400_not_a_500(client, test_rows):
    body = str(test_rows[0]).replace("'", '"').replace("None", "null").replace("False", "false")
    body = body.replace("True", "true")[:-1] + f', "{ID}": 1{"0" * 5000}}}'
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        f"$.{ID}: an integer of 5,001 digits is too large for a number; send long ids as strings"
    )


def test_feedback_by_id_joins_the_logged_rows_and_counts_unknown_ids(
    client, served_params, test_rows
):
    rows = with_ids(test_rows[10:13], "F")
    served = client.post("/predict/batch", json=rows)
    logged(served_params, served.headers["x-request-id"])
    posted = client.post(
        "/feedback",
        json={
            "labels": [
                {"id": "F-0", "label": 1},
                {"id": "F-2", "label": 0},
                {"id": "nobody", "label": 1},
                {"request_id": served.headers["x-request-id"], "row": 1, "label": 1},
            ]
        },
    )
    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert body["accepted"] == 4 and body["by_id"] == 3
    assert body["unmatched"] == 1 and body["unmatched_ids"] == ["nobody"]  # stored all the same
    folder = feedback_dir(served_params.project.data_dir, "quire-churn")
    labels = feedback.load_labels(folder, "churned", served_params.data.csv, ID)
    log = predlog.read_log(predictions_dir(served_params.project.data_dir, "quire-churn"))
    joined = feedback.labelled_rows(log, labels, "churned", ID)
    mine = joined[joined[ID].isin(["F-0", "F-1", "F-2"])].sort_values(ID)
    assert mine[ID].tolist() == ["F-0", "F-1", "F-2"]
    assert mine["churned"].tolist() == [1, 1, 0]
    assert mine["monthly_charges"].tolist() == pytest.approx([r["monthly_charges"] for r in rows])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"id": [1, 2], "label": 1}, "field 'id': expected a string or an integer id, got list"),
        ({"id": "x" * 300, "label": 1}, "field 'id': an id has at most 200 characters, got 300"),
        ({"id": None, "label": 1}, "field 'id': expected the row's id"),
        (
            {"id": "a", "request_id": "b", "label": 1},
            "field 'id': give request_id (and row) or id, not both",
        ),
        ({"label": 1}, "field 'request_id': expected the request_id of a prediction or its id"),
    ],
)
def test_a_malformed_feedback_id_is_a_422_naming_the_entry(client, entry, message):
    answer = client.post("/feedback", json={"labels": [{"id": "ok", "label": 0}, entry]})
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == f"row 1, {message}"


def test_feedback_finds_ids_served_but_not_yet_flushed_to_the_log(served_params, test_rows):
    app = create_app(Settings(log_flush_seconds=600), served_params)  # nothing flushed in time
    with TestClient(app) as slow:
        served = slow.post("/predict/batch", json=with_ids(test_rows[20:22], "U"))
        assert served.status_code == 200
        posted = slow.post(
            "/feedback", json={"labels": [{"id": "U-1", "label": 1}, {"id": "U-9", "label": 0}]}
        ).json()
    assert (posted["by_id"], posted["unmatched"], posted["unmatched_ids"]) == (2, 1, ["U-9"])

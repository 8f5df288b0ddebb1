"""Every route through FastAPI's TestClient, against a real tiny model in a tmp MLflow store."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lib.serving.contract import records_to_frame
from server.config import Settings
from server.main import create_app
from tests.server.helpers import mlflow_payloads, post_payload, v2_body

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(served_params):
    app = create_app(
        Settings(log_flush_seconds=0.2, max_batch_rows=50, max_body_bytes=200_000), served_params
    )
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def pipeline(client):
    return mlflow.sklearn.load_model(client.get("/model").json()["uri"])


def expected_proba(pipeline, client, rows):
    schema = client.app.state.serving.current().schema
    frame, _ = records_to_frame(rows, schema)
    return pipeline.predict_proba(frame), pipeline.predict(frame)


def assert_clean_error(response, status, code):
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in response.text and len(response.text) < 5000
    return body["error"]


def test_health_and_model(client):
    assert client.get("/health/live").json() == {"status": "live"}
    assert client.get("/health/ready").status_code == 200
    assert client.get("/ping").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    info = client.get("/model").json()
    assert info["name"] == "quire-churn" and info["alias"] == "champion" and info["version"] == "1"
    assert info["task"] == "binary" and info["classes"] == [0, 1]
    assert "cv_roc_auc_mean" in info["metrics"] and info["schema"]["target"] == "churned"


def test_predict_one_equals_the_pipeline(client, pipeline, test_rows):
    answer = client.post("/predict", json=test_rows[0]).json()
    proba, _ = expected_proba(pipeline, client, test_rows[:1])
    got = answer["predictions"][0]["probabilities"]
    assert [got["0"], got["1"]] == proba[0].tolist()  # exactly, not approximately
    assert answer["model"] == {"name": "quire-churn", "version": "1"}
    assert len(answer["request_id"]) == 32


def test_batch_equals_the_pipeline(client, pipeline, test_rows):
    answer = client.post("/predict/batch", json=test_rows).json()
    proba, _ = expected_proba(pipeline, client, test_rows)
    got = np.array(
        [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in answer["predictions"]]
    )
    assert np.array_equal(got, proba)


def test_unknown_category_is_accepted_flagged_and_counted(client, test_rows):
    row = {**test_rows[0], "payment_method": "carrier_pigeon"}
    answer = client.post("/predict", json=row).json()
    assert answer["predictions"][0]["unknown_categories"] == ["payment_method"]
    assert 'quire_unknown_categories_total{field="payment_method"}' in client.get("/metrics").text


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"age": "old"}, "age", "expected a number, got str"),
        ({"region": 3.5}, "region", None),
        ({"is_senior": "maybe"}, "is_senior", "expected true or false"),
        ({"signup_date": "yesterday"}, "signup_date", "expected an ISO date"),
        ({"signup_date": "2263-01-01"}, "signup_date", "dates must fall between"),
        ({"favourite_colour": "blue"}, "favourite_colour", "unknown field"),
    ],
)
def test_bad_fields_get_422_naming_row_and_field(client, test_rows, change, field, reason):
    response = client.post("/predict/batch", json=[test_rows[0], {**test_rows[1], **change}])
    if reason is None:  # a number for a category is read as its text
        assert response.status_code == 200
        return
    error = assert_clean_error(response, 422, "invalid_input")
    assert error["details"][0]["row"] == 1 and error["details"][0]["field"] == field
    assert reason in error["details"][0]["reason"]


def test_missing_field_and_nan(client, test_rows):
    row = dict(test_rows[0])
    del row["tenure_months"]
    error = assert_clean_error(client.post("/predict", json=row), 422, "invalid_input")
    assert error["details"] == [{"row": 0, "field": "tenure_months", "reason": "missing field"}]
    body = json.dumps({**test_rows[0], "age": 1.0}).replace("1.0", "NaN", 1)
    error = assert_clean_error(
        client.post("/predict", content=body, headers={"content-type": "application/json"}),
        422,
        "invalid_input",
    )
    assert "NaN and Infinity are not allowed" in error["details"][0]["reason"]


def test_batch_limits_size_type_and_json(client, test_rows):
    assert_clean_error(client.post("/predict/batch", json=[]), 422, "empty_batch")
    error = assert_clean_error(
        client.post("/predict/batch", json=test_rows[:1] * 51), 422, "batch_too_large"
    )
    assert "51 rows exceed the limit of 50" in error["message"]
    big = json.dumps([test_rows[0]] * 2000)
    assert_clean_error(
        client.post("/predict/batch", content=big, headers={"content-type": "application/json"}),
        413,
        "body_too_large",
    )
    assert_clean_error(
        client.post(
            "/predict", content="a=1", headers={"content-type": "application/x-www-form-urlencoded"}
        ),
        415,
        "unsupported_media_type",
    )
    assert_clean_error(
        client.post("/predict", content="{nope", headers={"content-type": "application/json"}),
        400,
        "bad_request",
    )
    assert (
        'quire_validation_failures_total{reason="batch_too_large"}' in client.get("/metrics").text
    )


def test_mlflow_protocol_all_formats_agree_with_predict(client, pipeline, test_rows):
    rows = test_rows[:10]
    proba, _ = expected_proba(pipeline, client, rows)
    threshold = client.get("/model").json()["threshold"]  # the version's, as on /predict
    expected = np.where(proba[:, 1] >= threshold, 1, 0)
    for name, (kind, body) in mlflow_payloads(rows).items():
        answer = post_payload(client, "/invocations", kind, body)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json() == {"predictions": expected.tolist()}, name
    # the MLflow protocol's error body and status, as `mlflow models serve` answers bad input
    refused = client.post("/invocations", json={"records": rows})
    assert refused.status_code == 400
    assert refused.json() == {
        "error_code": "BAD_REQUEST",
        "message": "row 0, field '': expected exactly one of dataframe_split, dataframe_records, "
        "instances, inputs at the top level",
    }


def test_open_inference_protocol(client, pipeline, test_rows):
    meta = client.get("/v2/models/quire-churn").json()
    assert meta["inputs"][0] == {"name": "signup_date", "datatype": "BYTES", "shape": [-1]}
    rows = test_rows[:3]
    request = {
        "id": "r1",
        "inputs": v2_body(rows)["inputs"],
    }
    answer = client.post("/v2/models/quire-churn/infer", json=request).json()
    proba, _ = expected_proba(pipeline, client, rows)
    assert answer["id"] == "r1" and answer["outputs"][1]["shape"] == [3, 2]
    assert answer["outputs"][1]["data"] == proba.ravel().tolist()
    refused = client.post("/v2/models/other/infer", json=request)  # the V2 error body
    assert refused.status_code == 404
    assert refused.json() == {"error": "no model 'other' here; this server serves 'quire-churn'"}


def test_openapi_and_metrics(client):
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/invocations", "/v2/models/{name}/infer"} <= set(
        spec["paths"]
    )
    text = client.get("/metrics").text
    assert 'quire_requests_total{route="/predict",status="200"}' in text
    assert "quire_request_seconds_bucket" in text and 'quire_model_info{alias="champion"' in text


def test_api_key_guards_everything_but_health(served_params, test_rows):
    app = create_app(Settings(api_key="s3cret", prediction_log=False), served_params)
    with TestClient(app) as c:
        assert c.get("/health/ready").status_code == 200
        assert_clean_error(c.post("/predict", json=test_rows[0]), 401, "unauthorized")
        assert (
            c.post("/predict", json=test_rows[0], headers={"X-API-Key": "s3cret"}).status_code
            == 200
        )
        assert c.get("/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert_clean_error(c.get("/metrics"), 401, "unauthorized")  # predictions by class
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        for open_route in ("/health/live", "/ping", "/version", "/v2/health/ready", "/docs"):
            assert c.get(open_route).status_code == 200, open_route  # probes and API docs


def test_extra_fields_can_be_ignored(served_params, test_rows):
    app = create_app(Settings(extra_fields="ignore", prediction_log=False), served_params)
    with TestClient(app) as c:
        assert c.post("/predict", json={**test_rows[0], "note": "hi"}).status_code == 200


def test_prediction_log_written_and_flushed_on_shutdown(served_params, served_root, test_rows):
    folder = served_root / "data" / "predictions" / "quire-churn"
    before = set(folder.glob("part-*.parquet")) if folder.exists() else set()
    app = create_app(Settings(log_flush_seconds=60, log_flush_rows=10_000), served_params)
    with TestClient(app) as c:
        ids = [c.post("/predict", json=r).json()["request_id"] for r in test_rows[:5]]
        c.post("/predict/batch", json=test_rows[:7])
        mlflow_answer = c.post("/invocations", json={"dataframe_records": test_rows[:3]})
        v2 = {"inputs": [{"name": k, "data": [r[k] for r in test_rows[:2]]} for k in test_rows[0]]}
        v2_answer = c.post("/v2/models/quire-churn/infer", json={**v2, "id": "client-7"})
    assert v2_answer.json()["id"] == "client-7"  # the protocol echoes the client's id
    # the log's key for labels comes back in a header (the MLflow body has no room for it)
    header_ids = {mlflow_answer.headers["x-request-id"], v2_answer.headers["x-request-id"]}
    files = set(folder.glob("part-*.parquet")) - before
    assert len(files) == 1  # buffered, then flushed once at shutdown
    log = pd.read_parquet(files.pop())
    assert len(log) == 5 + 7 + 3 + 2 and set(ids) | header_ids <= set(log["request_id"])
    assert {"time", "model_version", "prediction", "proba_1", "age"} <= set(log.columns)
    assert str(log["time"].dt.tz) == "UTC" and log["request_id"].nunique() == 5 + 3
    first = log[log["request_id"] == ids[0]].iloc[0]
    assert first["age"] == test_rows[0]["age"] and first["region"] == test_rows[0]["region"]


def test_reload_swaps_in_the_current_champion(client):
    answer = client.post("/admin/reload")
    assert answer.json() == {
        "status": "reloaded",
        "name": "quire-churn",
        "version": "1",
        "workers": {"total": 1, "reloaded": 1, "failed": [], "late": []},  # one process
    }


def test_openapi_request_schema_comes_from_the_model(client):
    spec = client.get("/openapi.json").json()
    row = spec["components"]["schemas"]["Row"]
    assert row["properties"]["age"]["type"] == ["number", "null"]
    assert row["properties"]["signup_date"]["format"] == "date"
    assert "month-to-month" in row["properties"]["contract_type"]["description"]
    assert set(row["required"]) == set(row["example"]) and "churned" not in row["properties"]
    body = spec["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert body["items"] == {"$ref": "#/components/schemas/Row"} and body["maxItems"] == 50
    assert client.post("/predict", json=row["example"]).status_code == 200


def test_a_model_folder_logs_under_the_projects_model_name(
    served_params, served_root, tmp_path, test_rows
):
    """A local model folder has no registered name: its log goes where the monitor reads it."""
    import mlflow

    from lib.core import tracking

    tracking.setup(served_params)
    source = mlflow.artifacts.download_artifacts(
        "models:/quire-churn@champion", dst_path=str(tmp_path / "model")
    )
    folder = served_root / "data" / "predictions" / "quire-churn"
    before = set(folder.glob("part-*.parquet")) if folder.exists() else set()
    app = create_app(Settings(model_uri=source, log_flush_seconds=60), served_params)
    with TestClient(app) as c:
        request_id = c.post("/predict", json=test_rows[0]).json()["request_id"]
    new = set(folder.glob("part-*.parquet")) - before  # other tests' servers log here too
    assert request_id in set(pd.concat(map(pd.read_parquet, new))["request_id"])
    assert not (served_root / "data" / "predictions" / "model").exists()

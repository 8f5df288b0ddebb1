"""Every error class gets its status and each protocol its own body (server/errors.py's table)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from lib.core.errors import (
    DataValidationError,
    ModelNotFoundError,
    ParamsError,
    ServerUnavailableError,
    StageError,
)
from lib.serving.batch import InputError, Problem
from server.config import Settings
from server.main import create_app

pytestmark = pytest.mark.slow

INTERNAL = "internal error; the server log has the details"

# error raised while predicting -> (Quire status, Quire code, message the client sees)
CASES = {
    "input": (
        InputError([Problem(3, "age", "expected a number, got str")]),
        422, "invalid_input", "row 3, field 'age': expected a number, got str",
    ),
    "request_data": (
        DataValidationError("labels: 'yes' is not a class; send 0 or 1", check="label_class"),
        422, "label_class", "labels: 'yes' is not a class; send 0 or 1",
    ),
    "server_file": (
        DataValidationError("/srv/quire/data/x.csv: column 'y' missing", path="/srv/x.csv"),
        500, "server_error", INTERNAL,
    ),
    "request_param": (
        ParamsError("threshold: expected a number between 0 and 1", key="threshold"),
        400, "invalid_parameter", "threshold: expected a number between 0 and 1",
    ),
    "server_params": (
        ParamsError("params/prod.yaml: unknown key 'serve'", source="params/prod.yaml"),
        500, "server_error", INTERNAL,
    ),
    "no_champion": (
        ModelNotFoundError("model 'quire-churn' has no champion; run the pipeline first"),
        503, "model_unavailable", "model 'quire-churn' has no champion; run the pipeline first",
    ),
    "upstream": (
        ServerUnavailableError("nothing answers at the registry", url="http://registry"),
        503, "unavailable", "nothing answers at the registry",
    ),
    "stage": (
        StageError("02_train.ipynb cell 4: KeyError 'x'", stage="train"),
        500, "server_error", INTERNAL,
    ),
    "bug": (RuntimeError("secret internals at 0x7f"), 500, "internal", INTERNAL),
}  # fmt: skip
MLFLOW_CODES = {400: "BAD_REQUEST", 422: "INVALID_PARAMETER_VALUE", 500: "INTERNAL_ERROR",
                503: "TEMPORARILY_UNAVAILABLE"}  # fmt: skip


@pytest.fixture(scope="module")
def client(served_params):
    app = create_app(Settings(prediction_log=False, max_body_bytes=20_000), served_params)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def requests(rows):
    """The same rows as a request of each protocol: name -> (path, JSON body)."""
    v2 = {"inputs": [{"name": k, "data": [r[k] for r in rows]} for k in rows[0]]}
    return {
        "quire": ("/predict/batch", rows),
        "mlflow": ("/invocations", {"dataframe_records": rows}),
        "v2": ("/v2/models/quire-churn/infer", v2),
    }


def expected_body(protocol, status, code, message, error):
    if protocol == "mlflow":
        return {"error_code": MLFLOW_CODES[status], "message": message}
    if protocol == "v2":
        return {"error": message}
    body = {"error": {"code": code, "message": message}}
    if isinstance(error, InputError):
        body["error"]["details"] = [{"row": 3, "field": "age", "reason": error.problems[0].reason}]
    return body


@pytest.mark.parametrize("protocol", ["quire", "mlflow", "v2"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_error_class_gets_its_status_and_protocol_body(
    client, test_rows, monkeypatch, protocol, case
):
    error, status, code, message = CASES[case]

    async def failing(method, batch):
        raise error

    monkeypatch.setattr(client.app.state.serving, "run_model", failing)
    path, body = requests(test_rows[:2])[protocol]
    answer = client.post(path, json=body)
    # the other protocols answer any bad input 400, as `mlflow models serve` and V2 servers do
    wanted = 400 if status == 422 and protocol != "quire" else status
    assert answer.status_code == wanted
    assert answer.json() == expected_body(protocol, status, code, message, error)
    assert "Traceback" not in answer.text and "/srv" not in answer.text


def test_a_request_data_error_is_counted_by_its_check(client, test_rows, monkeypatch):
    async def failing(method, batch):
        raise DataValidationError("bad labels", check="label_class")

    def count():
        metric = 'quire_validation_failures_total{reason="label_class"} '
        lines = client.get("/metrics").text.splitlines()
        return next((float(x.removeprefix(metric)) for x in lines if x.startswith(metric)), 0.0)

    monkeypatch.setattr(client.app.state.serving, "run_model", failing)
    before = count()
    client.post("/predict/batch", json=test_rows[:1])
    assert count() == before + 1


@pytest.mark.parametrize(
    ("protocol", "body"),
    [
        ("quire", {"error": {"code": "invalid_parameter", "message": "x" * 999 + "…"}}),
        ("mlflow", {"error_code": "BAD_REQUEST", "message": "x" * 999 + "…"}),
        ("v2", {"error": "x" * 999 + "…"}),
    ],
)
def test_long_messages_are_cut(client, test_rows, monkeypatch, protocol, body):
    async def failing(method, batch):
        raise ParamsError("x" * 50_000)

    monkeypatch.setattr(client.app.state.serving, "run_model", failing)
    path, request = requests(test_rows[:1])[protocol]
    assert client.post(path, json=request).json() == body


@pytest.mark.parametrize(
    ("protocol", "status", "body"),
    [
        ("quire", 422, {"code": "empty_batch", "message": "row 0, field '': the batch is empty; send at least one row"}),
        ("mlflow", 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "row 0, field '': the batch is empty; send at least one row"}),
        ("v2", 400, {"error": "row 0, field 'inputs': expected a non-empty list of tensors"}),
    ],
)  # fmt: skip
def test_real_bad_input_on_each_protocol(client, protocol, status, body):
    path, request = {
        "quire": ("/predict/batch", []),
        "mlflow": ("/invocations", {"dataframe_records": []}),
        "v2": ("/v2/models/quire-churn/infer", {"inputs": []}),
    }[protocol]
    answer = client.post(path, json=request)
    assert answer.status_code == status
    got = answer.json()
    if protocol == "quire":
        assert got["error"]["code"] == body["code"] and got["error"]["message"] == body["message"]
        assert got["error"]["details"] == [
            {"row": 0, "field": "", "reason": "the batch is empty; send at least one row"}
        ]
    else:
        assert got == body


@pytest.mark.parametrize(
    ("path", "quire", "mlflow", "v2"),
    [
        ("/predict/batch", True, False, False),
        ("/invocations", False, True, False),
        ("/v2/models/quire-churn/infer", False, False, True),
    ],
)
def test_http_errors_answer_in_the_protocols_shape(client, test_rows, path, quire, mlflow, v2):
    too_large = json.dumps(test_rows * 100)
    cases = [
        (client.post(path, content=too_large, headers={"content-type": "application/json"}), 413,
         "body_too_large", "BAD_REQUEST", "the body exceeds 20,000 bytes; send smaller batches"),
        (client.post(path, content="{nope", headers={"content-type": "application/json"}), 400,
         "bad_request", "BAD_REQUEST", "the body is not valid JSON (error at byte 1)"),
    ]  # fmt: skip
    for answer, status, code, mlflow_code, message in cases:
        assert answer.status_code == status
        if quire:
            assert answer.json() == {"error": {"code": code, "message": message}}
        if mlflow:
            assert answer.json() == {"error_code": mlflow_code, "message": message}
        if v2:
            assert answer.json() == {"error": message}


def test_no_model_loaded_is_503_on_every_protocol(client, test_rows, monkeypatch):
    monkeypatch.setattr(client.app.state.serving, "model", None)
    message = "the model is not loaded yet; retry shortly"
    answers = {name: client.post(p, json=b) for name, (p, b) in requests(test_rows[:1]).items()}
    assert {a.status_code for a in answers.values()} == {503}
    assert {a.headers.get("retry-after") for a in answers.values()} == {"5"}
    assert answers["quire"].json() == {"error": {"code": "not_ready", "message": message}}
    assert answers["mlflow"].json() == {"error_code": "TEMPORARILY_UNAVAILABLE", "message": message}
    assert answers["v2"].json() == {"error": message}
    ready = client.get("/health/ready")
    assert ready.json()["error"]["code"] == "not_ready" and ready.headers["retry-after"] == "5"


def test_missing_api_key_is_401_in_each_protocols_shape(served_params, test_rows):
    app = create_app(Settings(api_key="k", prediction_log=False), served_params)
    message = "missing or wrong API key; send it in the X-API-Key header"
    with TestClient(app) as c:
        answers = {name: c.post(p, json=b) for name, (p, b) in requests(test_rows[:1]).items()}
    assert {a.status_code for a in answers.values()} == {401}
    assert {a.headers.get("www-authenticate") for a in answers.values()} == {'Bearer realm="quire"'}
    assert answers["quire"].json() == {"error": {"code": "unauthorized", "message": message}}
    assert answers["mlflow"].json() == {"error_code": "UNAUTHENTICATED", "message": message}
    assert answers["v2"].json() == {"error": message}


def test_a_request_that_fails_is_counted_as_500(client, test_rows, monkeypatch):
    async def failing(method, batch):
        raise RuntimeError("a bug")

    monkeypatch.setattr(client.app.state.serving, "run_model", failing)
    client.post("/invocations", json={"dataframe_records": test_rows[:1]})
    text = client.get("/metrics").text
    assert 'quire_requests_total{route="/invocations",status="500"}' in text
    assert "quire_requests_in_flight 1.0" in text  # only the /metrics request itself


def test_an_http_error_keeps_its_headers(client):
    """405 names the allowed methods (Allow), as HTTP requires; the handler used to drop it."""
    answer = client.get("/predict")
    assert answer.status_code == 405 and answer.headers.get("allow") == "POST"
    assert answer.json()["error"]["code"] == "method_not_allowed"

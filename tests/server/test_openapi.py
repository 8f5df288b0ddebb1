"""The OpenAPI document: security, each route's answer and error schemas, checked on real answers."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from lib.data.schema import ColumnSchema
from server.config import Settings
from server.main import create_app
from server.openapi import ROUTES, _feature

pytestmark = pytest.mark.slow
KEY = "s3cret"


@pytest.fixture(scope="module")
def keyed(served_params):
    app = create_app(Settings(api_key=KEY, log_flush_seconds=0.1), served_params)
    with TestClient(app, headers={"X-API-Key": KEY}) as c:
        yield c


def _validates(spec: dict, name: str, body: object) -> None:
    """Validate ``body`` against the spec's component schema ``name`` (refs resolved)."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    Draft202012Validator(schema).validate(body)


def test_the_key_is_declared_and_required_on_guarded_routes_only(keyed):
    spec = keyed.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["scheme"] == "bearer"
    secured = {
        (method, path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if op.get("security") == [{"ApiKey": []}, {"Bearer": []}]
    }
    assert {("post", "/predict"), ("post", "/invocations"), ("get", "/lineage/{request_id}")} <= (
        secured
    )
    assert ("post", "/v2/models/{name}/infer") in secured
    assert not {op for op in secured if "health" in op[1] or op[1] in ("/ping", "/version")}
    assert "401" in spec["paths"]["/feedback"]["post"]["responses"]
    assert "requires the API key" in spec["info"]["description"]


def test_without_a_key_no_route_asks_for_one(served_params):
    app = create_app(Settings(prediction_log=False), served_params)
    spec = app.openapi()
    assert "no API key configured" in spec["info"]["description"]
    assert not [op for ops in spec["paths"].values() for op in ops.values() if "security" in op]
    assert "401" not in spec["paths"]["/predict"]["post"]["responses"]


def test_every_schema_is_valid_and_every_route_documents_its_answers(keyed):
    spec = keyed.get("/openapi.json").json()
    for name, schema in spec["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema), name
    for (method, path), (answer, errors) in ROUTES.items():
        responses = spec["paths"][path][method]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{answer}"
        }
        assert {str(s) for s in errors} <= set(responses), path
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # never answered


def test_real_answers_and_errors_validate_against_the_declared_schemas(keyed, test_rows):
    spec = keyed.get("/openapi.json").json()
    ok = keyed.post("/predict", json=test_rows[0])
    _validates(spec, "Predictions", ok.json())
    _validates(spec, "ModelInfo", keyed.get("/model").json())
    json = {"content-type": "application/json"}
    cases = [
        ("post", "/predict", keyed.post("/predict", json={**test_rows[0], "age": "old"}), 422),
        ("post", "/predict", keyed.post("/predict", json=test_rows[0], headers={"X-API-Key": "no"}), 401),
        ("get", "/lineage/{request_id}", keyed.get("/lineage/never-served"), 404),
        ("get", "/lineage/{request_id}", keyed.get("/lineage/" + "x" * 500), 422),
        ("post", "/invocations", keyed.post("/invocations", json={"dataframe_records": [{"age": "x"}]}), 400),
        ("post", "/invocations", keyed.post("/invocations", content=b"a", headers={"content-type": "text/xml"}), 415),
        ("post", "/v2/models/{name}/infer", keyed.post("/v2/models/other/infer", json={"inputs": []}), 404),
        ("post", "/feedback", keyed.post("/feedback", content=b"{", headers=json), 400),
        ("post", "/feedback", keyed.post("/feedback", json={"labels": [{"request_id": "no", "label": 1}]}), 422),
    ]  # fmt: skip
    for method, path, answer, status in cases:
        assert answer.status_code == status, answer.text
        declared = spec["paths"][path][method]["responses"][str(status)]
        schema = declared["content"]["application/json"]["schema"]
        _validates(spec, schema["$ref"].rsplit("/", 1)[1], answer.json())


def test_a_declared_non_nullable_field_is_never_null_in_the_row_schema():
    required = ColumnSchema(name="age", kind="numeric", nullable=False, declared=True)
    inferred = ColumnSchema(name="tenure", kind="numeric", nullable=False)
    assert _feature(required)["type"] == "number"
    assert "declared nullable: false" in _feature(required)["description"]
    assert _feature(inferred)["type"] == ["number", "null"]
    date = ColumnSchema(name="since", kind="datetime", format="%d/%m/%Y")
    assert "such as 2024-01-31 or 31/01/2024" in _feature(date)["description"]


def test_generated_requests_get_only_documented_statuses_and_shapes(served_params):
    """Schemathesis, as a client reading the document: every answer's status is declared and
    its body matches the declared schema."""
    app = create_app(Settings(api_key=KEY, prediction_log=False, max_batch_rows=50), served_params)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=6,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def run(case):
                case.headers = {**(case.headers or {}), "X-API-Key": KEY}
                response = case.call_and_validate(checks=checks)
                seen.setdefault(case.operation.label, set()).add(response.status_code)

            try:
                run()
            except Exception as exc:  # Unsatisfiable: no body to break in a negative case
                if type(exc).__name__ != "Unsatisfiable":
                    raise
    assert 422 in seen["POST /predict/batch"] and 200 in seen["GET /model"], seen
    assert seen["POST /invocations"] & {400, 415}, seen

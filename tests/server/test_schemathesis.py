"""Property-based requests generated from the server's own OpenAPI schema: never a 5xx.

Every refusal is JSON in its protocol's shape with a bounded message. (Raw bodies that no
schema describes, such as huge numbers, deep nesting and lone surrogates, are test_fuzz.py's.)

Schemathesis reads /openapi.json (whose request bodies come from the model's training schema) and
sends schema-conforming and schema-violating bodies to every route, in process. (Schemathesis's
own pytest fixture loader does not work with this pytest, so the operations are driven here.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from server.config import Settings
from server.main import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def operations(served_params):
    app = create_app(Settings(prediction_log=False, max_batch_rows=50), served_params)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return {
        f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in schema.get_all_operations())
    }


def test_every_route_is_in_the_schema(operations):
    assert {
        "POST /predict",
        "POST /predict/batch",
        "POST /invocations",
        "GET /model",
        "POST /feedback",
        "GET /lineage/{request_id}",
    } <= set(operations)
    assert any(name.startswith("POST /v2/models/") for name in operations)


def assert_error_body(path: str, body: dict, label: str) -> None:
    """Each protocol's error shape: MLflow's, V2's, or Quire's own."""
    if path == "/invocations":
        assert body["error_code"] and body["message"], label
    elif path.startswith("/v2/"):
        assert isinstance(body["error"], str) and body["error"], label
    else:
        assert body["error"]["code"] and body["error"]["message"], label
    message = body.get("message") or body["error"]
    text = message if isinstance(message, str) else message["message"]
    assert len(text) <= 1000, label  # no echo of a large input


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_route_answers_5xx_or_a_trace(operations, mode):
    seen: dict[str, set[int]] = {}
    for name, operation in operations.items():

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case):
            response = case.call_and_validate(checks=[not_a_server_error])
            label = case.operation.label
            assert "Traceback" not in response.text, label
            seen.setdefault(label, set()).add(response.status_code)
            if response.status_code >= 400:  # every refusal is JSON, in its protocol's shape
                assert response.headers["content-type"] == ["application/json"], label
                assert_error_body(case.operation.path, response.json(), label)

        try:
            run()
        except Unsatisfiable:  # nothing to break in a route without a body
            assert mode is GenerationMode.NEGATIVE, name
            assert not operation.get_request_payload_content_types(), name
    posts = {n for n, op in operations.items() if op.get_request_payload_content_types()}
    assert posts <= set(seen)
    if mode is GenerationMode.NEGATIVE:  # bad input was really sent and refused
        assert all(any(400 <= c < 500 for c in seen[name]) for name in posts), seen

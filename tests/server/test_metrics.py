"""/metrics tells the truth: every answer counted by route template and status, 5xx included."""

from __future__ import annotations

import json

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from server.config import Settings
from server.main import create_app

pytestmark = pytest.mark.slow

INTERNAL = "internal error; the server log has the details"


@pytest.fixture(scope="module")
def client(served_params):
    app = create_app(Settings(prediction_log=False, max_body_bytes=2048), served_params)
    broken = APIRouter()  # test-only routes: a bug in a route is a bare exception

    @broken.post("/broken/{item}")
    async def quire_bug(item: str) -> None:
        raise RuntimeError("secret internals")

    @broken.post("/v2/models/{name}/broken")
    async def v2_bug(name: str) -> None:
        raise RuntimeError("secret internals")

    app.include_router(broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def counted(client: TestClient, route: str, status: int) -> float:
    """The request counter's value for (route, status); 0 when it has none."""
    name = f'quire_requests_total{{route="{route}",status="{status}"}} '
    lines = client.get("/metrics").text.splitlines()
    return next((float(x.removeprefix(name)) for x in lines if x.startswith(name)), 0.0)


def latency_count(client: TestClient, route: str, status_class: str) -> float:
    name = f'quire_request_seconds_count{{route="{route}",status="{status_class}"}} '
    lines = client.get("/metrics").text.splitlines()
    return next((float(x.removeprefix(name)) for x in lines if x.startswith(name)), 0.0)


def test_a_bug_in_a_route_is_a_counted_500_with_its_protocols_body(client):
    before = (
        counted(client, "/broken/{item}", 500),
        counted(client, "/v2/models/{name}/broken", 500),
    )
    quire = client.post("/broken/1")
    v2 = client.post("/v2/models/m/broken")
    assert quire.status_code == 500 and v2.status_code == 500
    assert quire.json() == {"error": {"code": "internal", "message": INTERNAL}}
    assert v2.json() == {"error": INTERNAL}
    assert "secret" not in quire.text + v2.text
    assert quire.headers["x-request-id"]  # the answer names its request, as every other
    assert counted(client, "/broken/{item}", 500) == before[0] + 1
    assert counted(client, "/v2/models/{name}/broken", 500) == before[1] + 1
    assert latency_count(client, "/broken/{item}", "5xx") >= 1
    assert "quire_requests_in_flight 1.0" in client.get("/metrics").text  # /metrics itself


def test_404_413_and_4xx_are_counted_with_their_route_and_status(client, test_rows):
    before = {
        "unmatched": counted(client, "unmatched", 404),
        "large": counted(client, "/predict/batch", 413),
        "bad": counted(client, "/predict", 400),
        "invalid": counted(client, "/predict", 422),
    }
    assert client.get("/no/such/route").status_code == 404
    big = json.dumps(test_rows * 5)
    declared = client.post(
        "/predict/batch", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413

    def chunks():  # no content-length: the limit is found while reading
        yield big.encode()

    streamed = client.post(
        "/predict/batch", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert (
        client.post(
            "/predict", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert client.post("/predict", json={}).status_code == 422
    assert counted(client, "unmatched", 404) == before["unmatched"] + 1
    assert counted(client, "/predict/batch", 413) == before["large"] + 2
    assert counted(client, "/predict", 400) == before["bad"] + 1
    assert counted(client, "/predict", 422) == before["invalid"] + 1
    assert latency_count(client, "/predict", "4xx") >= 2
    assert latency_count(client, "/metrics", "2xx") >= 1

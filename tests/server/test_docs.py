"""/docs works offline: Swagger UI from the installed package, nothing fetched from a CDN."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.main import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(served_params):
    settings = Settings(prediction_log=False, api_key="k")  # docs stay open, as the probes
    with TestClient(create_app(settings, served_params)) as c:
        yield c


def test_docs_reference_no_external_host_and_their_assets_answer(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert not re.findall(r"(?:https?:)?//[\w.-]+", page.text), "an external host in /docs"
    assets = re.findall(r"""['"](/docs/[^'"]+)['"]""", page.text)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {
        "swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "openapi.json"
    }  # fmt: skip
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 100, asset


def test_the_ui_reads_the_apps_document_in_a_version_it_renders(client):
    # the bundled Swagger UI 4 renders "openapi: 3.0.x" only, and refuses 3.1
    shown = client.get("/docs/openapi.json").json()
    own = client.get("/openapi.json").json()
    assert shown["openapi"].startswith("3.0.") and own["openapi"].startswith("3.1")
    assert shown["paths"] == own["paths"] and "/predict" in shown["paths"]
    assert client.get("/redoc").status_code == 404  # ReDoc needs a CDN: not served
